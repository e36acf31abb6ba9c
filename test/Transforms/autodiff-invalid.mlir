// moma-autodiff's errors: no loss to differentiate, a function that
// already returns gradients, an op on the path to the loss without a
// gradient rule, and a permutation whose inverse is unknown.
// RUN: moma-opt %s --split-input-file --moma-autodiff --verify-diagnostics

// expected-error @+1 {{has no result with moma.output = "total" to differentiate}}
func.func @forward(%w: tensor<4xf32> {moma.weight = "w"}) -> (tensor<4xf32> {moma.output = "y"}) {
  return %w : tensor<4xf32>
}

// -----

// expected-error @+1 {{already returns gradients (result 1 is 'grad:w')}}
func.func @forward(%w: tensor<f32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<f32> {moma.output = "grad:w"}) {
  return %w, %w : tensor<f32>, tensor<f32>
}

// -----

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @forward(%w: tensor<2x4x128xf32> {moma.weight = "w"}, %s: tensor<2x4xf32> {moma.input = "s"}, %tgt: tensor<2x4xi32> {moma.input = "targets"}) -> (tensor<f32> {moma.output = "total"}) {
  // expected-error @+1 {{'moma.scale' op has no gradient rule}}
  %l = moma.scale %w, %s : (tensor<2x4x128xf32>, tensor<2x4xf32>) -> tensor<2x4x128xf32>
  %per, %ce = moma.cross_entropy %l, %tgt, %tgt : (tensor<2x4x128xf32>, tensor<2x4xi32>, tensor<2x4xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %ce : tensor<f32>
}
}

// -----

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @forward(%ids: tensor<2x4xi32> {moma.input = "ids"}, %order: tensor<2x4xi32> {moma.input = "order"}, %table: tensor<128x8xf32> {moma.weight = "table"}, %tgt: tensor<2x4xi32> {moma.input = "targets"}) -> (tensor<f32> {moma.output = "total"}) {
  %h = moma.embed %ids, %table : (tensor<2x4xi32>, tensor<128x8xf32>) -> tensor<2x4x8xf32>
  // expected-error @+1 {{has no gradient rule for an 'order' that does not come from moma.modality_sort}}
  %p = moma.permute %h, %order : (tensor<2x4x8xf32>, tensor<2x4xi32>) -> tensor<2x4x8xf32>
  %e = tensor.empty() : tensor<8x128xf32>
  %head = linalg.transpose ins(%table : tensor<128x8xf32>) outs(%e : tensor<8x128xf32>) permutation = [1, 0]
  %logits = moma.linear %p, %head : (tensor<2x4x8xf32>, tensor<8x128xf32>) -> tensor<2x4x128xf32>
  %per, %ce = moma.cross_entropy %logits, %tgt, %tgt : (tensor<2x4x128xf32>, tensor<2x4xi32>, tensor<2x4xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %ce : tensor<f32>
}
}
