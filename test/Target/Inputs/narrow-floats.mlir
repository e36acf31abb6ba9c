// A bf16 and an f16 linear with a residual add and a norm (element-wise
// arith between ops, matmul and row-reduction inside them): input of
// test/Target/cpu-narrow-floats.test.
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>]} {
func.func @linear_bf16(%x: tensor<2x4x8xbf16>, %w: tensor<8x8xbf16>, %g: tensor<8xbf16>) -> tensor<2x4x8xbf16> {
  %y = moma.linear %x, %w : (tensor<2x4x8xbf16>, tensor<8x8xbf16>) -> tensor<2x4x8xbf16>
  %n = moma.norm rms %y, %g : (tensor<2x4x8xbf16>, tensor<8xbf16>) -> tensor<2x4x8xbf16>
  %r = arith.addf %x, %n : tensor<2x4x8xbf16>
  return %r : tensor<2x4x8xbf16>
}
func.func @linear_f16(%x: tensor<2x4x8xf16>, %w: tensor<8x8xf16>, %g: tensor<8xf16>) -> tensor<2x4x8xf16> {
  %y = moma.linear %x, %w : (tensor<2x4x8xf16>, tensor<8x8xf16>) -> tensor<2x4x8xf16>
  %n = moma.norm rms %y, %g : (tensor<2x4x8xf16>, tensor<8xf16>) -> tensor<2x4x8xf16>
  %r = arith.addf %x, %n : tensor<2x4x8xf16>
  return %r : tensor<2x4x8xf16>
}
}
