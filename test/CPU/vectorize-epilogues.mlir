// RUN: moma-opt %s -split-input-file --moma-cpu-vectorize-contractions | FileCheck %s

// The first expert GEMM's activation (GELU) in its epilogue: once the last
// slice of K (72 > kc) is in, the accumulators go through the cloned body
// as vectors (the tail of N = 20 masked) and into the activation's buffer;
// no loop over C is left.
// CHECK-LABEL: func.func @gelu
// CHECK-NOT:     linalg.generic
// CHECK:         scf.parallel
// CHECK:           vector.store %{{.*}}, %arg2
// CHECK:           %[[LAST:.*]] = arith.cmpi eq, %{{.*}}, %c72
// CHECK:           scf.if %[[LAST]] {
// CHECK:             math.erf %{{.*}} : vector<8xf32>
// CHECK:             vector.store %{{.*}}, %arg3
// CHECK:             math.erf %{{.*}} : vector<8xf32>
// CHECK:             vector.maskedstore %arg3
// CHECK-NOT:     linalg.generic
#mk = affine_map<(d0, d1) -> (d0, d1)>
func.func @gelu(%a: memref<13x72xf32>, %b: memref<72x20xf32>, %c: memref<13x20xf32>, %h: memref<13x20xf32>) {
  %half = arith.constant 0.5 : f32
  %one = arith.constant 1.0 : f32
  %rsqrt2 = arith.constant 0.707106769 : f32
  linalg.matmul ins(%a, %b : memref<13x72xf32>, memref<72x20xf32>) outs(%c : memref<13x20xf32>)
  linalg.generic {indexing_maps = [#mk, #mk], iterator_types = ["parallel", "parallel"]} ins(%c : memref<13x20xf32>) outs(%h : memref<13x20xf32>) {
  ^bb0(%in: f32, %out: f32):
    %0 = arith.mulf %in, %rsqrt2 : f32
    %1 = math.erf %0 : f32
    %2 = arith.addf %1, %one : f32
    %3 = arith.mulf %in, %half : f32
    %4 = arith.mulf %3, %2 : f32
    linalg.yield %4 : f32
  }
  return
}

// -----

// Grouped experts: the mask of slots outside every expert (a per-row
// input, loaded as a scalar) selects whole vectors in the epilogue of the
// row-selected GEMM (row by row too where a tile's rows select
// different experts).
// CHECK-LABEL: func.func @expert_mask
// CHECK-NOT:     linalg.generic
// CHECK:         scf.parallel
// CHECK:           vector.fma
// CHECK:           memref.load %arg1
// CHECK:           arith.cmpi sge, %{{.*}}, %c0_i32 : i32
// CHECK:           arith.select %{{.*}}, %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK:           vector.store %{{.*}}, %arg4
func.func @expert_mask(%x: memref<32x16xf32>, %sel: memref<32xi32>, %w: memref<2x16x32xf32>, %y: memref<32x32xf32>, %out: memref<32x32xf32>) {
  %c0_i32 = arith.constant 0 : i32
  %c1_i32 = arith.constant 1 : i32
  %zero = arith.constant 0.0 : f32
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d0)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %sel : memref<32x16xf32>, memref<32xi32>) outs(%y : memref<32x32xf32>) {
  ^bb0(%in: f32, %s: i32, %o: f32):
    %0 = arith.maxsi %s, %c0_i32 : i32
    %1 = arith.minsi %0, %c1_i32 : i32
    %2 = arith.index_cast %1 : i32 to index
    %3 = linalg.index 1 : index
    %4 = linalg.index 2 : index
    %5 = memref.load %w[%2, %4, %3] : memref<2x16x32xf32>
    %6 = arith.mulf %in, %5 : f32
    %7 = arith.addf %o, %6 : f32
    linalg.yield %7 : f32
  }
  %alloc = memref.alloc() : memref<32x32xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%y, %sel : memref<32x32xf32>, memref<32xi32>) outs(%out : memref<32x32xf32>) {
  ^bb0(%in: f32, %s: i32, %o: f32):
    %valid = arith.cmpi sge, %s, %c0_i32 : i32
    %r = arith.select %valid, %in, %zero : f32
    linalg.yield %r : f32
  }
  return
}

// -----

// The residual add after an output projection, read through the reshape
// of tokens into [B, L, D] (rows delinearised), and a bias read by column
// (a vector load at the tile's columns).
// CHECK-LABEL: func.func @residual_bias
// CHECK-NOT:     linalg.generic
// CHECK:         scf.parallel
// CHECK:           arith.remui %{{.*}}, %c4
// CHECK:           arith.divui %{{.*}}, %c4
// CHECK:           vector.load %arg3[
// CHECK:           vector.load %arg4[
// CHECK:           arith.addf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK:           arith.addf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK:           vector.store %{{.*}}, %arg5[
func.func @residual_bias(%a: memref<8x16xf32>, %b: memref<16x32xf32>, %c: memref<8x32xf32>, %r: memref<2x4x32xf32>, %bias: memref<32xf32>, %out: memref<2x4x32xf32>) {
  linalg.matmul ins(%a, %b : memref<8x16xf32>, memref<16x32xf32>) outs(%c : memref<8x32xf32>)
  %e = memref.expand_shape %c [[0, 1], [2]] output_shape [2, 4, 32] : memref<8x32xf32> into memref<2x4x32xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel"]} ins(%e, %r : memref<2x4x32xf32>, memref<2x4x32xf32>) outs(%out : memref<2x4x32xf32>) {
  ^bb0(%x: f32, %y: f32, %o: f32):
    %col = linalg.index 2 : index
    %bv = memref.load %bias[%col] : memref<32xf32>
    %s = arith.addf %x, %y : f32
    %t = arith.addf %s, %bv : f32
    linalg.yield %t : f32
  }
  return
}

// -----

// SwiGLU's gate.up in the first GEMM's epilogue: the consumer reads C's
// two column halves (20 columns each), so every panel packs the gate's
// columns and the same columns of the up half side by side (two 8-lane
// vectors, the second from column 8 of the slab), a register tile
// accumulates both, and the epilogue multiplies silu(gate) by up; the
// last panel (4 columns of each half) is masked. No loop over C is left.
// CHECK-LABEL: func.func @swiglu
// CHECK-NOT:     linalg.generic
// CHECK:         scf.parallel
// CHECK:           arith.addi %{{.*}}, %c20
// CHECK:           vector.{{(masked)?}}load %arg1
// CHECK:           vector.store %{{.*}}, %{{.*}}[%{{.*}}, %c8{{.*}}] : memref<72x16xf32
// CHECK:           vector.fma
// CHECK:           scf.if
// CHECK:             math.exp %{{.*}} : vector<8xf32>
// CHECK:             arith.divf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK:             arith.mulf %{{.*}}, %{{.*}} : vector<8xf32>
// CHECK:             vector.maskedstore %arg3
// CHECK:             vector.store %{{.*}}, %arg3
// CHECK-NOT:     linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @swiglu(%a: memref<13x72xf32>, %b: memref<72x40xf32>, %c: memref<13x40xf32>, %h: memref<13x20xf32>) {
  %one = arith.constant 1.0 : f32
  linalg.matmul ins(%a, %b : memref<13x72xf32>, memref<72x40xf32>) outs(%c : memref<13x40xf32>)
  %gate = memref.subview %c[0, 0] [13, 20] [1, 1] : memref<13x40xf32> to memref<13x20xf32, strided<[40, 1]>>
  %up = memref.subview %c[0, 20] [13, 20] [1, 1] : memref<13x40xf32> to memref<13x20xf32, strided<[40, 1], offset: 20>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%gate, %up : memref<13x20xf32, strided<[40, 1]>>, memref<13x20xf32, strided<[40, 1], offset: 20>>) outs(%h : memref<13x20xf32>) {
  ^bb0(%g: f32, %u: f32, %out: f32):
    %0 = arith.negf %g : f32
    %1 = math.exp %0 : f32
    %2 = arith.addf %1, %one : f32
    %3 = arith.divf %g, %2 : f32
    %4 = arith.mulf %3, %u : f32
    linalg.yield %4 : f32
  }
  return
}

// -----

// Not paired: the second slice starts elsewhere than the middle, so it is
// no column half of C; the product maps, the consumer stays.
// CHECK-LABEL: func.func @not_halves
// CHECK:         scf.parallel
// CHECK:         linalg.generic
#id = affine_map<(d0, d1) -> (d0, d1)>
func.func @not_halves(%a: memref<13x72xf32>, %b: memref<72x40xf32>, %c: memref<13x40xf32>, %h: memref<13x20xf32>) {
  linalg.matmul ins(%a, %b : memref<13x72xf32>, memref<72x40xf32>) outs(%c : memref<13x40xf32>)
  %gate = memref.subview %c[0, 0] [13, 20] [1, 1] : memref<13x40xf32> to memref<13x20xf32, strided<[40, 1]>>
  %up = memref.subview %c[0, 10] [13, 20] [1, 1] : memref<13x40xf32> to memref<13x20xf32, strided<[40, 1], offset: 10>>
  linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]} ins(%gate, %up : memref<13x20xf32, strided<[40, 1]>>, memref<13x20xf32, strided<[40, 1], offset: 10>>) outs(%h : memref<13x20xf32>) {
  ^bb0(%g: f32, %u: f32, %out: f32):
    %0 = arith.mulf %g, %u : f32
    linalg.yield %0 : f32
  }
  return
}

// -----

// Not fused: the consumer reads C transposed (a vector of C's columns is no
// vector of its own), and an op that writes memory sits between a product
// and the op reading it. Both products still map; the consumers stay.
// CHECK-LABEL: func.func @not_fused
// CHECK:         scf.parallel
// CHECK:         linalg.generic
// CHECK:         scf.parallel
// CHECK:         memref.store
// CHECK:         linalg.generic
func.func @not_fused(%a: memref<16x16xf32>, %b: memref<16x16xf32>, %c: memref<16x16xf32>, %d: memref<16x16xf32>, %out: memref<16x16xf32>) {
  %zero = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : index
  linalg.matmul ins(%a, %b : memref<16x16xf32>, memref<16x16xf32>) outs(%c : memref<16x16xf32>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d1, d0)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%c : memref<16x16xf32>) outs(%out : memref<16x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    linalg.yield %in : f32
  }
  linalg.matmul ins(%a, %b : memref<16x16xf32>, memref<16x16xf32>) outs(%d : memref<16x16xf32>)
  memref.store %zero, %d[%c0, %c0] : memref<16x16xf32>
  linalg.generic {indexing_maps = [affine_map<(d0, d1) -> (d0, d1)>, affine_map<(d0, d1) -> (d0, d1)>], iterator_types = ["parallel", "parallel"]} ins(%d : memref<16x16xf32>) outs(%out : memref<16x16xf32>) {
  ^bb0(%in: f32, %o: f32):
    %n = arith.negf %in : f32
    linalg.yield %n : f32
  }
  return
}
