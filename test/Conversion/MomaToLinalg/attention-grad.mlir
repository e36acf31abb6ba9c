// moma.attention_grad lowers to the recomputed forward (projections, RoPE,
// masked softmax, p v), then the backward: dy with padding queries' rows
// zeroed, dWo = o^T dy and do = dy Wo^T, dv = p^T do and dp = do v^T summed
// over the query heads of a kv head, ds = p (dp - rowsum(p dp)) / sqrt(d),
// dq = ds k and dk = ds^T q, RoPE transposed on dq and dk, the weight
// gradients x^T d* and dx = dq Wq^T + dk Wk^T + dv Wv^T; no moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Grouped-query attention (4 query heads over 2 kv heads), RoPE at the
// default positions, causal.
// CHECK-LABEL: func.func @gqa_rope
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[SQRT:.*]] = arith.constant 2.82842708 : f32
// CHECK: %[[ROWS:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>
// CHECK: linalg.matmul ins(%[[ROWS]], %arg1 : tensor<16x32xf32>, tensor<32x32xf32>)
// CHECK: linalg.matmul ins(%[[ROWS]], %arg2 : tensor<16x32xf32>, tensor<32x16xf32>)
// CHECK: %[[V:.*]] = linalg.matmul ins(%[[ROWS]], %arg3 : tensor<16x32xf32>, tensor<32x16xf32>)
// CHECK: %[[V4:.*]] = tensor.expand_shape %[[V]] {{\[}}[0, 1], [2, 3]] output_shape [2, 8, 2, 8]
// CHECK: %[[POS:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xi32>)
// CHECK: %[[TAB:.*]]:2 = linalg.generic {{.*}} ins(%[[POS]], {{.*}} : tensor<2x8xi32>, tensor<4xf32>, tensor<4xf32>)
// Forward rotation of q and k: (x1 c - x2 s, x2 c + x1 s).
// CHECK: linalg.generic {{.*}} ins({{.*}}, %[[TAB]]#0, %[[TAB]]#1 : {{.*}}) outs
// CHECK: arith.subf
// CHECK: arith.addf
// CHECK: %[[KR:.*]] = tensor.insert_slice {{.*}}[0, 0, 0, 4] [2, 8, 2, 4]
// CHECK: %[[Q5:.*]] = tensor.expand_shape {{.*}} {{\[}}[0], [1], [2, 3], [4]] output_shape [2, 8, 2, 2, 8]
// CHECK: %[[S:.*]] = linalg.generic {{.*}} ins(%[[Q5]], %[[KR]] : tensor<2x8x2x2x8xf32>, tensor<2x8x2x8xf32>) outs(%{{.*}} : tensor<2x2x2x8x8xf32>)
// CHECK: %[[P:.*]] = linalg.generic {{.*}} ins(%[[S]], %{{.*}}, %{{.*}}, %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x2x2x8x8xf32>)
// CHECK: math.exp
// CHECK: %[[O:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[V4]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x8x2x2x8xf32>)
// dy rows of padding queries (p < 0) become 0.
// CHECK: %[[DYR:.*]] = tensor.collapse_shape %arg5 {{\[}}[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>
// CHECK: %[[TPOS:.*]] = tensor.collapse_shape %[[POS]] {{\[}}[0, 1]] : tensor<2x8xi32> into tensor<16xi32>
// CHECK: %[[DY:.*]] = linalg.generic {{.*}} ins(%[[DYR]], %[[TPOS]] : tensor<16x32xf32>, tensor<16xi32>)
// CHECK: arith.cmpi sge
// CHECK: arith.select
// dWo = o^T dy.
// CHECK: %[[OF:.*]] = tensor.collapse_shape %[[O]] {{\[}}[0, 1], [2, 3, 4]] : tensor<2x8x2x2x8xf32> into tensor<16x32xf32>
// CHECK: %[[DWO:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[OF]], %[[DY]] : tensor<16x32xf32>, tensor<16x32xf32>) outs(%{{.*}} : tensor<32x32xf32>)
// do = dy Wo^T (weightGradient and transposedTokenMatmul read the
// operands as they are: no transposed copies).
// CHECK: %[[DO:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%[[DY]], %arg4 : tensor<16x32xf32>, tensor<32x32xf32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: %[[DO5:.*]] = tensor.expand_shape %[[DO]] {{\[}}[0, 1], [2, 3, 4]] output_shape [2, 8, 2, 2, 8]
// dv[b, j, g, c]: reduced over the query heads r and the queries i.
// CHECK: %[[DV:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction", "reduction"]} ins(%[[P]], %[[DO5]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x8x2x8xf32>)
// dp = do . v, the scores' contraction.
// CHECK: %[[DP:.*]] = linalg.generic {{.*}} ins(%[[DO5]], %[[V4]] : tensor<2x8x2x2x8xf32>, tensor<2x8x2x8xf32>) outs(%{{.*}} : tensor<2x2x2x8x8xf32>)
// ds = p (dp - sum_j p dp) / sqrt(d).
// CHECK: %[[PDP:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[DP]] : {{.*}})
// CHECK: %[[ROW:.*]] = linalg.generic {{.*}} ins(%[[PDP]] : tensor<2x2x2x8x8xf32>) outs(%{{.*}} : tensor<2x2x2x8xf32>)
// CHECK: %[[DS:.*]] = linalg.generic {{.*}} ins(%[[P]], %[[DP]], %[[ROW]] : {{.*}})
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: arith.divf %{{.*}}, %[[SQRT]]
// dq = ds k, dk = ds^T q.
// CHECK: %[[DQ:.*]] = linalg.generic {{.*}} ins(%[[DS]], %[[KR]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x8x2x2x8xf32>)
// CHECK: %[[DK:.*]] = linalg.generic {{.*}} ins(%[[DS]], %[[Q5]], %[[POS]], %[[POS]] : {{.*}}) outs(%{{.*}} : tensor<2x8x2x8xf32>)
// RoPE transposed: (g1 c + g2 s, g2 c - g1 s) with the same tables.
// CHECK: %[[DQ4:.*]] = tensor.collapse_shape %[[DQ]] {{\[}}[0], [1], [2, 3], [4]] : tensor<2x8x2x2x8xf32> into tensor<2x8x4x8xf32>
// CHECK: tensor.extract_slice %[[DQ4]][0, 0, 0, 0] [2, 8, 4, 4]
// CHECK: linalg.generic {{.*}} ins({{.*}}, %[[TAB]]#0, %[[TAB]]#1 : {{.*}}) outs
// CHECK: arith.addf
// CHECK: arith.subf
// CHECK: %[[DQR:.*]] = tensor.insert_slice {{.*}}[0, 0, 0, 4] [2, 8, 4, 4]
// CHECK: tensor.extract_slice %[[DK]][0, 0, 0, 0] [2, 8, 2, 4]
// CHECK: %[[DKR:.*]] = tensor.insert_slice {{.*}}[0, 0, 0, 4] [2, 8, 2, 4]
// CHECK: %[[DQF:.*]] = tensor.collapse_shape %[[DQR]] {{\[}}[0, 1], [2, 3]] : tensor<2x8x4x8xf32> into tensor<16x32xf32>
// CHECK: %[[DKF:.*]] = tensor.collapse_shape %[[DKR]] {{\[}}[0, 1], [2, 3]] : tensor<2x8x2x8xf32> into tensor<16x16xf32>
// CHECK: %[[DVF:.*]] = tensor.collapse_shape %[[DV]] {{\[}}[0, 1], [2, 3]] : tensor<2x8x2x8xf32> into tensor<16x16xf32>
// Weight gradients x^T d*.
// CHECK: %[[DWQ:.*]] = linalg.generic {{.*}} ins(%[[ROWS]], %[[DQF]] : tensor<16x32xf32>, tensor<16x32xf32>) outs(%{{.*}} : tensor<32x32xf32>)
// CHECK: %[[DWK:.*]] = linalg.generic {{.*}} ins(%[[ROWS]], %[[DKF]] : tensor<16x32xf32>, tensor<16x16xf32>) outs(%{{.*}} : tensor<32x16xf32>)
// CHECK: %[[DWV:.*]] = linalg.generic {{.*}} ins(%[[ROWS]], %[[DVF]] : tensor<16x32xf32>, tensor<16x16xf32>) outs(%{{.*}} : tensor<32x16xf32>)
// dx = dq Wq^T + dk Wk^T + dv Wv^T.
// CHECK: %[[DXQ:.*]] = linalg.generic {{.*}} ins(%[[DQF]], %arg1 : tensor<16x32xf32>, tensor<32x32xf32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: %[[DXK:.*]] = linalg.generic {{.*}} ins(%[[DKF]], %arg2 : tensor<16x16xf32>, tensor<32x16xf32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: %[[DXV:.*]] = linalg.generic {{.*}} ins(%[[DVF]], %arg3 : tensor<16x16xf32>, tensor<32x16xf32>) outs(%{{.*}} : tensor<16x32xf32>)
// CHECK: %[[DX:.*]] = linalg.generic {{.*}} ins(%[[DXQ]], %[[DXK]], %[[DXV]] : {{.*}})
// CHECK: %[[DX3:.*]] = tensor.expand_shape %[[DX]] {{\[}}[0, 1], [2]] output_shape [2, 8, 32]
// CHECK: return %[[DX3]], %[[DWQ]], %[[DWK]], %[[DWV]], %[[DWO]]
func.func @gqa_rope(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>,
    %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>, %wo: tensor<32x32xf32>,
    %dy: tensor<2x8x32xf32>)
    -> (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
        tensor<32x16xf32>, tensor<32x32xf32>) {
  %dx, %dq, %dk, %dv, %do = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy
      heads 4 kv_heads 2 head_dim 8 {rope_theta = 1.0e+04 : f64}
      : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
         tensor<32x16xf32>, tensor<32x32xf32>, tensor<2x8x32xf32>)
      -> (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>,
          tensor<32x16xf32>, tensor<32x32xf32>)
  return %dx, %dq, %dk, %dv, %do : tensor<2x8x32xf32>, tensor<32x32xf32>,
      tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>
}

// Untied (per-modality) projections, multi-query, given positions, no
// RoPE, not causal, f64: every weight gradient [M, K, N] sums, for slice m,
// the tokens whose clamped modality id is m; dx reads the transposed slice
// of each token.
// CHECK-LABEL: func.func @untied_mqa_noncausal
// CHECK-NOT: {{= moma\.}}
// CHECK-NOT: math.cos
// CHECK-NOT: arith.cmpi sle
// CHECK: %[[MOD:.*]] = tensor.collapse_shape %arg7 {{\[}}[0, 1]] : tensor<2x8xi32> into tensor<16xi32>
// CHECK: %[[DYR:.*]] = tensor.collapse_shape %arg5
// CHECK: %[[TPOS:.*]] = tensor.collapse_shape %arg6
// CHECK: %[[DY:.*]] = linalg.generic {{.*}} ins(%[[DYR]], %[[TPOS]] : tensor<16x32xf64>, tensor<16xi32>)
// dWo: iteration (m, k, n, t), the tokens reduced.
// CHECK: %[[DWO:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%{{.*}}, %[[DY]], %[[MOD]] : tensor<16x32xf64>, tensor<16x32xf64>, tensor<16xi32>) outs(%{{.*}} : tensor<2x32x32xf64>)
// CHECK: arith.cmpi eq
// CHECK: arith.select
// do: the untied token product with Wo read transposed per slice.
// CHECK: linalg.generic {{.*}} ins(%[[DY]], %[[MOD]] : tensor<16x32xf64>, tensor<16xi32>) outs(%{{.*}} : tensor<16x32xf64>)
// CHECK: tensor.extract %arg4
// CHECK: %[[DWQ:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %[[MOD]] : tensor<16x32xf64>, tensor<16x32xf64>, tensor<16xi32>) outs(%{{.*}} : tensor<2x32x32xf64>)
// CHECK: %[[DWK:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %[[MOD]] : tensor<16x32xf64>, tensor<16x8xf64>, tensor<16xi32>) outs(%{{.*}} : tensor<2x32x8xf64>)
// CHECK: %[[DWV:.*]] = linalg.generic {{.*}} ins(%{{.*}}, %{{.*}}, %[[MOD]] : tensor<16x32xf64>, tensor<16x8xf64>, tensor<16xi32>) outs(%{{.*}} : tensor<2x32x8xf64>)
// CHECK: tensor.extract %arg1
// CHECK: tensor.extract %arg2
// CHECK: tensor.extract %arg3
// CHECK: return %{{.*}}, %[[DWQ]], %[[DWK]], %[[DWV]], %[[DWO]]
func.func @untied_mqa_noncausal(%x: tensor<2x8x32xf64>,
    %wq: tensor<2x32x32xf64>, %wk: tensor<2x32x8xf64>,
    %wv: tensor<2x32x8xf64>, %wo: tensor<2x32x32xf64>,
    %dy: tensor<2x8x32xf64>, %pos: tensor<2x8xi32>, %mod: tensor<2x8xi32>)
    -> (tensor<2x8x32xf64>, tensor<2x32x32xf64>, tensor<2x32x8xf64>,
        tensor<2x32x8xf64>, tensor<2x32x32xf64>) {
  %dx, %dq, %dk, %dv, %do = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy
      positions %pos modality %mod heads 4 kv_heads 1 head_dim 8
      {causal = false}
      : (tensor<2x8x32xf64>, tensor<2x32x32xf64>, tensor<2x32x8xf64>,
         tensor<2x32x8xf64>, tensor<2x32x32xf64>, tensor<2x8x32xf64>,
         tensor<2x8xi32>, tensor<2x8xi32>)
      -> (tensor<2x8x32xf64>, tensor<2x32x32xf64>, tensor<2x32x8xf64>,
          tensor<2x32x8xf64>, tensor<2x32x32xf64>)
  return %dx, %dq, %dk, %dv, %do : tensor<2x8x32xf64>, tensor<2x32x32xf64>,
      tensor<2x32x8xf64>, tensor<2x32x8xf64>, tensor<2x32x32xf64>
}

}
