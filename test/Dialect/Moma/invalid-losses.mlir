// One expected-error per verifier rule of the loss ops (cross_entropy,
// load_balancing_loss, router_z_loss, aux_router_loss:
// dialects/moma/LossVerifiers.cpp and their ODS constraints).
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// per-modality loss size
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{'per_modality' must have shape [2] ([declared modalities]), found [3]}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>)
  return
}
}

// -----

// total loss is a scalar
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{result #1 must be statically shaped rank-0 scalar tensor of floating-point values, but got 'tensor<1xf32>'}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<1xf32>)
  return
}
}

// -----

// targets shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x7xi32>) {
  // expected-error @+1 {{'targets' must have shape [2, 8] ([batch, sequence] target token ids), found [2, 7]}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x7xi32>, tensor<2x7xi32>) -> (tensor<2xf32>, tensor<f32>)
  return
}
}

// -----

// per-modality loss needs modalities
module {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{requires the enclosing module to declare 'moma.modalities'}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return
}
}

// -----

// balance loss needs token choice
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{needs at least one token_choice group (expert_choice groups are balanced by construction)}}
  %b = moma.load_balancing_loss %l, %m, %o groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
  return
}
}

// -----

// balance loss offsets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [5] ([total experts + 1]), found [9]}}
  %b = moma.load_balancing_loss %l, %m, %o groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
  return
}
}

// -----

// z-loss logits
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x2xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 2]}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x2xf32>, tensor<2x8xi32>) -> tensor<f32>
  return
}
}

// -----

// aux loss targets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%p: tensor<2x8x4xf32>, %t: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'targets' must have the shape of 'logits' [2, 8, 4], found [2, 8, 1]}}
  %b = moma.aux_router_loss %p, %t : (tensor<2x8x4xf32>, tensor<2x8x1xf32>) -> tensor<f32>
  return
}
}

// -----

// aux loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%p: tensor<2x8x4xf32>, %t: tensor<2x8x4xf16>) {
  // expected-error @+1 {{failed to verify that all of {logits, targets, result} have same element type}}
  %b = moma.aux_router_loss %p, %t : (tensor<2x8x4xf32>, tensor<2x8x4xf16>) -> tensor<f32>
  return
}
}

// -----

// ODS: losses are scalars
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{result #0 must be statically shaped rank-0 scalar tensor of floating-point values, but got 'tensor<1xf32>'}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<1xf32>
  return
}
}

// -----

// ODS: per-modality losses are [modalities]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{result #0 must be statically shaped rank-1 [modalities] tensor of floating-point values, but got 'tensor<f32>'}}
  %per, %all = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<f32>, tensor<f32>)
  return
}
}

// -----

// ODS: cross-entropy element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{failed to verify that all of {per_modality, total} have same element type}}
  %per, %all = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f16>)
  return
}
}

// -----

// ODS: load-balancing loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %off: tensor<5xi32>) {
  // expected-error @+1 {{failed to verify that all of {logits, result} have same element type}}
  %lb = moma.load_balancing_loss %l, %m, %off groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<5xi32>) -> tensor<f16>
  return
}
}

// -----

// ODS: router z-loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{failed to verify that all of {logits, result} have same element type}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f16>
  return
}
}
