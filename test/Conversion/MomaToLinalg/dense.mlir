// The token-wise moma ops (embed, norm, linear, ffn, scale, stop_gradient)
// lower to linalg.matmul / linalg.generic on the flattened token rows; no
// moma op remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// Token ids (and modality ids) are clamped before they index the table.
// CHECK-LABEL: func.func @embed
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK-DAG: %[[LAST:.*]] = arith.constant 127 : i32
// CHECK-DAG: %[[ZERO:.*]] = arith.constant 0 : i32
// CHECK: %[[E:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x8xi32>) outs(%{{.*}} : tensor<2x8x32xf32>)
// CHECK-NEXT: ^bb0(%[[ID:.*]]: i32, %{{.*}}: f32):
// CHECK-NEXT: %[[LO:.*]] = arith.maxsi %[[ID]], %[[ZERO]] : i32
// CHECK-NEXT: %[[HI:.*]] = arith.minsi %[[LO]], %[[LAST]] : i32
// CHECK-NEXT: %[[ROW:.*]] = arith.index_cast %[[HI]] : i32 to index
// CHECK-NEXT: %[[COL:.*]] = linalg.index 2 : index
// CHECK-NEXT: tensor.extract %arg1[%[[ROW]], %[[COL]]] : tensor<128x32xf32>
// CHECK: %[[U:.*]] = linalg.generic {{.*}} ins(%arg0, %arg3 : tensor<2x8xi32>, tensor<2x8xi32>) outs(%{{.*}} : tensor<2x8x32xf32>)
// CHECK: arith.minsi %{{.*}}, %[[ONE]] : i32
// CHECK: arith.minsi %{{.*}}, %[[LAST]] : i32
// CHECK: tensor.extract %arg2[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<2x128x32xf32>
// CHECK: return %[[E]], %[[U]]
func.func @embed(%ids: tensor<2x8xi32>, %table: tensor<128x32xf32>,
    %tables: tensor<2x128x32xf32>, %mod: tensor<2x8xi32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %u = moma.embed %ids, %tables modality %mod : (tensor<2x8xi32>, tensor<2x128x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %h, %u : tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// RMSNorm (tied) and LayerNorm (untied weight and bias).
// CHECK-LABEL: func.func @norms
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[EPS6:.*]] = arith.constant 9.99999997E-7 : f32
// CHECK-DAG: %[[EPS5:.*]] = arith.constant 9.99999974E-6 : f32
// CHECK-DAG: %[[D:.*]] = arith.constant 3.200000e+01 : f32
// RMS: sum of squares over the features, then x / sqrt(ss / D + eps) * w.
// Two passes over the rows: the squares are summed in the reduction's
// body (no squared copy), the output recomputes the centred value.
// CHECK: %[[SS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<2x8x32xf32>) outs(%{{.*}} : tensor<2x8xf32>)
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: %[[RMS:.*]] = linalg.generic {{.*}} ins(%arg0, %[[SS]] : tensor<2x8x32xf32>, tensor<2x8xf32>)
// CHECK: arith.divf %{{.*}}, %[[D]]
// CHECK: arith.addf %{{.*}}, %[[EPS5]]
// CHECK: math.sqrt
// CHECK: arith.divf
// CHECK: tensor.extract %arg1[%{{.*}}] : tensor<32xf32>
// CHECK: arith.mulf
// LayerNorm: sum, mean, then the centred squares' sum.
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%arg0 : tensor<2x8x32xf32>) outs(%{{.*}} : tensor<2x8xf32>)
// CHECK: %[[MEAN:.*]] = linalg.generic {{.*}} ins(%[[SUM]] : tensor<2x8xf32>)
// CHECK: %[[VAR:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0, %[[MEAN]] : tensor<2x8x32xf32>, tensor<2x8xf32>)
// CHECK: arith.subf
// CHECK: arith.mulf
// CHECK: %[[LN:.*]] = linalg.generic {{.*}} ins(%arg0, %[[MEAN]], %[[VAR]], %arg4 : tensor<2x8x32xf32>, tensor<2x8xf32>, tensor<2x8xf32>, tensor<2x8xi32>)
// CHECK: arith.maxsi
// CHECK: arith.minsi
// CHECK: arith.addf %{{.*}}, %[[EPS6]]
// CHECK: arith.subf
// CHECK: tensor.extract %arg2[%{{.*}}, %{{.*}}] : tensor<2x32xf32>
// CHECK: tensor.extract %arg3[%{{.*}}, %{{.*}}] : tensor<2x32xf32>
// CHECK: arith.addf
// CHECK: return %[[RMS]], %[[LN]]
func.func @norms(%x: tensor<2x8x32xf32>, %g: tensor<32xf32>,
    %gs: tensor<2x32xf32>, %bs: tensor<2x32xf32>, %mod: tensor<2x8xi32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %n0 = moma.norm rms %x, %g : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %n1 = moma.norm layer %x, %gs bias %bs modality %mod {epsilon = 1.0e-6 : f64} : (tensor<2x8x32xf32>, tensor<2x32xf32>, tensor<2x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %n0, %n1 : tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// A post-norm residual add that is the norm's only use joins the norm's
// output pass (r + y, in the add's operand order); a norm with another use
// keeps its own result and the add stays element-wise.
// CHECK-LABEL: func.func @norm_residual
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[SS:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg0 : tensor<2x8x32xf32>)
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%arg0, %[[SS]], %arg2 : tensor<2x8x32xf32>, tensor<2x8xf32>, tensor<2x8x32xf32>)
// CHECK: tensor.extract %arg1
// CHECK: %[[N:.*]] = arith.mulf
// CHECK: arith.addf %in_{{[0-9]+}}, %[[N]] : f32
// CHECK-NEXT: linalg.yield
// CHECK: %[[SS2:.*]] = linalg.generic {{.*}} ins(%[[Y]] : tensor<2x8x32xf32>)
// CHECK: %[[N2:.*]] = linalg.generic {{.*}} ins(%[[Y]], %[[SS2]] : tensor<2x8x32xf32>, tensor<2x8xf32>)
// CHECK: %[[Z:.*]] = arith.addf %[[Y]], %[[N2]] : tensor<2x8x32xf32>
// CHECK: return %[[Z]], %[[N2]]
func.func @norm_residual(%x: tensor<2x8x32xf32>, %g: tensor<32xf32>,
    %r: tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %n = moma.norm rms %x, %g : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %y = arith.addf %r, %n : tensor<2x8x32xf32>
  %n2 = moma.norm rms %y, %g : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %z = arith.addf %y, %n2 : tensor<2x8x32xf32>
  return %z, %n2 : tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// x W + bias + 2 * (x A) B, and an untied projection.
// CHECK-LABEL: func.func @linears
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[TWO:.*]] = arith.constant 2.000000e+00 : f32
// CHECK: %[[ROWS:.*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<2x8x32xf32> into tensor<16x32xf32>
// CHECK: %[[XW:.*]] = linalg.matmul ins(%[[ROWS]], %arg1 : tensor<16x32xf32>, tensor<32x64xf32>)
// CHECK: %[[XWB:.*]] = linalg.generic {{.*}} ins(%[[XW]] : tensor<16x64xf32>)
// CHECK: tensor.extract %arg2
// CHECK: %[[XA:.*]] = linalg.matmul ins(%[[ROWS]], %arg3 : tensor<16x32xf32>, tensor<32x4xf32>)
// CHECK: %[[XAB:.*]] = linalg.matmul ins(%[[XA]], %arg4 : tensor<16x4xf32>, tensor<4x64xf32>)
// CHECK: %[[SUM:.*]] = linalg.generic {{.*}} ins(%[[XWB]], %[[XAB]] : tensor<16x64xf32>, tensor<16x64xf32>)
// CHECK: arith.mulf %{{.*}}, %[[TWO]]
// CHECK: arith.addf
// CHECK: %[[Y0:.*]] = tensor.expand_shape %[[SUM]] {{\[}}[0, 1], [2]] output_shape [2, 8, 64]
// CHECK: %[[MOD:.*]] = tensor.collapse_shape %arg6 {{\[}}[0, 1]] : tensor<2x8xi32> into tensor<16xi32>
// CHECK: %[[U:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%{{.*}}, %[[MOD]] : tensor<16x32xf32>, tensor<16xi32>) outs(%{{.*}} : tensor<16x64xf32>)
// CHECK: tensor.extract %arg5[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<2x32x64xf32>
// CHECK: %[[Y1:.*]] = tensor.expand_shape %[[U]]
// CHECK: return %[[Y0]], %[[Y1]]
func.func @linears(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>,
    %b: tensor<64xf32>, %la: tensor<32x4xf32>, %lb: tensor<4x64xf32>,
    %ws: tensor<2x32x64xf32>, %mod: tensor<2x8xi32>)
    -> (tensor<2x8x64xf32>, tensor<2x8x64xf32>) {
  %l0 = moma.linear %x, %w bias %b lora(%la, %lb) {lora_scale = 2.0 : f64} : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32>, tensor<32x4xf32>, tensor<4x64xf32>) -> tensor<2x8x64xf32>
  %l1 = moma.linear %x, %ws modality %mod : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  return %l0, %l1 : tensor<2x8x64xf32>, tensor<2x8x64xf32>
}

// SwiGLU (tied) and GELU (untied) FFNs.
// CHECK-LABEL: func.func @ffns
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[H:.*]] = linalg.matmul ins(%{{.*}}, %arg1 : tensor<16x32xf32>, tensor<32x128xf32>)
// CHECK: %[[GATE:.*]] = tensor.extract_slice %[[H]][0, 0] [16, 64] [1, 1]
// CHECK: %[[UP:.*]] = tensor.extract_slice %[[H]][0, 64] [16, 64] [1, 1]
// CHECK: %[[ACT:.*]] = linalg.generic {{.*}} ins(%[[GATE]], %[[UP]] : tensor<16x64xf32>, tensor<16x64xf32>)
// CHECK: math.exp
// CHECK: linalg.matmul ins(%[[ACT]], %arg2 : tensor<16x64xf32>, tensor<64x32xf32>)
// CHECK: tensor.extract %arg3
// CHECK: math.erf
// CHECK: tensor.extract %arg4
// CHECK: return
func.func @ffns(%x: tensor<2x8x32xf32>, %wi: tensor<32x128xf32>,
    %wd: tensor<64x32xf32>, %gi: tensor<2x32x64xf32>, %gd: tensor<2x64x32xf32>,
    %mod: tensor<2x8xi32>) -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %f = moma.ffn swiglu %x, %wi, %wd : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
  %g = moma.ffn gelu %x, %gi, %gd modality %mod : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %f, %g : tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// scale broadcasts the per-token factor; stop_gradient is the identity.
// CHECK-LABEL: func.func @scale_stop
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[Y:.*]] = linalg.generic {{.*}} ins(%arg1, %arg0 : tensor<2x8xf32>, tensor<2x8x32xf32>)
// CHECK: arith.mulf
// CHECK: return %[[Y]], %arg0
func.func @scale_stop(%x: tensor<2x8x32xf32>, %s: tensor<2x8xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
  %z = moma.stop_gradient %x : tensor<2x8x32xf32>
  return %y, %z : tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

}
