// The router, dispatch, experts, combine and aux_router ops lower to linalg
// generics/matmuls and, for the scatter-add of combine, an scf.for loop over
// tensors; no moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

#ec_text = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#ec_image = #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = softmax>

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Per-group router weights are stacked (zero-padded to E_max) and selected
// per token by its group id; columns j >= E_g and tokens without a group
// are 0.
// CHECK-LABEL: func.func @router
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[ROWS:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>
// CHECK: %[[MOD:.*]] = tensor.collapse_shape %arg1
// CHECK: %[[GID:.*]] = linalg.generic {{.*}} ins(%[[MOD]] : tensor<16xi32>) outs(%{{.*}} : tensor<16xi32>)
// CHECK: %[[W0:.*]] = tensor.insert_slice %arg2 into %{{.*}}[0, 0, 0] [1, 32, 4] [1, 1, 1] : tensor<32x4xf32> into tensor<2x32x4xf32>
// CHECK: %[[W:.*]] = tensor.insert_slice %arg3 into %[[W0]][1, 0, 0] [1, 32, 2] [1, 1, 1] : tensor<32x2xf32> into tensor<2x32x4xf32>
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[ROWS]], %[[GID]] : tensor<16x32xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x4xf32>)
// CHECK: tensor.extract %[[W]]
// CHECK: %[[L:.*]] = linalg.generic {{.*}} ins(%[[Y]], %[[GID]] : tensor<16x4xf32>, tensor<16xi32>)
// CHECK: arith.cmpi ult
// CHECK: %[[E:.*]] = tensor.expand_shape %[[L]] {{\[}}[0, 1], [2]] output_shape [2, 8, 4]
// CHECK: return %[[E]]
func.func @router(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %wt: tensor<32x4xf32>, %wi: tensor<32x2xf32>) -> tensor<2x8x4xf32> {
  %logits = moma.router %x, %mod weights(%wt, %wi) groups [#ec_text, #ec_image] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x2xf32>) -> tensor<2x8x4xf32>
  return %logits : tensor<2x8x4xf32>
}

// Dispatch is a gather: rows of empty slots (token -1) are 0.
// CHECK-LABEL: func.func @dispatch
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[ROWS:.*]] = tensor.collapse_shape %arg0
// CHECK: %[[XS:.*]] = linalg.generic {{.*}} ins(%arg1 : tensor<16xi32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi slt
// CHECK: tensor.extract %[[ROWS]]
// CHECK: arith.select
// CHECK: return %[[XS]]
func.func @dispatch(%x: tensor<2x8x32xf32>, %tok: tensor<16xi32>) -> tensor<16x32xf32> {
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  return %xs : tensor<16x32xf32>
}

// Experts: every slot's expert id from the offsets (-1 outside
// [off[0], off[E])), then the FFN with weights selected per slot (GELU,
// LoRA on both projections), rows of slots without expert zeroed.
// CHECK-LABEL: func.func @experts
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[CNT:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%arg1 : tensor<9xi32>) outs(%{{.*}} : tensor<16xi32>)
// CHECK: %[[ID:.*]] = linalg.generic {{.*}} ins(%[[CNT]] : tensor<16xi32>) outs(%{{.*}} : tensor<16xi32>)
// CHECK: linalg.generic {{.*}} ins(%arg0, %[[ID]] : tensor<16x32xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x64xf32>)
// CHECK: tensor.extract %arg2
// CHECK: tensor.extract %arg4
// CHECK: tensor.extract %arg5
// CHECK: math.erf
// CHECK: tensor.extract %arg3
// CHECK: tensor.extract %arg6
// CHECK: tensor.extract %arg7
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %[[ID]] : tensor<16x32xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: arith.cmpi sge
// CHECK: arith.select
// CHECK: return %[[Y]]
func.func @experts(%xs: tensor<16x32xf32>, %off: tensor<9xi32>,
    %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>, %ai: tensor<8x32x2xf32>,
    %bi: tensor<8x2x64xf32>, %ao: tensor<8x64x2xf32>, %bo: tensor<8x2x32xf32>)
    -> tensor<16x32xf32> {
  %ys = moma.experts gelu %xs, %off, %wi, %wo lora(%ai, %bi, %ao, %bo) {lora_scale = 0.5 : f64} : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x2x64xf32>, tensor<8x64x2xf32>, tensor<8x2x32xf32>) -> tensor<16x32xf32>
  return %ys : tensor<16x32xf32>
}

// Combine: a scatter-add in ascending slot order, one row per iteration.
// CHECK-LABEL: func.func @combine
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[BASE:.*]] = tensor.collapse_shape %arg3
// CHECK: %[[ACC:.*]] = scf.for %[[S:.*]] = %c0 to %c16 step %c1 iter_args(%[[IT:.*]] = %[[BASE]]) -> (tensor<16x32xf32>)
// CHECK: %[[T:.*]] = tensor.extract %arg1[%[[S]]] : tensor<16xi32>
// CHECK: scf.if %{{.*}} -> (tensor<16x32xf32>)
// CHECK: %[[ROW:.*]] = arith.index_cast %[[T]] : i32 to index
// CHECK: %[[G:.*]] = tensor.extract %arg2[%[[S]]] : tensor<16xf32>
// CHECK: %[[OLD:.*]] = tensor.extract_slice %[[IT]][%[[ROW]], 0] [1, 32] [1, 1] : tensor<16x32xf32> to tensor<32xf32>
// CHECK: %[[IN:.*]] = tensor.extract_slice %arg0[%[[S]], 0] [1, 32] [1, 1] : tensor<16x32xf32> to tensor<32xf32>
// CHECK: %[[NEW:.*]] = linalg.generic {{.*}} ins(%[[IN]] : tensor<32xf32>) outs(%[[OLD]] : tensor<32xf32>)
// CHECK: arith.mulf %[[G]]
// CHECK: arith.addf
// CHECK: tensor.insert_slice %[[NEW]] into %[[IT]][%[[ROW]], 0] [1, 32] [1, 1]
// CHECK: scf.yield %[[IT]]
// CHECK: tensor.expand_shape %[[ACC]]
func.func @combine(%ys: tensor<16x32xf32>, %tok: tensor<16xi32>, %gate: tensor<16xf32>,
    %x: tensor<2x8x32xf32>) -> tensor<2x8x32xf32> {
  %y = moma.combine %ys, %tok, %gate residual %x : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// Without residual the base is 0.
// CHECK-LABEL: func.func @combine_no_residual
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[ZERO:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %[[ZERO]]) -> (tensor<16x32xf32>)
func.func @combine_no_residual(%ys: tensor<16x32xf32>, %tok: tensor<16xi32>,
    %gate: tensor<16xf32>) -> tensor<2x8x32xf32> {
  %y = moma.combine %ys, %tok, %gate : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// A single auxiliary router: the logits silu(x W1) W2 with plain matmuls
// (no sigmoid after the second).
// CHECK-LABEL: func.func @aux_router
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[H:.*]] = linalg.matmul ins(%{{.*}}, %arg1 : tensor<16x32xf32>, tensor<32x16xf32>)
// CHECK: %[[A:.*]] = linalg.generic {{.*}} ins(%[[H]] : tensor<16x16xf32>)
// CHECK: math.exp
// CHECK: arith.mulf
// CHECK: %[[Z:.*]] = linalg.matmul ins(%[[A]], %arg2 : tensor<16x16xf32>, tensor<16x1xf32>)
// CHECK-NEXT: %[[R:.*]] = tensor.expand_shape %[[Z]] {{\[}}[0, 1], [2]] output_shape [2, 8, 1]
// CHECK-NEXT: return %[[R]]
func.func @aux_router(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x1xf32>) -> tensor<2x8x1xf32> {
  %p = moma.aux_router %x weights(%w1, %w2) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x1xf32>) -> tensor<2x8x1xf32>
  return %p : tensor<2x8x1xf32>
}

// One auxiliary router per group: both weights stacked and zero-padded
// (hidden 16 / 8, experts 4 / 2), selected per token, masked to the
// group's columns; the logits are returned as they are (no sigmoid).
// CHECK-LABEL: func.func @aux_router_groups
// CHECK-NOT: {{= moma\.}}
// CHECK: tensor.insert_slice %arg4 into %{{.*}}[1, 0, 0] [1, 32, 8] [1, 1, 1] : tensor<32x8xf32> into tensor<2x32x16xf32>
// CHECK: tensor.insert_slice %arg5 into %{{.*}}[1, 0, 0] [1, 8, 2] [1, 1, 1] : tensor<8x2xf32> into tensor<2x16x4xf32>
// CHECK: %[[Z:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<16x4xf32>)
// CHECK: linalg.generic {{.*}} ins(%[[Z]], %{{.*}} : tensor<16x4xf32>, tensor<16xi32>)
// CHECK-NEXT: ^bb0(%[[ZV:.*]]: f32,
// CHECK: %[[VALID:.*]] = arith.cmpi ult
// CHECK-NEXT: %[[M:.*]] = arith.select %[[VALID]], %[[ZV]], %{{.*}} : f32
// CHECK-NEXT: linalg.yield %[[M]] : f32
func.func @aux_router_groups(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %a1: tensor<32x16xf32>, %a2: tensor<16x4xf32>, %b1: tensor<32x8xf32>,
    %b2: tensor<8x2xf32>) -> tensor<2x8x4xf32> {
  %p = moma.aux_router %x weights(%a1, %a2, %b1, %b2) modality %mod groups [#ec_text, #ec_image] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x8xf32>, tensor<8x2xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return %p : tensor<2x8x4xf32>
}

}
