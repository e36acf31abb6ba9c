// RUN: moma-opt %s | moma-opt | FileCheck %s
// RUN: moma-opt %s --mlir-print-op-generic | moma-opt | FileCheck %s

// CHECK-LABEL: func.func @update
// CHECK: %new_weights:2, %new_exp_avg:2, %new_exp_avg_sq:2, %grad_norm, %learning_rate = moma.adamw step %arg4 weights(%arg0, %arg1) grads(%arg2, %arg3) exp_avg(%arg0, %arg1) exp_avg_sq(%arg2, %arg3)
// CHECK-SAME: decay = "cosine"
// CHECK-SAME: max_grad_norm = 1.000000e+00 : f64
// CHECK-SAME: weight_decay = array<f64: 1.000000e-01, 0.000000e+00>
// CHECK-SAME: : tensor<4x8xf32>, tensor<8xf32> -> tensor<f32>
func.func @update(%w: tensor<4x8xf32>, %b: tensor<8xf32>, %gw: tensor<4x8xf32>,
                  %gb: tensor<8xf32>, %s: tensor<i64>)
    -> (tensor<4x8xf32>, tensor<8xf32>, tensor<f32>, tensor<f32>) {
  %r:8 = moma.adamw step %s weights(%w, %b) grads(%gw, %gb)
      exp_avg(%w, %b) exp_avg_sq(%gw, %gb)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
       lr = 1.0e-3 : f64, warmup_steps = 10 : i64, total_steps = 100 : i64,
       decay = "cosine", final_lr_ratio = 0.1 : f64,
       weight_decay = array<f64: 0.1, 0.0>, max_grad_norm = 1.0 : f64}
      : tensor<4x8xf32>, tensor<8xf32> -> tensor<f32>
  return %r#0, %r#1, %r#6, %r#7 : tensor<4x8xf32>, tensor<8xf32>, tensor<f32>, tensor<f32>
}

// CHECK-LABEL: func.func @no_clipping
// CHECK: moma.adamw
// CHECK-NOT: max_grad_norm
// CHECK-SAME: tensor<3xf64> -> tensor<f64>
func.func @no_clipping(%w: tensor<3xf64>, %s: tensor<i64>) -> tensor<3xf64> {
  %r:5 = moma.adamw step %s weights(%w) grads(%w) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.999 : f64, eps = 1.0e-8 : f64,
       lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 1 : i64,
       decay = "constant", final_lr_ratio = 0.0 : f64,
       weight_decay = array<f64: 0.0>}
      : tensor<3xf64> -> tensor<f64>
  return %r#0 : tensor<3xf64>
}
