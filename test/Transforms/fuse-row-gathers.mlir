// RUN: moma-opt %s -split-input-file --moma-fuse-row-gathers | FileCheck %s

// moma.dispatch's row gather (tokens[s, d] = x[slot_token[s], d], 0 for an
// empty slot) read by the grouped expert GEMM: the GEMM reads x through
// slot_token itself, and the reduction dimension, which only the gathered
// operand spanned, gets a shape operand.
// CHECK-LABEL: func.func @dispatch_into_experts
// CHECK-SAME:    (%[[X:.*]]: tensor<6x4xf32>, %[[ST:.*]]: tensor<8xi32>, %[[E:.*]]: tensor<8xi32>, %[[W:.*]]: tensor<2x4x3xf32>)
// CHECK:         %[[SHAPE:.*]] = tensor.empty() : tensor<4xf32>
// CHECK:         %[[Y:.*]] = linalg.generic
// CHECK-SAME:      ins(%[[ST]], %[[E]], %[[SHAPE]] : tensor<8xi32>, tensor<8xi32>, tensor<4xf32>)
// CHECK:         ^bb0(%[[T:.*]]: i32, %[[S:.*]]: i32, %{{.*}}: f32, %[[OUT:.*]]: f32):
// CHECK:           %[[K:.*]] = linalg.index 2 : index
// CHECK:           %[[XV:.*]] = tensor.extract %[[X]][%{{.*}}, %[[K]]] : tensor<6x4xf32>
// CHECK:           %[[A:.*]] = arith.select %{{.*}}, %[[XV]], %{{.*}} : f32
// CHECK:           %[[WV:.*]] = tensor.extract %[[W]]
// CHECK:           arith.mulf %[[A]], %[[WV]] : f32
// CHECK-NOT:     linalg.generic
// CHECK:         return %[[Y]]
#gather_in = affine_map<(s, d) -> (s)>
#gather_out = affine_map<(s, d) -> (s, d)>
func.func @dispatch_into_experts(%x: tensor<6x4xf32>, %st: tensor<8xi32>, %e: tensor<8xi32>, %w: tensor<2x4x3xf32>) -> tensor<8x3xf32> {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c5 = arith.constant 5 : i32
  %c6 = arith.constant 6 : i32
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<8x4xf32>
  %tokens = linalg.generic {indexing_maps = [#gather_in, #gather_out], iterator_types = ["parallel", "parallel"]} ins(%st : tensor<8xi32>) outs(%empty : tensor<8x4xf32>) {
  ^bb0(%t: i32, %out: f32):
    %lo = arith.cmpi sge, %t, %c0 : i32
    %hi = arith.cmpi slt, %t, %c6 : i32
    %valid = arith.andi %lo, %hi : i1
    %a = arith.maxsi %t, %c0 : i32
    %b = arith.minsi %a, %c5 : i32
    %row = arith.index_cast %b : i32 to index
    %col = linalg.index 1 : index
    %v = tensor.extract %x[%row, %col] : tensor<6x4xf32>
    %r = arith.select %valid, %v, %zero : f32
    linalg.yield %r : f32
  } -> tensor<8x4xf32>
  %init = arith.constant dense<0.0> : tensor<8x3xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (t)>, affine_map<(t, n, k) -> (t, n)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%tokens, %e : tensor<8x4xf32>, tensor<8xi32>) outs(%init : tensor<8x3xf32>) {
  ^bb0(%in: f32, %s: i32, %out: f32):
    %a = arith.maxsi %s, %c0 : i32
    %b = arith.minsi %a, %c1 : i32
    %slice = arith.index_cast %b : i32 to index
    %n = linalg.index 1 : index
    %k = linalg.index 2 : index
    %wv = tensor.extract %w[%slice, %k, %n] : tensor<2x4x3xf32>
    %p = arith.mulf %in, %wv : f32
    %sum = arith.addf %out, %p : f32
    linalg.yield %sum : f32
  } -> tensor<8x3xf32>
  return %y : tensor<8x3xf32>
}

// -----

// A gather with a second user stays: fusing it would compute it twice.
// CHECK-LABEL: func.func @two_users
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel"]
// CHECK:         linalg.matmul
func.func @two_users(%x: tensor<6x4xf32>, %st: tensor<8xi32>, %w: tensor<4x3xf32>) -> (tensor<8x3xf32>, tensor<8x4xf32>) {
  %c0 = arith.constant 0 : i32
  %c5 = arith.constant 5 : i32
  %empty = tensor.empty() : tensor<8x4xf32>
  %tokens = linalg.generic {indexing_maps = [affine_map<(s, d) -> (s)>, affine_map<(s, d) -> (s, d)>], iterator_types = ["parallel", "parallel"]} ins(%st : tensor<8xi32>) outs(%empty : tensor<8x4xf32>) {
  ^bb0(%t: i32, %out: f32):
    %a = arith.maxsi %t, %c0 : i32
    %b = arith.minsi %a, %c5 : i32
    %row = arith.index_cast %b : i32 to index
    %col = linalg.index 1 : index
    %v = tensor.extract %x[%row, %col] : tensor<6x4xf32>
    linalg.yield %v : f32
  } -> tensor<8x4xf32>
  %init = arith.constant dense<0.0> : tensor<8x3xf32>
  %y = linalg.matmul ins(%tokens, %w : tensor<8x4xf32>, tensor<4x3xf32>) outs(%init : tensor<8x3xf32>) -> tensor<8x3xf32>
  return %y, %tokens : tensor<8x3xf32>, tensor<8x4xf32>
}

// -----

// A producer that computes more than indices (here an exp) is no row
// gather: fused into the GEMM it would run once per output column.
// CHECK-LABEL: func.func @not_a_gather
// CHECK:         math.exp
// CHECK:         linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]
// CHECK-SAME:      ins(%{{.*}}, %{{.*}} : tensor<8x4xf32>, tensor<4x3xf32>)
func.func @not_a_gather(%x: tensor<6x4xf32>, %st: tensor<8xi32>, %w: tensor<4x3xf32>) -> tensor<8x3xf32> {
  %c0 = arith.constant 0 : i32
  %c5 = arith.constant 5 : i32
  %empty = tensor.empty() : tensor<8x4xf32>
  %tokens = linalg.generic {indexing_maps = [affine_map<(s, d) -> (s)>, affine_map<(s, d) -> (s, d)>], iterator_types = ["parallel", "parallel"]} ins(%st : tensor<8xi32>) outs(%empty : tensor<8x4xf32>) {
  ^bb0(%t: i32, %out: f32):
    %a = arith.maxsi %t, %c0 : i32
    %b = arith.minsi %a, %c5 : i32
    %row = arith.index_cast %b : i32 to index
    %col = linalg.index 1 : index
    %v = tensor.extract %x[%row, %col] : tensor<6x4xf32>
    %e = math.exp %v : f32
    linalg.yield %e : f32
  } -> tensor<8x4xf32>
  %init = arith.constant dense<0.0> : tensor<8x3xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (k, n)>, affine_map<(t, n, k) -> (t, n)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%tokens, %w : tensor<8x4xf32>, tensor<4x3xf32>) outs(%init : tensor<8x3xf32>) {
  ^bb0(%in: f32, %in2: f32, %out: f32):
    %p = arith.mulf %in, %in2 : f32
    %sum = arith.addf %out, %p : f32
    linalg.yield %sum : f32
  } -> tensor<8x3xf32>
  return %y : tensor<8x3xf32>
}
