// The losses lower to linalg reductions in at least f32 and return rank-0
// tensors (tensor.from_elements); means over nothing are 0; no moma op
// remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

#tc_text = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
#tc_image = #moma.expert_group<modality = 1, experts = 2, token_choice(top_k = 1), score = sigmoid>
#ec_audio = #moma.expert_group<modality = 2, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>,
    #moma.modality<2, "audio", tokens = 128 to 160>]} {

// -log softmax at the target: row max, sum of exp, then
// -((x[target] - max) - log(sum)) for targets >= 0; per-modality sums and
// counts in one reduction; means guarded against empty sets.
// CHECK-LABEL: func.func @cross_entropy
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[X:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x8x128xf32> into tensor<16x128xf32>
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[X]] : tensor<16x128xf32>) outs(%{{.*}} : tensor<16xf32>)
// CHECK: arith.maximumf
// CHECK: %[[EXP:.*]] = linalg.generic {{.*}} ins(%[[X]], %[[MAX]] : tensor<16x128xf32>, tensor<16xf32>)
// CHECK: math.exp
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[EXP]] : tensor<16x128xf32>) outs(%{{.*}} : tensor<16xf32>)
// CHECK: %[[NLL:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[MAX]], %[[SUM]] : tensor<16xi32>, tensor<16xf32>, tensor<16xf32>) outs(%{{.*}} : tensor<16xf32>)
// CHECK: tensor.extract %[[X]]
// CHECK: arith.subf
// CHECK: math.log
// CHECK: arith.subf
// CHECK: arith.negf
// CHECK: arith.cmpi sge
// CHECK: %[[PER:.*]]:2 = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[NLL]], %{{.*}}, %{{.*}} : tensor<16xf32>, tensor<16xi32>, tensor<16xi32>) outs(%{{.*}}, %{{.*}} : tensor<3xf32>, tensor<3xi32>)
// CHECK: %[[MEANS:.*]] = linalg.generic {{.*}} ins(%[[PER]]#0, %[[PER]]#1 : tensor<3xf32>, tensor<3xi32>) outs(%{{.*}} : tensor<3xf32>)
// CHECK: arith.cmpi sgt
// CHECK: arith.sitofp
// CHECK: arith.divf
// CHECK: arith.select
// CHECK: %[[ALL:.*]] = linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[NLL]] : tensor<16xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK: %[[TOTAL:.*]] = tensor.from_elements %{{.*}} : tensor<f32>
// CHECK: return %[[MEANS]], %[[TOTAL]] : tensor<3xf32>, tensor<f32>
func.func @cross_entropy(%logits: tensor<2x8x128xf32>, %t: tensor<2x8xi32>,
    %tm: tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>) {
  %per, %all = moma.cross_entropy %logits, %t, %tm : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>)
  return %per, %all : tensor<3xf32>, tensor<f32>
}

// bf16 logits are extended to f32 first (accumulation in at least f32).
// CHECK-LABEL: func.func @cross_entropy_bf16
// CHECK-NOT: {{= moma\.}}
// CHECK: linalg.generic {{.*}} ins(%{{.*}} : tensor<16x128xbf16>) outs(%{{.*}} : tensor<16x128xf32>)
// CHECK: arith.extf %{{.*}} : bf16 to f32
// CHECK: return %{{.*}}, %{{.*}} : tensor<3xf32>, tensor<f32>
func.func @cross_entropy_bf16(%logits: tensor<2x8x128xbf16>, %t: tensor<2x8xi32>,
    %tm: tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>) {
  %per, %all = moma.cross_entropy %logits, %t, %tm : (tensor<2x8x128xbf16>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>)
  return %per, %all : tensor<3xf32>, tensor<f32>
}

// Load balancing: group scores, group token counts and per-group column
// sums of the scores, then for each token-choice group (not the
// expert-choice one) a loop over its experts reading the offsets.
// CHECK-LABEL: func.func @load_balancing
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[S:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} : tensor<16x4xf32>, tensor<16xi32>, tensor<16xf32>, tensor<16xf32>) outs(%{{.*}} : tensor<16x4xf32>)
// CHECK: arith.divf
// CHECK: %[[COUNTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%{{.*}} : tensor<16xi32>) outs(%{{.*}} : tensor<3xi32>)
// CHECK: %[[COLS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[S]], %{{.*}} : tensor<16x4xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<3x4xf32>)
// CHECK: tensor.extract %[[COUNTS]][%c0]
// CHECK: scf.for %{{.*}} = %c0 to %c4 step %c1 iter_args(%{{.*}} = %{{.*}}) -> (f32)
// CHECK: tensor.extract %arg2
// CHECK: tensor.extract %arg2
// CHECK: arith.subi
// CHECK: tensor.extract %[[COLS]][%c0, %{{.*}}]
// CHECK: tensor.extract %[[COUNTS]][%c1]
// CHECK: scf.for %{{.*}} = %c0 to %c2 step %c1 iter_args(%{{.*}} = %{{.*}}) -> (f32)
// CHECK: tensor.extract %[[COLS]][%c1, %{{.*}}]
// CHECK-NOT: tensor.extract %[[COUNTS]][%c2]
// CHECK: %[[LB:.*]] = tensor.from_elements %{{.*}} : tensor<f32>
// CHECK: return %[[LB]]
func.func @load_balancing(%logits: tensor<2x8x4xf32>, %mod: tensor<2x8xi32>,
    %off: tensor<11xi32>) -> tensor<f32> {
  %lb = moma.load_balancing_loss %logits, %mod, %off groups [#tc_text, #tc_image, #ec_audio] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<11xi32>) -> tensor<f32>
  return %lb : tensor<f32>
}

// Router z-loss: masked row max and exp-sum over the group's experts,
// (log(sum) + max)^2 for routed tokens, mean.
// CHECK-LABEL: func.func @router_z
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<16xf32>)
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<16xf32>)
// CHECK: %[[SQ:.*]] = linalg.generic {{.*}} ins(%[[MAX]], %[[SUM]], %{{.*}} : tensor<16xf32>, tensor<16xf32>, tensor<16xi32>)
// CHECK: math.log
// CHECK: arith.addf
// CHECK: arith.mulf
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%[[SQ]] : tensor<16xf32>) outs(%{{.*}} : tensor<f32>)
// CHECK: linalg.generic {{.*}} iterator_types = ["reduction"]} ins(%{{.*}} : tensor<16xi32>) outs(%{{.*}} : tensor<i32>)
// CHECK: tensor.from_elements %{{.*}} : tensor<f32>
func.func @router_z(%logits: tensor<2x8x4xf32>, %mod: tensor<2x8xi32>) -> tensor<f32> {
  %z = moma.router_z_loss %logits, %mod groups [#tc_text, #tc_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f32>
  return %z : tensor<f32>
}

// Auxiliary-router BCE with p clamped to [1e-7, 1 - 1e-7] over targets >= 0.
// Binary cross-entropy with logits, max(z, 0) - t z + log1p(exp(-|z|)):
// no clamp, no log of a probability.
// CHECK-LABEL: func.func @aux_loss
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[COUNTED:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<2x8x4xf32>) outs(%{{.*}} : tensor<2x8x4xi1>)
// CHECK: arith.cmpf oge
// CHECK: linalg.generic {{.*}} ins(%arg0, %arg1 : tensor<2x8x4xf32>, tensor<2x8x4xf32>)
// CHECK-NEXT: ^bb0(%[[Z:.*]]: f32, %[[T:.*]]: f32, %{{.*}}: f32):
// CHECK-NEXT: %[[POS:.*]] = arith.maximumf %[[Z]], %[[ZERO]] : f32
// CHECK-NEXT: %[[TZ:.*]] = arith.mulf %[[T]], %[[Z]] : f32
// CHECK-NEXT: %[[LIN:.*]] = arith.subf %[[POS]], %[[TZ]] : f32
// CHECK-NEXT: %[[ABS:.*]] = math.absf %[[Z]] : f32
// CHECK-NEXT: %[[NEG:.*]] = arith.negf %[[ABS]] : f32
// CHECK-NEXT: %[[EXP:.*]] = math.exp %[[NEG]] : f32
// CHECK-NEXT: %[[SOFT:.*]] = math.log1p %[[EXP]] : f32
// CHECK-NEXT: %[[TERM:.*]] = arith.addf %[[LIN]], %[[SOFT]] : f32
// CHECK-NEXT: linalg.yield %[[TERM]] : f32
// CHECK-NOT: math.log {{.*}}
// CHECK: iterator_types = ["reduction", "reduction", "reduction"]
// CHECK-NOT: arith.negf
// CHECK: tensor.from_elements %{{.*}} : tensor<f32>
func.func @aux_loss(%z: tensor<2x8x4xf32>, %t: tensor<2x8x4xf32>) -> tensor<f32> {
  %l = moma.aux_router_loss %z, %t : (tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<f32>
  return %l : tensor<f32>
}

}
