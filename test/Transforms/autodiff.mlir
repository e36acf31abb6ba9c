// moma-autodiff: the backward ops each rule builds, in reverse program
// order; a tied embedding's two gradients summed; a gradient through
// stop_gradient dropped; a weight the loss does not reach gets zeros; the
// gradients returned in argument order as grad:NAME.
// RUN: moma-opt %s --moma-autodiff | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
// CHECK-LABEL: func.func @forward
// CHECK-SAME: -> (tensor<2xf32> {moma.output = "ce_per_modality"}, tensor<f32> {moma.output = "total"}, tensor<128x32xf32> {moma.output = "grad:embed.weight"}, tensor<32xf32> {moma.output = "grad:norm.weight"}, tensor<32x32xf32> {moma.output = "grad:proj"}, tensor<32x32xf32> {moma.output = "grad:unused"})
func.func @forward(%ids: tensor<2x4xi32> {moma.input = "ids"},
                   %tgt: tensor<2x4xi32> {moma.input = "targets"},
                   %tmod: tensor<2x4xi32> {moma.input = "target_modality"},
                   %table: tensor<128x32xf32> {moma.weight = "embed.weight"},
                   %w: tensor<32xf32> {moma.weight = "norm.weight"},
                   %p: tensor<32x32xf32> {moma.weight = "proj"},
                   %u: tensor<32x32xf32> {moma.weight = "unused"})
    -> (tensor<2xf32> {moma.output = "ce_per_modality"},
        tensor<f32> {moma.output = "total"}) {
  %h = moma.embed %ids, %table : (tensor<2x4xi32>, tensor<128x32xf32>) -> tensor<2x4x32xf32>
  %n = moma.norm rms %h, %w : (tensor<2x4x32xf32>, tensor<32xf32>) -> tensor<2x4x32xf32>
  %q = moma.linear %n, %p : (tensor<2x4x32xf32>, tensor<32x32xf32>) -> tensor<2x4x32xf32>
  %r = arith.addf %h, %q : tensor<2x4x32xf32>
  %s = moma.stop_gradient %r : tensor<2x4x32xf32>
  %dead = moma.linear %s, %u : (tensor<2x4x32xf32>, tensor<32x32xf32>) -> tensor<2x4x32xf32>
  %e = tensor.empty() : tensor<32x128xf32>
  %head = linalg.transpose ins(%table : tensor<128x32xf32>) outs(%e : tensor<32x128xf32>) permutation = [1, 0]
  %logits = moma.linear %r, %head : (tensor<2x4x32xf32>, tensor<32x128xf32>) -> tensor<2x4x128xf32>
  %per, %ce = moma.cross_entropy %logits, %tgt, %tmod : (tensor<2x4x128xf32>, tensor<2x4xi32>, tensor<2x4xi32>) -> (tensor<2xf32>, tensor<f32>)
  %half = arith.constant dense<5.000000e-01> : tensor<f32>
  %scaled = arith.mulf %ce, %half : tensor<f32>
  %total = arith.addf %ce, %scaled : tensor<f32>
  return %per, %total : tensor<2xf32>, tensor<f32>
}
}
// The seed, then d total / d ce = 1 + 0.5 (the product's constant factor).
// CHECK: %[[ONE:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[DSCALED:.*]] = arith.mulf %[[ONE]], %{{.*}} : tensor<f32>
// CHECK: %[[DCE:.*]] = arith.addf %[[ONE]], %[[DSCALED]] : tensor<f32>
// CHECK: %[[ZPER:.*]] = arith.constant dense<0.000000e+00> : tensor<2xf32>
// CHECK: %[[DLOGITS:.*]] = moma.cross_entropy_grad %{{.*}}, %{{.*}}, %{{.*}}, %[[ZPER]], %[[DCE]]
// CHECK: %[[DR:.*]], %[[DHEAD:.*]] = moma.linear_grad %{{.*}}, %{{.*}}, %[[DLOGITS]]
// CHECK: %[[DTABLE1:.*]] = linalg.transpose ins(%[[DHEAD]] : tensor<32x128xf32>) {{.*}} permutation = [1, 0]
// Nothing for the stop-gradient branch: the next backward op is the
// residual's.
// CHECK-NOT: moma.linear_grad %{{.*}}, %arg6
// CHECK: %[[DN:.*]], %[[DP:.*]] = moma.linear_grad %{{.*}}, %arg5, %[[DR]]
// CHECK: %[[DH:.*]], %[[DW:.*]] = moma.norm_grad rms %{{.*}}, %arg4, %[[DN]]
// CHECK: %[[DHSUM:.*]] = arith.addf %[[DR]], %[[DH]]
// CHECK: %[[DTABLE2:.*]] = moma.embed_grad %arg0, %[[DHSUM]]
// CHECK: %[[DTABLE:.*]] = arith.addf %[[DTABLE1]], %[[DTABLE2]]
// CHECK: %[[ZERO:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<32x32xf32>)
// CHECK: return %{{.*}}, %{{.*}}, %[[DTABLE]], %[[DW]], %[[DP]], %[[ZERO]]
