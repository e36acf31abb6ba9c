// The mixture-of-depths ops lower to linalg generics (scores, selection
// keys and per-sequence thresholds, gathers, masks) and scf.for loops over tensors (compaction of the kept
// positions, scatter of the region's rows); depth regions are inlined and
// their bodies lowered too. No moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Keep K = floor(8 * 0.25) = 2 positions per sequence.
// CHECK-LABEL: func.func @route
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[K:.*]] = arith.constant 2 : i64
// CHECK-DAG: %[[NONE:.*]] = arith.constant -1 : i32
// Scores r = sigmoid(x . w).
// CHECK: %[[LOGITS:.*]] = linalg.matmul ins(%{{.*}}, %arg1 : tensor<16x32xf32>, tensor<32x1xf32>)
// CHECK: %[[R:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xf32>)
// CHECK: math.exp
// Selection keys (the score's ordered bits, then 7 - l: ties to the lower
// position; 32 + 3 bits), one threshold per sequence reached by exactly K
// keys (a search over the 35 key bits, parallel over the sequences), and
// keep = key >= threshold.
// CHECK: %[[KEYS:.*]] = linalg.generic {{.*}} ins(%[[R]] : tensor<2x8xf32>) outs(%{{.*}} : tensor<2x8xi64>)
// CHECK: arith.bitcast %{{.*}} : f32 to i32
// CHECK: arith.subi %c7,
// CHECK: %[[TH:.*]] = linalg.generic {{.*}} iterator_types = ["parallel"]} outs(%{{.*}} : tensor<2xi64>)
// CHECK: scf.for %{{.*}} = %c0 to %c35 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK: scf.for %{{.*}} = %c0 to %c8 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK: tensor.extract %[[KEYS]]
// CHECK: arith.cmpi sge, %{{.*}}, %[[K]] : i64
// CHECK: %[[KEEP:.*]] = linalg.generic {{.*}} ins(%[[KEYS]], %[[TH]] : tensor<2x8xi64>, tensor<2xi64>)
// CHECK: arith.cmpi uge
// Compaction in ascending position order.
// CHECK: %[[IDX0:.*]] = linalg.fill ins(%[[NONE]] : i32) outs(%{{.*}} : tensor<2x2xi32>)
// CHECK: %[[GATE0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%{{.*}} : tensor<2x2xf32>)
// CHECK: %[[OUT:.*]]:2 = scf.for %[[B:[a-z0-9_]+]] = {{.*}} iter_args(%{{.*}} = %[[IDX0]], %{{.*}} = %[[GATE0]]) -> (tensor<2x2xi32>, tensor<2x2xf32>)
// CHECK: scf.for %[[L:[a-z0-9_]+]] = {{.*}} -> (tensor<2x2xi32>, tensor<2x2xf32>, index)
// CHECK: tensor.extract %[[KEEP]][%[[B]], %[[L]]]
// CHECK: scf.if
// CHECK: tensor.extract %[[R]][%[[B]], %[[L]]]
// CHECK: tensor.insert
// CHECK: tensor.insert
// CHECK: return %[[OUT]]#0, %[[OUT]]#1
func.func @route(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>)
    -> (tensor<2x2xi32>, tensor<2x2xf32>) {
  %idx, %gate = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return %idx, %gate : tensor<2x2xi32>, tensor<2x2xf32>
}

// With auxiliary logits: keep aux > 0, K = L, no ranking.
// CHECK-LABEL: func.func @route_aux
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[AUX:.*]] = tensor.collapse_shape %arg2 {{\[}}[0], [1, 2]] : tensor<2x8x1xf32> into tensor<2x8xf32>
// CHECK: linalg.generic {{.*}} ins(%[[AUX]] : tensor<2x8xf32>) outs(%{{.*}} : tensor<2x8xi32>)
// CHECK: arith.cmpf ogt, %{{.*}}, %[[ZERO]] : f32
// CHECK-NOT: arith.cmpf oeq
// CHECK: scf.for
// CHECK: scf.for {{.*}} -> (tensor<2x8xi32>, tensor<2x8xf32>, index)
func.func @route_aux(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>,
    %aux: tensor<2x8x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>) {
  %idx, %gate = moma.depth_route %x, %w aux %aux {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  return %idx, %gate : tensor<2x8xi32>, tensor<2x8xf32>
}

// A gated region around attention + untied FFN: gather, inlined (and
// lowered) body, gated mix, scatter.
// CHECK-LABEL: func.func @region_gated
// CHECK-NOT: {{= moma\.|moma\.yield}}
// Gathered rows: 0 for empty slots (idx outside [0, L)).
// CHECK: %[[XS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x2x32xf32>)
// CHECK: tensor.extract %arg0
// CHECK: arith.select
// Modality ids and positions: -1 for empty slots.
// CHECK: %[[MS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x2xi32>)
// CHECK: tensor.extract %arg1
// CHECK: %[[PS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x2xi32>)
// The body: attention at positions PS, FFN selected by MS.
// CHECK: tensor.collapse_shape %[[XS]]
// CHECK: linalg.matmul
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[PS]], %[[PS]] :
// CHECK: math.exp
// CHECK: %[[MS1:.*]] = tensor.collapse_shape %[[MS]] {{\[}}[0, 1]] : tensor<2x2xi32> into tensor<4xi32>
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, %[[MS1]] : tensor<4x32xf32>, tensor<4xi32>) outs(%{{.*}} : tensor<4x128xf32>)
// CHECK: %[[O:.*]] = tensor.expand_shape %{{.*}} {{\[}}[0, 1], [2]] output_shape [2, 2, 32]
// New rows xs + gate * (o - xs).
// CHECK: %[[NEW:.*]] = linalg.generic {{.*}} ins(%[[XS]], %[[O]], %arg3 : tensor<2x2x32xf32>, tensor<2x2x32xf32>, tensor<2x2xf32>)
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: arith.addf
// Scatter into a copy of x, slot by slot.
// CHECK: %[[Y:.*]] = scf.for %[[B:[a-z0-9_]+]] = {{.*}} iter_args(%{{.*}} = %arg0) -> (tensor<2x8x32xf32>)
// CHECK: scf.for %[[S:[a-z0-9_]+]] = {{.*}} iter_args(%[[ACC:[a-z0-9_]+]] = %{{.*}}) -> (tensor<2x8x32xf32>)
// CHECK: %[[I:.*]] = tensor.extract %arg2[%[[B]], %[[S]]]
// CHECK: scf.if
// CHECK: %[[POS:.*]] = arith.index_cast %[[I]] : i32 to index
// CHECK: %[[ROW:.*]] = tensor.extract_slice %[[NEW]][%[[B]], %[[S]], 0] [1, 1, 32] [1, 1, 1]
// CHECK: tensor.insert_slice %[[ROW]] into %[[ACC]][%[[B]], %[[POS]], 0] [1, 1, 32] [1, 1, 1]
// CHECK: return %[[Y]]
func.func @region_gated(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %idx: tensor<2x2xi32>, %gate: tensor<2x2xf32>, %wa: tensor<32x32xf32>,
    %wi: tensor<2x32x128xf32>, %wo: tensor<2x64x32xf32>) -> tensor<2x8x32xf32> {
  %y = moma.depth_region %x, %mod, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    %a = moma.attention %xs, %wa, %wa, %wa, %wa positions %ps heads 4 kv_heads 4 head_dim 8 : (tensor<2x2x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<2x2xi32>) -> tensor<2x2x32xf32>
    %f = moma.ffn swiglu %a, %wi, %wo modality %ms : (tensor<2x2x32xf32>, tensor<2x32x128xf32>, tensor<2x64x32xf32>, tensor<2x2xi32>) -> tensor<2x2x32xf32>
    moma.yield %f : tensor<2x2x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// Ungated: the body's rows are scattered as they are.
// CHECK-LABEL: func.func @region_ungated
// CHECK-NOT: {{= moma\.|moma\.yield}}
// CHECK: %[[XS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x8xi32>) outs(%{{.*}} : tensor<2x8x32xf32>)
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %arg0)
// CHECK: scf.for
// CHECK: scf.if
// CHECK: tensor.extract_slice %[[XS]]
// CHECK: tensor.insert_slice
func.func @region_ungated(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %idx: tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  %y = moma.depth_region %x, %mod, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x8xi32>, %ps: tensor<2x8xi32>):
    %s = moma.stop_gradient %xs : tensor<2x8x32xf32>
    moma.yield %s : tensor<2x8x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// A body that yields its argument directly, plus extra values (the gathered
// modality ids and an outer value) returned as the region's extra results.
// CHECK-LABEL: func.func @region_identity_extras
// CHECK-NOT: {{= moma\.|moma\.yield}}
// CHECK: %[[XS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x2x32xf32>)
// CHECK: %[[MS:.*]] = linalg.generic {{.*}} ins(%arg2 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x2xi32>)
// CHECK: %[[Y:.*]] = scf.for
// CHECK: tensor.extract_slice %[[XS]]
// CHECK: return %[[Y]], %[[MS]], %arg3
func.func @region_identity_extras(%x: tensor<2x8x32xf32>,
    %mod: tensor<2x8xi32>, %idx: tensor<2x2xi32>, %l: tensor<f32>)
    -> (tensor<2x8x32xf32>, tensor<2x2xi32>, tensor<f32>) {
  %y, %m, %e = moma.depth_region %x, %mod, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> (tensor<2x8x32xf32>, tensor<2x2xi32>, tensor<f32>) {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs, %ms, %l : tensor<2x2x32xf32>, tensor<2x2xi32>, tensor<f32>
  }
  return %y, %m, %e : tensor<2x8x32xf32>, tensor<2x2xi32>, tensor<f32>
}

// CHECK-LABEL: func.func @mask
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[M:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<2x2xi32>) outs(%{{.*}} : tensor<2x8xf32>)
// CHECK: linalg.index 1
// CHECK: arith.cmpi eq
// CHECK: %[[R:.*]] = tensor.expand_shape %[[M]] {{\[}}[0], [1, 2]] output_shape [2, 8, 1]
// CHECK: return %[[R]]
func.func @mask(%idx: tensor<2x2xi32>) -> tensor<2x8x1xf32> {
  %m = moma.depth_mask %idx : (tensor<2x2xi32>) -> tensor<2x8x1xf32>
  return %m : tensor<2x8x1xf32>
}

}
