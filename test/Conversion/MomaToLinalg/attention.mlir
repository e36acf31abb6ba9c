// moma.attention lowers to projections (linalg.matmul, or untied
// generics), RoPE tables and rotations, masked softmax generics and the
// output projection; no moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Grouped-query attention (4 query heads over 2 kv heads), RoPE at the
// default positions, causal.
// CHECK-LABEL: func.func @gqa_rope
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[SQRT:.*]] = arith.constant 2.82842708 : f32
// CHECK-DAG: %[[LO:.*]] = arith.constant dense<[0.000000e+00, {{.*}}]> : tensor<4xf32>
// CHECK-DAG: %[[HI:.*]] = arith.constant dense<[1.000000e+00, 1.000000e-01, 0.00999999977, 1.000000e-03]> : tensor<4xf32>
// CHECK: %[[ROWS:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>
// CHECK: %[[Q:.*]] = linalg.matmul ins(%[[ROWS]], %arg1 : tensor<16x32xf32>, tensor<32x32xf32>)
// CHECK: %[[K:.*]] = linalg.matmul ins(%[[ROWS]], %arg2 : tensor<16x32xf32>, tensor<32x16xf32>)
// CHECK: %[[V:.*]] = linalg.matmul ins(%[[ROWS]], %arg3 : tensor<16x32xf32>, tensor<32x16xf32>)
// CHECK: %[[Q4:.*]] = tensor.expand_shape %[[Q]] {{\[}}[0, 1], [2, 3]] output_shape [2, 8, 4, 8]
// CHECK: %[[K4:.*]] = tensor.expand_shape %[[K]] {{\[}}[0, 1], [2, 3]] output_shape [2, 8, 2, 8]
// CHECK: %[[V4:.*]] = tensor.expand_shape %[[V]] {{\[}}[0, 1], [2, 3]] output_shape [2, 8, 2, 8]
// Default positions p[b, l] = l.
// CHECK: %[[POS:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xi32>)
// CHECK: linalg.index 1
// RoPE tables cos/sin [B, L, d/2] from the split f64 frequencies.
// CHECK: %[[TAB:.*]]:2 = linalg.generic {{.*}} ins(%[[POS]], %[[HI]], %[[LO]] : tensor<2x8xi32>, tensor<4xf32>, tensor<4xf32>)
// CHECK: math.fma
// CHECK: math.cos
// CHECK: math.sin
// Rotate-half on q and k.
// CHECK: tensor.extract_slice %[[Q4]][0, 0, 0, 0] [2, 8, 4, 4]
// CHECK: tensor.extract_slice %[[Q4]][0, 0, 0, 4] [2, 8, 4, 4]
// CHECK: linalg.generic {{.*}} ins({{.*}}, %[[TAB]]#0, %[[TAB]]#1 : {{.*}}) outs
// CHECK: tensor.insert_slice
// CHECK: %[[QR:.*]] = tensor.insert_slice
// CHECK: tensor.extract_slice %[[K4]][0, 0, 0, 0] [2, 8, 2, 4]
// CHECK: %[[KR:.*]] = tensor.insert_slice {{.*}}[0, 0, 0, 4] [2, 8, 2, 4]
// Query heads viewed as [kv_heads, group].
// CHECK: %[[Q5:.*]] = tensor.expand_shape %[[QR]] {{\[}}[0], [1], [2, 3], [4]] output_shape [2, 8, 2, 2, 8]
// Scores [B, G, R, L, L], contracted over head_dim.
// CHECK: %[[S:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%[[Q5]], %[[KR]] : tensor<2x8x2x2x8xf32>, tensor<2x8x2x8xf32>) outs(%{{.*}} : tensor<2x2x2x8x8xf32>)
// Row max over the visible keys: p_key >= 0 and p_key <= p_query.
// CHECK: %[[MAX:.*]] = linalg.generic {{.*}} ins(%[[S]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x2x2x8xf32>)
// CHECK: arith.cmpi sge
// CHECK: arith.cmpi sle
// CHECK: arith.divf %{{.*}}, %[[SQRT]]
// CHECK: arith.maximumf
// CHECK: arith.select
// Denominators: sums of exp(s - max) over the visible keys.
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%[[S]], %[[MAX]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x2x2x8xf32>)
// CHECK: math.exp
// CHECK: arith.select
// Probabilities, 0 at masked keys.
// CHECK: %[[P:.*]] = linalg.generic {{.*}} ins(%[[S]], %[[MAX]], %[[SUM]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x2x2x8x8xf32>)
// CHECK: math.exp
// CHECK: arith.divf
// CHECK: arith.select
// Weighted sum over the keys: o [B, L, G, R, d].
// CHECK: %[[O:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[V4]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x8x2x2x8xf32>)
// CHECK: %[[OF:.*]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2, 3, 4]] : tensor<2x8x2x2x8xf32> into tensor<16x32xf32>
// CHECK: %[[Y:.*]] = linalg.matmul ins(%[[OF]], %arg4 : tensor<16x32xf32>, tensor<32x32xf32>)
// CHECK: %[[R:.*]] = tensor.expand_shape %[[Y]] {{\[}}[0, 1], [2]] output_shape [2, 8, 32]
// CHECK: return %[[R]]
func.func @gqa_rope(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>,
    %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>, %wo: tensor<32x32xf32>)
    -> tensor<2x8x32xf32> {
  %y = moma.attention %x, %wq, %wk, %wv, %wo heads 4 kv_heads 2 head_dim 8 {rope_theta = 1.0e4 : f64} : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// Untied (per-modality) projections, multi-query (one kv head), given
// positions, no RoPE, not causal: the projections select their weight slice
// per token with a clamped modality id; the mask only checks p_key >= 0.
// CHECK-LABEL: func.func @untied_mqa_noncausal
// CHECK-NOT: {{= moma\.}}
// CHECK-NOT: math.cos
// CHECK: %[[MOD:.*]] = tensor.collapse_shape %arg6 {{\[}}[0, 1]] : tensor<2x8xi32> into tensor<16xi32>
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[MOD]] : tensor<16x32xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: tensor.extract %arg1
// CHECK: tensor.extract %arg2
// CHECK: tensor.extract %arg3
// CHECK: tensor.expand_shape %{{.*}} {{\[}}[0], [1], [2, 3], [4]] output_shape [2, 8, 1, 4, 8]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %arg5, %arg5 : tensor<2x1x4x8x8xf32>, tensor<2x8xi32>, tensor<2x8xi32>) outs(%{{.*}} : tensor<2x1x4x8xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: arith.cmpi sge
// CHECK-NOT: arith.cmpi sle
// CHECK: math.exp
// CHECK: tensor.extract %arg4
// CHECK-NOT: {{= moma\.}}
// CHECK: return
func.func @untied_mqa_noncausal(%x: tensor<2x8x32xf32>,
    %wq: tensor<2x32x32xf32>, %wk: tensor<2x32x8xf32>,
    %wv: tensor<2x32x8xf32>, %wo: tensor<2x32x32xf32>, %pos: tensor<2x8xi32>,
    %mod: tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  %y = moma.attention %x, %wq, %wk, %wv, %wo positions %pos modality %mod heads 4 kv_heads 1 head_dim 8 {causal = false} : (tensor<2x8x32xf32>, tensor<2x32x32xf32>, tensor<2x32x8xf32>, tensor<2x32x8xf32>, tensor<2x32x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

}
