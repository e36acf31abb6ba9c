// RUN: moma-opt %s -split-input-file --moma-widen-compute --convert-moma-to-linalg=vocab-chunk=4 | FileCheck %s

// An LM head read only by cross-entropy is lowered with it: a loop over
// vocabulary chunks of 4 columns, each a matmul on a column slice of the
// weight; no [T, V] tensor exists.
// CHECK-LABEL: func.func @fused
// CHECK-SAME: %[[X:.*]]: tensor<1x3x2xf32>, %[[W:.*]]: tensor<2x8xf32>
// CHECK-NOT: tensor<3x8xf32>
// CHECK: %{{.*}}:3 = scf.for %[[OFF:.*]] = %{{.*}} to %{{.*}} step %{{.*}} iter_args
// CHECK:   %[[SLICE:.*]] = tensor.extract_slice %[[W]][0, %[[OFF]]] [2, 4] [1, 1] : tensor<2x8xf32> to tensor<2x4xf32>
// CHECK:   linalg.matmul ins(%{{.*}}, %[[SLICE]] : tensor<3x2xf32>, tensor<2x4xf32>) outs(%{{.*}} : tensor<3x4xf32>) -> tensor<3x4xf32>
// CHECK: } {moma.vocab_chunk = 4 : i64}
// CHECK-NOT: tensor<3x8xf32>
// CHECK: return
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 4>,
    #moma.modality<1, "image", tokens = 4 to 8>]} {
func.func @fused(%x: tensor<1x3x2xf32>, %w: tensor<2x8xf32>, %t: tensor<1x3xi32>, %m: tensor<1x3xi32>) -> (tensor<2xf32>, tensor<f32>) {
  %logits = moma.linear %x, %w : (tensor<1x3x2xf32>, tensor<2x8xf32>) -> tensor<1x3x8xf32>
  %per, %total = moma.cross_entropy %logits, %t, %m : (tensor<1x3x8xf32>, tensor<1x3xi32>, tensor<1x3xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %per, %total : tensor<2xf32>, tensor<f32>
}
}
// -----


// bf16: the chunk's f32 logits are rounded to bf16 (the linear's result
// rounding) and read back as f32 by the reductions.
// CHECK-LABEL: func.func @fused_bf16
// CHECK: scf.for
// CHECK:   linalg.matmul {{.*}} -> tensor<3x4xf32>
// CHECK:   linalg.generic
// CHECK:     arith.truncf %{{.*}} : f32 to bf16
// CHECK:     arith.extf %{{.*}} : bf16 to f32
// CHECK:     arith.maximumf
// CHECK: } {moma.vocab_chunk = 4 : i64}
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 4>,
    #moma.modality<1, "image", tokens = 4 to 8>]} {
func.func @fused_bf16(%x: tensor<1x3x2xbf16>, %w: tensor<2x8xbf16>, %t: tensor<1x3xi32>, %m: tensor<1x3xi32>) -> (tensor<2xbf16>, tensor<bf16>) {
  %logits = moma.linear %x, %w : (tensor<1x3x2xbf16>, tensor<2x8xbf16>) -> tensor<1x3x8xbf16>
  %per, %total = moma.cross_entropy %logits, %t, %m : (tensor<1x3x8xbf16>, tensor<1x3xi32>, tensor<1x3xi32>) -> (tensor<2xbf16>, tensor<bf16>)
  return %per, %total : tensor<2xbf16>, tensor<bf16>
}
}
// -----


// Logits that are also returned are computed whole, as before.
// CHECK-LABEL: func.func @logits_returned
// CHECK-NOT: scf.for
// CHECK-NOT: moma.vocab_chunk
// CHECK: linalg.matmul ins(%{{.*}}, %{{.*}} : tensor<3x2xf32>, tensor<2x8xf32>) outs(%{{.*}} : tensor<3x8xf32>)
// CHECK-NOT: moma.vocab_chunk
// CHECK: return
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 4>,
    #moma.modality<1, "image", tokens = 4 to 8>]} {
func.func @logits_returned(%x: tensor<1x3x2xf32>, %w: tensor<2x8xf32>, %t: tensor<1x3xi32>, %m: tensor<1x3xi32>) -> (tensor<1x3x8xf32>, tensor<f32>) {
  %logits = moma.linear %x, %w : (tensor<1x3x2xf32>, tensor<2x8xf32>) -> tensor<1x3x8xf32>
  %per, %total = moma.cross_entropy %logits, %t, %m : (tensor<1x3x8xf32>, tensor<1x3xi32>, tensor<1x3xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %logits, %total : tensor<1x3x8xf32>, tensor<f32>
}
}
