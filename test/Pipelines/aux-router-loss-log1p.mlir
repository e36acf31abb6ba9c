// aux_router_loss's log1p(exp(-|z|)) must keep the digits of a small
// argument (a saturated router): moma-to-cpu calls libm's log1pf / log1p
// instead of math-to-llvm's log(1 + x), and moma-to-ptx calls libdevice's.
// RUN: moma-opt %s --moma-to-cpu | FileCheck %s
// RUN: moma-opt %s --moma-to-ptx="chip=sm_90 format=nvvm" | FileCheck %s --check-prefix=PTX

// CHECK-DAG: llvm.func @log1pf(f32) -> f32
// CHECK-DAG: llvm.func @log1p(f64) -> f64
// CHECK-LABEL: llvm.func @loss_f32
// CHECK: llvm.call @log1pf
// CHECK-NOT: llvm.intr.log
// CHECK-LABEL: llvm.func @loss_f64
// CHECK: llvm.call @log1p(
// CHECK-NOT: llvm.intr.log

// PTX: llvm.func @__nv_log1pf(f32) -> f32
// PTX: llvm.call @__nv_log1pf

module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>]} {
func.func @loss_f32(%z: tensor<1x4x2xf32> {moma.input = "z"},
    %t: tensor<1x4x2xf32> {moma.input = "t"}) -> (tensor<f32> {moma.output = "l"}) {
  %l = moma.aux_router_loss %z, %t : (tensor<1x4x2xf32>, tensor<1x4x2xf32>) -> tensor<f32>
  return %l : tensor<f32>
}
func.func @loss_f64(%z: tensor<1x4x2xf64> {moma.input = "z"},
    %t: tensor<1x4x2xf64> {moma.input = "t"}) -> (tensor<f64> {moma.output = "l"}) {
  %l = moma.aux_router_loss %z, %t : (tensor<1x4x2xf64>, tensor<1x4x2xf64>) -> tensor<f64>
  return %l : tensor<f64>
}
}
