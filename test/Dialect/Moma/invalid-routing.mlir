// One expected-error per verifier rule of the mixture-of-experts ops
// (router, route, dispatch, experts, combine, aux_router, route_mask:
// dialects/moma/RoutingVerifiers.cpp and their ODS constraints).
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// one router weight per group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{expects one router weight per expert group (2), got 1}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// router weight matches experts
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>, %v: tensor<32x2xf32>) {
  // expected-error @+1 {{'weights[1]' must have shape [32, 4] ([features, experts of group 1]), found [32, 2]}}
  %l = moma.router %x, %m weights(%w, %v) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x2xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group modality declared
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{expert group 0 serves modality 2, which the module does not declare (it declares 2)}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 2, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// shared groups too
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{modality 0 has more than one expert group (groups 0 and 1)}}
  %l = moma.router %x, %m weights(%w, %w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modalities = [1, 0], experts = 4, token_choice(top_k = 1), score = softmax>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// one group per modality
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{modality 0 has more than one expert group (groups 0 and 1)}}
  %l = moma.router %x, %m weights(%w, %w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// at least one group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{requires at least one expert group}}
  %l = moma.router %x, %m weights() groups [] : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// logits cover the largest group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 8]}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x8xf32>
  return
}
}

// -----

// groups need declared modalities
module {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{requires the enclosing module to declare 'moma.modalities'}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// plan capacity
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 12 slots but these groups may fill up to 16 (16 tokens x the largest top_k / capacity)}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<12xi32>, tensor<12xf32>, tensor<9xi32>)
  return
}
}

// -----

// plan capacity with top_k
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 16 slots but these groups may fill up to 32 (16 tokens x the largest top_k / capacity)}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// plan capacity with aux
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 16 slots but these groups may fill up to 64 (16 tokens x the largest top_k / capacity, or experts with 'aux')}}
  %t, %g, %o = moma.route %l, %m aux %l groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
  return
}
}

// -----

// aux only for expert choice
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'aux' logits replace expert_choice selection, but no group uses expert_choice}}
  %t, %g, %o = moma.route %l, %m aux %l groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
  return
}
}

// -----

// aux shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %a: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'aux' logits must have the shape of 'logits' [2, 8, 4], found [2, 8, 1]}}
  %t, %g, %o = moma.route %l, %m aux %a groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x1xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<5xi32>)
  return
}
}

// -----

// expert offsets size
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [9] ([total experts + 1]), found [8]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<8xi32>)
  return
}
}

// -----

// slot gates
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'slot_gate' must have shape [16] ([slots]), found [15]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<15xf32>, tensor<9xi32>)
  return
}
}

// -----

// route logits shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x3xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 3]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x3xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// dispatch result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %t: tensor<16xi32>) {
  // expected-error @+1 {{'result' must have shape [16, 32] ([slots, features]), found [8, 32]}}
  %xs = moma.dispatch %x, %t : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<8x32xf32>
  return
}
}

// -----

// experts offsets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<8xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [9] ([experts + 1]), found [8]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<8xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts input width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x16xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'w_in' must have shape [?, 16, ?] ([experts, features, hidden columns]), found [8, 32, 128]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x16xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x16xf32>
  return
}
}

// -----

// experts w_out
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'w_out' must have shape [8, 64, 32] ([experts, hidden, out]), found [4, 64, 32]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<4x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts LoRA count
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>, %a: tensor<8x32x2xf32>) {
  // expected-error @+1 {{expects 0 or 4 LoRA operands (A_in, B_in, A_out, B_out), got 2}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo lora(%a, %a) : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x32x2xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts LoRA shapes
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>, %a: tensor<8x32x2xf32>, %b: tensor<8x2x128xf32>, %c: tensor<8x64x2xf32>, %d: tensor<8x2x16xf32>) {
  // expected-error @+1 {{'lora B_out' must have shape [8, 2, 32] ([experts, rank, features]), found [8, 2, 16]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo lora(%a, %b, %c, %d) : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x2x128xf32>, tensor<8x64x2xf32>, tensor<8x2x16xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {tokens, result} have same type}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf16>
  return
}
}

// -----

// combine gates
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{'slot_gate' must have shape [16] ([slots]), found [8]}}
  %y = moma.combine %ys, %t, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<8xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// combine residual
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<16xf32>, %r: tensor<2x4x32xf32>) {
  // expected-error @+1 {{'residual' type 'tensor<2x4x32xf32>' must equal the result type 'tensor<2x8x32xf32>'}}
  %y = moma.combine %ys, %t, %g residual %r : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x4x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// combine width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'result' must have shape [?, ?, 32] ([batch, sequence, features]), found [2, 8, 16]}}
  %y = moma.combine %ys, %t, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  return
}
}

// -----

// aux router W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<8x1xf32>) {
  // expected-error @+1 {{'W2' must have shape [16, ?] ([hidden, outputs]), found [8, 1]}}
  %p = moma.aux_router %x weights(%w1, %w2) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<8x1xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// aux router result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 4] ([batch, sequence, outputs]), found [2, 8, 1]}}
  %p = moma.aux_router %x weights(%w1, %w2) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// aux router takes W1 and W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>) {
  // expected-error @+1 {{expects two weights (W1, W2), got 1}}
  %p = moma.aux_router %x weights(%w1) : (tensor<2x8x32xf32>, tensor<32x16xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// grouped aux routers need modality ids
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{with 'groups', a 'modality' operand must route each token to its group's router}}
  %p = moma.aux_router %x weights(%w1, %w2) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// two weights per group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{expects two weights (W1, W2) per expert group (4), got 2}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group aux router W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x2xf32>) {
  // expected-error @+1 {{'W2 of group 0' must have shape [16, 4] ([hidden, experts of group 0]), found [16, 2]}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x2xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group aux router columns
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{result has 2 columns but the largest group has 4 experts}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x2xf32>
  return
}
}

// -----

// route mask shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%t: tensor<16xi32>, %o: tensor<9xi32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 8]}}
  %k = moma.route_mask %t, %o, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<16xi32>, tensor<9xi32>, tensor<2x8xi32>) -> tensor<2x8x8xf32>
  return
}
}

// -----

// ODS: dispatch element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %tok: tensor<16xi32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same element type}}
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf16>
  return
}
}

// -----

// ODS: slot tokens are [slots]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %tok: tensor<2x8xi32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-1 [slots] tensor of 32-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: slot rows are [slots, features]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<2x8x32xf32>, %off: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-2 [slots, features] tensor of floating-point values, but got 'tensor<2x8x32xf32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<2x8x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: expert offsets are [experts + 1]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %off: tensor<9x1xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-1 [experts + 1] tensor of 32-bit signless integer values, but got 'tensor<9x1xi32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<9x1xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: expert weights are stacked [experts, rows, columns]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %off: tensor<9xi32>, %wi: tensor<32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #2 must be statically shaped rank-3 [experts, rows, columns] tensor of floating-point values, but got 'tensor<32x128xf32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: slot gates are [slots]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %tok: tensor<16xi32>, %g: tensor<16x1xf32>) {
  // expected-error @+1 {{operand #2 must be statically shaped rank-1 [slots] tensor of floating-point values, but got 'tensor<16x1xf32>'}}
  %y = moma.combine %ys, %tok, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<16x1xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: router logits are [batch, sequence, columns]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<16x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-3 [batch, sequence, columns] tensor of floating-point values, but got 'tensor<16x4xf32>'}}
  %tok, %gate, %off = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<16x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// ODS: modality ids are [batch, sequence]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<16xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-2 [batch, sequence] tensor of 32-bit signless integer values, but got 'tensor<16xi32>'}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<16xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// route positions: one per token
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %p: tensor<2x7xi32>) {
  // expected-error @+1 {{'positions' must have shape [2, 8] ([batch, sequence] token positions), found [2, 7]}}
  %t, %g, %o = moma.route %l, %m positions %p groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x7xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
  return
}
}
