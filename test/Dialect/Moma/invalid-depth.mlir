// One expected-error per verifier rule of the mixture-of-depths ops
// (depth_route, depth_region, yield, scale, depth_mask:
// dialects/moma/DepthVerifiers.cpp and their ODS constraints).
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// static shapes only
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x?x32xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-3 [batch, sequence, features] tensor of floating-point values, but got 'tensor<2x?x32xf32>'}}
  %y = moma.scale %x, %s : (tensor<2x?x32xf32>, tensor<2x8xf32>) -> tensor<2x?x32xf32>
  return
}
}

// -----

// depth capacity <= 1
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'capacity_factor' must satisfy 0 < c <= 1, got 1.5}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 1.5 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  return
}
}

// -----

// depth kept count
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'indices' must have shape [2, 2] ([batch, floor(sequence * capacity_factor)]), found [2, 4]}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x4xi32>, tensor<2x4xf32>)
  return
}
}

// -----

// depth keeps a token
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'capacity_factor' 1.000000e-01 keeps no token of a sequence of 8}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.1 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x0xi32>, tensor<2x0xf32>)
  return
}
}

// -----

// depth aux keeps up to L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>, %a: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'indices' must have shape [2, 8] ([batch, sequence]: with 'aux' every position may be kept), found [2, 2]}}
  %i, %g = moma.depth_route %x, %w aux %a {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return
}
}

// -----

// depth aux: one logit per position
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>, %a: tensor<2x8x2xf32>) {
  // expected-error @+1 {{'aux' must have shape [2, 8, 1] ([batch, sequence, 1] auxiliary-router logits), found [2, 8, 2]}}
  %i, %g = moma.depth_route %x, %w aux %a {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x2xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  return
}
}

// -----

// depth router weight
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x2xf32>) {
  // expected-error @+1 {{'weight' must have shape [32, 1] ([features, 1]), found [32, 2]}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x2xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return
}
}

// -----

// depth region keeps at most L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x9xi32>) {
  // expected-error @+1 {{'indices' keeps 9 tokens per sequence but sequences have 8}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x9xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x9x32xf32>, %ms: tensor<2x9xi32>, %ps: tensor<2x9xi32>):
    moma.yield %xs : tensor<2x9x32xf32>
  }
  return
}
}

// -----

// depth region gate
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %g: tensor<2x3xf32>) {
  // expected-error @+1 {{'gate' must have shape [2, 2] ([batch, kept]), found [2, 3]}}
  %y = moma.depth_region %x, %m, %i gate %g : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x3xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// depth region body arguments
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>) {
  // expected-error @+1 {{body must take 3 arguments (kept tokens, their modality ids, their positions), got 1}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// depth region body argument types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>) {
  // expected-error @+1 {{body argument 0 (kept tokens) must be 'tensor<2x2x32xf32>', got 'tensor<2x8x32xf32>'}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x8x32xf32>
  }
  return
}
}

// -----

// depth region yield type
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %o: tensor<2x2x16xf32>) {
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    // expected-error @+1 {{yields 'tensor<2x2x16xf32>' but the depth region's kept tokens are 'tensor<2x2x32xf32>'}}
    moma.yield %o : tensor<2x2x16xf32>
  }
  return
}
}

// -----

// depth region extra values
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %l: tensor<f32>) {
  %y, %e = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> (tensor<2x8x32xf32>, tensor<f32>) {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    // expected-error @+1 {{yields extra values of types () but the depth region returns ('tensor<f32>')}}
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// yield belongs to a depth region
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>) {
  // expected-error @+1 {{expects parent op 'moma.depth_region'}}
  moma.yield %x : tensor<2x8x32xf32>
  return
}
}

// -----

// scale shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x4xf32>) {
  // expected-error @+1 {{'scale' must have shape [2, 8] ([batch, sequence]), found [2, 4]}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x4xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// depth mask keeps at most L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%i: tensor<2x4xi32>) {
  // expected-error @+1 {{'indices' keeps 4 tokens per sequence but sequences have 2}}
  %k = moma.depth_mask %i : (tensor<2x4xi32>) -> tensor<2x2x1xf32>
  return
}
}

// -----

// depth mask shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%i: tensor<2x4xi32>) {
  // expected-error @+1 {{'result' must have shape [2, ?, 1] ([batch, sequence, 1]), found [2, 8, 2]}}
  %k = moma.depth_mask %i : (tensor<2x4xi32>) -> tensor<2x8x2xf32>
  return
}
}

// -----

// ODS: scale result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x16xf32>
  return
}
}

// -----

// ODS: scale element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x8xf16>) {
  // expected-error @+1 {{failed to verify that all of {x, scale} have same element type}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf16>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: scale factors are [batch, sequence]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<16xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-2 [batch, sequence] tensor of floating-point values, but got 'tensor<16xf32>'}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: kept indices are [batch, kept]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%idx: tensor<4xi32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-2 [batch, kept] tensor of 32-bit signless integer values, but got 'tensor<4xi32>'}}
  %t = moma.depth_mask %idx : (tensor<4xi32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// ODS: kept gates are [batch, kept]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{result #1 must be statically shaped rank-2 [batch, kept] tensor of floating-point values, but got 'tensor<4xf32>'}}
  %idx, %g = moma.depth_route %x, %w {capacity_factor = 2.5e-01 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<4xf32>)
  return
}
}

// -----

// ODS: depth region result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %idx: tensor<2x2xi32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.depth_region %x, %m, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x16xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// depth_route positions: one per token
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>, %p: tensor<2x4xi32>) {
  // expected-error @+1 {{'positions' must have shape [2, 8] ([batch, sequence] token positions), found [2, 4]}}
  %i, %g = moma.depth_route %x, %w positions %p {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x4xi32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return
}
}

// -----

// depth_region positions: one per token of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %p: tensor<2x2xi32>) {
  // expected-error @+1 {{'positions' must have shape [2, 8] ([batch, sequence] token positions), found [2, 2]}}
  %y = moma.depth_region %x, %m, %i positions %p : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// permute: the order has one entry per token
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %o: tensor<2x4xi32>) {
  // expected-error @+1 {{'order' must have shape [2, 8] ([batch, sequence] order), found [2, 4]}}
  %y = moma.permute %x, %o : (tensor<2x8x32xf32>, tensor<2x4xi32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// permute: a [batch, sequence, ...] input
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<16xf32>, %o: tensor<2x8xi32>) {
  // expected-error @+1 {{reorders the tokens of a [batch, sequence, ...] tensor, got rank 1}}
  %y = moma.permute %x, %o : (tensor<16xf32>, tensor<2x8xi32>) -> tensor<16xf32>
  return
}
}
