// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

// moma.adamw: one sum-of-squares reduction per gradient (in f64), then one
// element-wise generic per weight whose outs are the weight and its moments
// themselves, so that bufferization updates them in place.

// CHECK-LABEL: func.func @update
// CHECK-SAME: (%[[W:.*]]: tensor<4x8xf32>, %[[B:.*]]: tensor<8xf32>, %[[GW:.*]]: tensor<4x8xf32>, %[[GB:.*]]: tensor<8xf32>, %[[M0:.*]]: tensor<4x8xf32>, %[[M1:.*]]: tensor<8xf32>, %[[V0:.*]]: tensor<4x8xf32>, %[[V1:.*]]: tensor<8xf32>, %[[S:.*]]: tensor<i64>)
// CHECK: tensor.extract %[[S]][]
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction", "reduction"]{{.*}} ins(%[[GW]] : tensor<4x8xf32>) outs(%{{.*}} : tensor<f64>)
// CHECK: linalg.generic {{.*}}iterator_types = ["reduction"]{{.*}} ins(%[[GB]] : tensor<8xf32>) outs(%{{.*}} : tensor<f64>)
// CHECK: math.sqrt %{{.*}} : f64
// CHECK: arith.minimumf
// CHECK: math.powf
// CHECK: %[[UW:.*]]:3 = linalg.generic {{.*}} ins(%[[GW]], {{.*}}) outs(%[[W]], %[[M0]], %[[V0]] : tensor<4x8xf32>, tensor<4x8xf32>, tensor<4x8xf32>)
// CHECK: %[[UB:.*]]:3 = linalg.generic {{.*}} ins(%[[GB]], {{.*}}) outs(%[[B]], %[[M1]], %[[V1]] : tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
// CHECK: return %[[UW]]#0, %[[UB]]#0, %[[UW]]#1, %[[UB]]#2
func.func @update(%w: tensor<4x8xf32>, %b: tensor<8xf32>, %gw: tensor<4x8xf32>,
                  %gb: tensor<8xf32>, %m0: tensor<4x8xf32>, %m1: tensor<8xf32>,
                  %v0: tensor<4x8xf32>, %v1: tensor<8xf32>, %s: tensor<i64>)
    -> (tensor<4x8xf32>, tensor<8xf32>, tensor<4x8xf32>, tensor<8xf32>) {
  %r:8 = moma.adamw step %s weights(%w, %b) grads(%gw, %gb)
      exp_avg(%m0, %m1) exp_avg_sq(%v0, %v1)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64,
       lr = 1.0e-3 : f64, warmup_steps = 10 : i64, total_steps = 100 : i64,
       decay = "cosine", final_lr_ratio = 0.1 : f64,
       weight_decay = array<f64: 0.1, 0.0>, max_grad_norm = 1.0 : f64}
      : tensor<4x8xf32>, tensor<8xf32> -> tensor<f32>
  return %r#0, %r#1, %r#2, %r#5 : tensor<4x8xf32>, tensor<8xf32>, tensor<4x8xf32>, tensor<8xf32>
}
