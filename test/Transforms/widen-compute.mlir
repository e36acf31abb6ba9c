// moma-widen-compute: a moma op on bf16/f16 reads its float operands as f32,
// computes in f32 and rounds each float result once; ops that only move
// values, f32 ops and depth_region itself are left alone (its body's ops are
// widened one by one).
// RUN: moma-opt %s --moma-widen-compute | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// CHECK-LABEL: func.func @linear_bf16
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xbf16>, %[[W:.*]]: tensor<32x64xbf16>)
// CHECK: %[[XW:.*]] = arith.extf %[[X]] : tensor<2x8x32xbf16> to tensor<2x8x32xf32>
// CHECK: %[[WW:.*]] = arith.extf %[[W]] : tensor<32x64xbf16> to tensor<32x64xf32>
// CHECK: %[[Y:.*]] = moma.linear %[[XW]], %[[WW]] : (tensor<2x8x32xf32>, tensor<32x64xf32>) -> tensor<2x8x64xf32>
// CHECK: %[[R:.*]] = arith.truncf %[[Y]] : tensor<2x8x64xf32> to tensor<2x8x64xbf16>
// CHECK: return %[[R]]
func.func @linear_bf16(%x: tensor<2x8x32xbf16>, %w: tensor<32x64xbf16>) -> tensor<2x8x64xbf16> {
  %y = moma.linear %x, %w : (tensor<2x8x32xbf16>, tensor<32x64xbf16>) -> tensor<2x8x64xbf16>
  return %y : tensor<2x8x64xbf16>
}

// Integer operands stay; every float result (the scalar losses) is rounded.
// CHECK-LABEL: func.func @loss_f16
// CHECK: %[[L:.*]] = arith.extf %{{.*}} : tensor<2x8x16xf16> to tensor<2x8x16xf32>
// CHECK: %[[PER:.*]], %[[TOT:.*]] = moma.cross_entropy %[[L]], %{{.*}}, %{{.*}} : (tensor<2x8x16xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
// CHECK-DAG: arith.truncf %[[PER]] : tensor<2xf32> to tensor<2xf16>
// CHECK-DAG: arith.truncf %[[TOT]] : tensor<f32> to tensor<f16>
func.func @loss_f16(%logits: tensor<2x8x16xf16>, %t: tensor<2x8xi32>, %tm: tensor<2x8xi32>) -> (tensor<2xf16>, tensor<f16>) {
  %per, %total = moma.cross_entropy %logits, %t, %tm : (tensor<2x8x16xf16>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf16>, tensor<f16>)
  return %per, %total : tensor<2xf16>, tensor<f16>
}

// Gathers keep the stored type; f32 ops are unchanged.
// CHECK-LABEL: func.func @moves_and_f32
// CHECK-NOT: arith.extf
// CHECK-NOT: arith.truncf
// CHECK: moma.embed %{{.*}}, %{{.*}} : (tensor<2x8xi32>, tensor<128x32xbf16>) -> tensor<2x8x32xbf16>
// CHECK: moma.norm rms %{{.*}}, %{{.*}} : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
// CHECK-NOT: arith.extf
// CHECK-NOT: arith.truncf
// CHECK: return
func.func @moves_and_f32(%ids: tensor<2x8xi32>, %table: tensor<128x32xbf16>,
    %x: tensor<2x8x32xf32>, %g: tensor<32xf32>) -> (tensor<2x8x32xbf16>, tensor<2x8x32xf32>) {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xbf16>) -> tensor<2x8x32xbf16>
  %n = moma.norm rms %x, %g : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  return %h, %n : tensor<2x8x32xbf16>, tensor<2x8x32xf32>
}

// depth_region keeps bf16 operands and block arguments; the op in its body
// is widened.
// CHECK-LABEL: func.func @region_bf16
// CHECK: moma.depth_region %{{.*}}, %{{.*}}, %{{.*}} gate %{{.*}} : (tensor<2x8x32xbf16>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xbf16>) -> tensor<2x8x32xbf16>
// CHECK: ^bb0(%[[XS:.*]]: tensor<2x2x32xbf16>,
// CHECK: %[[XSW:.*]] = arith.extf %[[XS]] : tensor<2x2x32xbf16> to tensor<2x2x32xf32>
// CHECK: %[[N:.*]] = moma.norm rms %[[XSW]], %{{.*}} : (tensor<2x2x32xf32>, tensor<32xf32>) -> tensor<2x2x32xf32>
// CHECK: %[[NR:.*]] = arith.truncf %[[N]] : tensor<2x2x32xf32> to tensor<2x2x32xbf16>
// CHECK: moma.yield %[[NR]] : tensor<2x2x32xbf16>
func.func @region_bf16(%x: tensor<2x8x32xbf16>, %mod: tensor<2x8xi32>, %idx: tensor<2x2xi32>,
    %gate: tensor<2x2xbf16>, %g: tensor<32xbf16>) -> tensor<2x8x32xbf16> {
  %y = moma.depth_region %x, %mod, %idx gate %gate : (tensor<2x8x32xbf16>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xbf16>) -> tensor<2x8x32xbf16> {
  ^bb0(%xs: tensor<2x2x32xbf16>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    %n = moma.norm rms %xs, %g : (tensor<2x2x32xbf16>, tensor<32xbf16>) -> tensor<2x2x32xbf16>
    moma.yield %n : tensor<2x2x32xbf16>
  }
  return %y : tensor<2x8x32xbf16>
}

}
