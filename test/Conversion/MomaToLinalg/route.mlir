// The routing-plan ops (route, route_mask) lower to linalg generics, with
// the selections parallel over experts or tokens, and scf.for loops over
// tensors for the slot filling and the mask; no moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

#ec_text = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#ec_image = #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = softmax>
#tc_text = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Expert choice: sigmoid and (group-restricted) softmax scores, runtime
// capacities floor(b_g * c / E_g) in f64, then, parallel over the experts,
// the selection keys of the tokens (the score's f32 bits in order, -0 as
// +0, then 15 - t so ties go to the lower token: 32 + 4 bits for 16 tokens)
// and each expert's threshold, found over 36 bits by counting the keys that
// reach it, then the expert-major slot filling.
// CHECK-LABEL: func.func @route_expert_choice
// CHECK-NOT: {{= moma\.}}
// CHECK: math.exp
// CHECK: %[[S:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<16x4xf32>)
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: %[[NONE:.*]] = linalg.fill ins(%false : i1) outs(%{{.*}} : tensor<16x4xi1>)
// CHECK: %[[COUNTS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<2xi32>)
// CHECK: tensor.extract %[[COUNTS]]
// CHECK: arith.sitofp %{{.*}} : i32 to f64
// CHECK: math.floor %{{.*}} : f64
// CHECK: arith.fptosi %{{.*}} : f64 to i64
// CHECK: %[[KEYS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%{{.*}} : tensor<16xi32>) outs(%{{.*}} : tensor<6x16xi64>)
// CHECK: tensor.extract %[[S]]
// CHECK: arith.cmpf oeq
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.subi %c15,
// CHECK: arith.shli %{{.*}}, %c4_i64 : i64
// CHECK: %[[TH:.*]] = linalg.generic {{.*}} iterator_types = ["parallel"]} outs(%{{.*}} : tensor<6xi64>)
// CHECK: scf.for %{{.*}} = %c0 to %c36 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK: tensor.extract %[[KEYS]]
// CHECK: arith.cmpi uge
// CHECK: arith.cmpi sge
// CHECK: arith.maxui
// CHECK: %[[CHOSEN:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%[[NONE]], %{{.*}} : tensor<16x4xi1>, tensor<16xi32>) outs(%{{.*}} : tensor<16x4xi1>)
// CHECK: tensor.extract %[[KEYS]]
// CHECK: tensor.extract %[[TH]]
// CHECK: arith.cmpi uge
// CHECK: %[[GATES:.*]] = linalg.generic {{.*}} ins(%[[S]], %[[CHOSEN]] : tensor<16x4xf32>, tensor<16x4xi1>)
// CHECK-DAG: %[[TOK0:.*]] = linalg.fill ins(%c-1_i32 : i32) outs(%{{.*}} : tensor<16xi32>)
// CHECK-DAG: %[[OFF0:.*]] = linalg.fill ins(%c0_i32 : i32) outs(%{{.*}} : tensor<7xi32>)
// CHECK: %[[PLAN:.*]]:4 = scf.for %{{.*}} = %c0 to %c6 step %c1 iter_args(%{{.*}} = %c0, %{{.*}} = %[[TOK0]], %{{.*}}, %{{.*}} = %[[OFF0]]) -> (index, tensor<16xi32>, tensor<16xf32>, tensor<7xi32>)
// CHECK: tensor.insert %{{.*}} : tensor<7xi32>
// CHECK: scf.for %{{.*}} = %c0 to %c16 step %c1 {{.*}} -> (index, tensor<16xi32>, tensor<16xf32>)
// CHECK: scf.if %{{.*}} -> (index, tensor<16xi32>, tensor<16xf32>)
// CHECK: tensor.insert %{{.*}} : tensor<16xi32>
// CHECK: tensor.extract %[[GATES]]
// CHECK: tensor.insert %{{.*}} : tensor<16xf32>
// CHECK: %[[OFF:.*]] = tensor.insert %{{.*}} into %[[PLAN]]#3[%c6] : tensor<7xi32>
// CHECK: return %[[PLAN]]#1, %[[PLAN]]#2, %[[OFF]]
func.func @route_expert_choice(%logits: tensor<2x8x4xf32>, %mod: tensor<2x8xi32>)
    -> (tensor<16xi32>, tensor<16xf32>, tensor<7xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<7xi32>)
  return %tok, %gate, %off : tensor<16xi32>, tensor<16xf32>, tensor<7xi32>
}

// Token choice top-2: the rank of every expert among its token's group
// experts (a larger score, or an equal one at a lower index, beats it),
// parallel over tokens and experts; rank < 2 is chosen; then gates
// renormalized by their per-token sum.
// CHECK-LABEL: func.func @route_token_choice
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[NONE:.*]] = linalg.fill ins(%false : i1) outs(%{{.*}} : tensor<16x4xi1>)
// CHECK: %[[RANK:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[S:.*]], %[[S]], %{{.*}} : tensor<16x4xf32>, tensor<16x4xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x4xi32>)
// CHECK: arith.cmpf ogt
// CHECK: arith.cmpf oeq
// CHECK: arith.cmpi ult
// CHECK: %[[CHOSEN:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]} ins(%[[NONE]], %{{.*}}, %[[RANK]] : tensor<16x4xi1>, tensor<16xi32>, tensor<16x4xi32>)
// CHECK: arith.cmpi slt, %{{.*}}, %{{.*}} : i32
// CHECK: %[[G:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[CHOSEN]] : tensor<16x4xf32>, tensor<16x4xi1>)
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%[[G]] : tensor<16x4xf32>) outs(%{{.*}} : tensor<16xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[G]], %{{.*}}, %[[SUM]] : tensor<16x4xf32>, tensor<16xi32>, tensor<16xf32>)
// CHECK: arith.cmpf ogt
// CHECK: arith.divf
// CHECK: scf.for {{.*}} -> (index, tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
// CHECK-NOT: math.floor
// CHECK: return
func.func @route_token_choice(%logits: tensor<2x8x4xf32>, %mod: tensor<2x8xi32>)
    -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#tc_text] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
  return %tok, %gate, %off : tensor<32xi32>, tensor<32xf32>, tensor<5xi32>
}

// With aux logits, expert-choice selection is the element-wise aux > 0
// (no selection loop, no capacity).
// CHECK-LABEL: func.func @route_aux
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[AUX:.*]] = tensor.collapse_shape %arg2
// CHECK: %[[CHOSEN:.*]] = linalg.generic {{.*}} ins(%[[AUX]], %{{.*}} : tensor<16x4xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x4xi1>)
// CHECK: arith.cmpf ogt, %{{.*}}, %[[ZERO]] : f32
// CHECK-NOT: math.floor
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[CHOSEN]] : tensor<16x4xf32>, tensor<16x4xi1>)
// CHECK: scf.for {{.*}} -> (index, tensor<64xi32>, tensor<64xf32>, tensor<7xi32>)
// CHECK: return
func.func @route_aux(%logits: tensor<2x8x4xf32>, %mod: tensor<2x8xi32>,
    %aux: tensor<2x8x4xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<7xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod aux %aux groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<7xi32>)
  return %tok, %gate, %off : tensor<64xi32>, tensor<64xf32>, tensor<7xi32>
}

// route_mask: 0 / -1 from the groups, then 1 for the tokens in the slots
// of every expert-choice expert.
// CHECK-LABEL: func.func @route_mask
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1.000000e+00 : f32
// CHECK-DAG: %[[MINUS:.*]] = arith.constant -1.000000e+00 : f32
// CHECK: %[[INIT:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<16x4xf32>)
// CHECK: arith.select %{{.*}}, %{{.*}}, %[[MINUS]] : f32
// CHECK: %[[MASK:.*]] = scf.for %{{.*}} = %c0 to %c6 step %c1 iter_args(%{{.*}} = %[[INIT]]) -> (tensor<16x4xf32>)
// CHECK: tensor.extract %arg1
// CHECK: scf.for {{.*}} -> (tensor<16x4xf32>)
// CHECK: tensor.extract %arg0
// CHECK: arith.select %{{.*}}, %[[ONE]], %{{.*}} : f32
// CHECK: tensor.insert
// CHECK: tensor.expand_shape %[[MASK]]
func.func @route_mask(%tok: tensor<16xi32>, %off: tensor<7xi32>, %mod: tensor<2x8xi32>) -> tensor<2x8x4xf32> {
  %m = moma.route_mask %tok, %off, %mod groups [#ec_text, #ec_image] : (tensor<16xi32>, tensor<7xi32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return %m : tensor<2x8x4xf32>
}
}
