// RUN: moma-opt %s -split-input-file --moma-cpu-vectorize-contractions | FileCheck %s
// RUN: moma-opt %s -split-input-file --moma-cpu-vectorize-contractions=target=x86-64-v4 | FileCheck %s --check-prefix=V4
// RUN: not moma-opt %s -split-input-file --moma-cpu-vectorize-contractions=target=sm_90 2>&1 | FileCheck %s --check-prefix=BAD

// BAD: error: moma-cpu-vectorize-contractions: unknown CPU target 'sm_90' (expected x86-64-v3 or x86-64-v4)

// A matmul whose N (20) is not a multiple of the panel: the cost model
// picks 4 x 24 on AVX2 (3 vectors of 8, the last masked to 4 lanes), rows
// 0..11 in 4-row tiles and row 12 alone; threads split the one panel.
// CHECK-LABEL: func.func @matmul_tails
// CHECK-NOT:     linalg.matmul
// CHECK:         scf.parallel
// CHECK:           arith.constant dense<[true, true, true, true, false, false, false, false]> : vector<8xi1>
// CHECK:           vector.maskedload
// CHECK:           scf.for {{.*}} iter_args
// CHECK-COUNT-12:    vector.fma {{.*}} : vector<8xf32>
// CHECK:           vector.maskedstore
// AVX-512: 16 lanes, 2 vectors (the second masked to 4 lanes).
// V4-LABEL: func.func @matmul_tails
// V4:         arith.constant dense<[true, true, true, true, false, false, false, false, false, false, false, false, false, false, false, false]> : vector<16xi1>
// V4:         vector.fma {{.*}} : vector<16xf32>
func.func @matmul_tails(%a: memref<13x24xf32>, %b: memref<24x20xf32>, %c: memref<13x20xf32>) {
  linalg.matmul ins(%a, %b : memref<13x24xf32>, memref<24x20xf32>) outs(%c : memref<13x20xf32>)
  return
}

// -----

// Exact panels: no mask, plain vector loads and stores, and k sliced by kc.
// Per k slice the panel's rows of B are copied to a contiguous slab (B's
// rows are 256 bytes apart), which the register tiles read: one slab per
// parallel iteration (4 panels of 16 columns), kc = 256 deep, in one buffer
// allocated before the loop.
// CHECK-LABEL: func.func @matmul_exact
// CHECK-NOT:     vector.maskedload
// CHECK:         %[[SLABS:.+]] = memref.alloc() {alignment = 64 : i64} : memref<4x256x16xf32>
// CHECK:         scf.parallel (%[[I:.+]]) =
// CHECK:           %[[PACK:.+]] = memref.subview %[[SLABS]][%[[I]], 0, 0] [1, 256, 16] [1, 1, 1]
// CHECK:           scf.for
// CHECK:             scf.for
// CHECK:               %[[ROW:.+]] = vector.load %arg1
// CHECK:               vector.store %[[ROW]], %[[PACK]]
// CHECK:             scf.for
// CHECK:               vector.load %arg2
// CHECK:               scf.for {{.*}} iter_args
// CHECK:                 vector.load %[[PACK]]
// CHECK:                 vector.fma
// CHECK:               vector.store {{.*}}, %arg2
// CHECK:         memref.dealloc %[[SLABS]]
func.func @matmul_exact(%a: memref<64x512xf32>, %b: memref<512x64xf32>, %c: memref<64x64xf32>) {
  linalg.matmul ins(%a, %b : memref<64x512xf32>, memref<512x64xf32>) outs(%c : memref<64x64xf32>)
  return
}

// -----

// Row-selected weights (untied linears, grouped experts): the slice of each
// row is rebuilt from the body (max, min, index_cast of the selector); a
// tile whose rows all select the same slice runs from the packed panel,
// which is refilled when the tile's slice is not the one the row loop
// carries (-1 at each k slice: none), else the tile runs row by row from
// the weight itself.
// CHECK-LABEL: func.func @row_selected
// CHECK-NOT:     linalg.generic
// CHECK:         memref.alloc()
// CHECK:         scf.parallel
// CHECK:           %[[PACK:.+]] = memref.subview
// CHECK:               %[[TILES:.+]] = scf.for {{.*}} iter_args(%[[HELD:.+]] = %c-1) -> (index)
// CHECK:                 memref.load %arg1
// CHECK:                 arith.maxsi
// CHECK:                 arith.minsi
// CHECK:                 %[[FIRST:.+]] = arith.index_cast
// CHECK:                 arith.cmpi eq
// CHECK:                 scf.if {{.*}} -> (index)
// CHECK:                   %[[STALE:.+]] = arith.cmpi ne, %[[HELD]], %[[FIRST]]
// CHECK:                   scf.if %[[STALE]]
// CHECK:                     vector.load %arg2[%[[FIRST]],
// CHECK:                     vector.store {{.*}}, %[[PACK]]
// CHECK:                   vector.load %[[PACK]]
// CHECK:                   vector.fma
// CHECK:                   scf.yield %[[FIRST]]
// CHECK:                 } else {
// CHECK:                   scf.for
// CHECK:                     vector.load %arg2
// CHECK:                     vector.fma
// CHECK:                   scf.yield %[[HELD]]
func.func @row_selected(%x: memref<32x16xf32>, %sel: memref<32xi32>, %w: memref<2x16x32xf32>, %y: memref<32x32xf32>) {
  %c0_i32 = arith.constant 0 : i32
  %c1_i32 = arith.constant 1 : i32
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d0)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %sel : memref<32x16xf32>, memref<32xi32>) outs(%y : memref<32x32xf32>) {
  ^bb0(%in: f32, %s: i32, %out: f32):
    %0 = arith.maxsi %s, %c0_i32 : i32
    %1 = arith.minsi %0, %c1_i32 : i32
    %2 = arith.index_cast %1 : i32 to index
    %3 = linalg.index 1 : index
    %4 = linalg.index 2 : index
    %5 = memref.load %w[%2, %4, %3] : memref<2x16x32xf32>
    %6 = arith.mulf %in, %5 : f32
    %7 = arith.addf %out, %6 : f32
    linalg.yield %7 : f32
  }
  return
}

// -----

// Attention scores: the reduction (d) is contiguous in both inputs (the dot
// form) and the output is contiguous along the keys, so the keys' panel is
// packed transposed (element by element: 8 d rows of 16 keys on AVX2)
// and the tiles run as in the outer-product form. The batch, head and group
// dimensions are outer parallel loops.
// CHECK-LABEL: func.func @scores
// CHECK:         %[[SLABS:.+]] = memref.alloc() {alignment = 64 : i64} : memref<8x8x16xf32>
// CHECK:         scf.parallel
// CHECK:           %[[PACK:.+]] = memref.subview %[[SLABS]]
// CHECK:             memref.load %arg1
// CHECK:             memref.store {{.*}}, %[[PACK]]
// CHECK:             vector.load %[[PACK]]
// CHECK:             vector.fma
// CHECK-NOT:       vector.reduction
// CHECK:         memref.dealloc %[[SLABS]]
func.func @scores(%q: memref<2x16x4x1x8xf32>, %k: memref<2x16x4x8xf32>, %s: memref<2x4x1x16x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1, d2, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d4, d1, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d4)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%q, %k : memref<2x16x4x1x8xf32>, memref<2x16x4x8xf32>) outs(%s : memref<2x4x1x16x16xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %out, %0 : f32
    linalg.yield %1 : f32
  }
  return
}

// -----

// A dot-form product whose output is not contiguous along n (a strided
// view) keeps the horizontal form: vector accumulators along k, reduced
// across lanes into C.
// CHECK-LABEL: func.func @scores_strided_out
// CHECK:         scf.parallel
// CHECK-NOT:       memref.alloc
// CHECK:           vector.load
// CHECK:           vector.fma
// CHECK:           vector.reduction <add>
func.func @scores_strided_out(%q: memref<16x8xf32>, %k: memref<16x8xf32>, %s: memref<16x16xf32, strided<[32, 2]>>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d1, d2)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%q, %k : memref<16x8xf32>, memref<16x8xf32>) outs(%s : memref<16x16xf32, strided<[32, 2]>>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %0 = arith.mulf %a, %b : f32
    %1 = arith.addf %out, %0 : f32
    linalg.yield %1 : f32
  }
  return
}

// -----

// Attention's P V with the key mask: the outer-product form, the condition
// rebuilt per row and key from the position inputs, and the accumulators
// kept where it is false.
// CHECK-LABEL: func.func @masked_pv
// CHECK:         scf.parallel
// CHECK:           arith.cmpi sle
// CHECK:           vector.fma
// CHECK:           arith.select {{.*}} : vector<8xf32>
func.func @masked_pv(%p: memref<2x4x1x16x16xf32>, %v: memref<2x16x4x8xf32>, %pos: memref<2x16xi32>, %y: memref<2x16x4x1x8xf32>) {
  %c0_i32 = arith.constant 0 : i32
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d1, d2, d3, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d5, d1, d4)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d5)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3)>, affine_map<(d0, d1, d2, d3, d4, d5) -> (d0, d3, d1, d2, d4)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel", "reduction"]} ins(%p, %v, %pos, %pos : memref<2x4x1x16x16xf32>, memref<2x16x4x8xf32>, memref<2x16xi32>, memref<2x16xi32>) outs(%y : memref<2x16x4x1x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %kp: i32, %qp: i32, %out: f32):
    %0 = arith.cmpi sge, %kp, %c0_i32 : i32
    %1 = arith.cmpi sle, %kp, %qp : i32
    %2 = arith.andi %0, %1 : i1
    %3 = arith.mulf %in, %in_0 : f32
    %4 = arith.addf %out, %3 : f32
    %5 = arith.select %2, %4, %out : f32
    linalg.yield %5 : f32
  }
  return
}

// -----

// The weight gradient of untied weights and grouped experts
// (weightGradient): dw[s, k, n] = sum over tokens t of slice s of
// a[t, k] g[t, n], in the masked form, the condition rebuilt from the
// slice index and the token's selector.
// CHECK-LABEL: func.func @masked_weight_gradient
// CHECK:         scf.parallel
// CHECK:           arith.cmpi eq
// CHECK:           vector.fma
// CHECK:           arith.select {{.*}} : vector<8xf32>
func.func @masked_weight_gradient(%a: memref<32x16xf32>, %g: memref<32x24xf32>, %sel: memref<32xi32>, %dw: memref<4x16x24xf32>) {
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2, d3) -> (d3, d1)>, affine_map<(d0, d1, d2, d3) -> (d3, d2)>, affine_map<(d0, d1, d2, d3) -> (d3)>, affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>], iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%a, %g, %sel : memref<32x16xf32>, memref<32x24xf32>, memref<32xi32>) outs(%dw : memref<4x16x24xf32>) {
  ^bb0(%in: f32, %in_0: f32, %s: i32, %out: f32):
    %0 = arith.mulf %in, %in_0 : f32
    %1 = arith.addf %out, %0 : f32
    %2 = linalg.index 0 : index
    %3 = arith.index_cast %2 : index to i32
    %4 = arith.cmpi eq, %s, %3 : i32
    %5 = arith.select %4, %1, %out : f32
    linalg.yield %5 : f32
  }
  return
}

// -----

// Left to convert-linalg-to-loops: other element types, a body that is not
// a multiply-accumulate, a condition that depends on the column.
// CHECK-LABEL: func.func @not_mapped
// CHECK:         linalg.matmul ins({{.*}} : memref<8x8xf64>, memref<8x8xf64>)
// CHECK:         linalg.generic
// CHECK:         linalg.generic
// CHECK-NOT:     vector.
func.func @not_mapped(%a: memref<8x8xf64>, %b: memref<8x8xf64>, %c: memref<8x8xf64>, %x: memref<8x8xf32>, %y: memref<8x8xf32>, %z: memref<8x8xf32>, %col: memref<8xi32>) {
  %c0_i32 = arith.constant 0 : i32
  linalg.matmul ins(%a, %b : memref<8x8xf64>, memref<8x8xf64>) outs(%c : memref<8x8xf64>)
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %y : memref<8x8xf32>, memref<8x8xf32>) outs(%z : memref<8x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %out: f32):
    %0 = arith.maximumf %in, %in_0 : f32
    %1 = arith.addf %out, %0 : f32
    linalg.yield %1 : f32
  }
  linalg.generic {indexing_maps = [affine_map<(d0, d1, d2) -> (d0, d2)>, affine_map<(d0, d1, d2) -> (d2, d1)>, affine_map<(d0, d1, d2) -> (d1)>, affine_map<(d0, d1, d2) -> (d0, d1)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%x, %y, %col : memref<8x8xf32>, memref<8x8xf32>, memref<8xi32>) outs(%z : memref<8x8xf32>) {
  ^bb0(%in: f32, %in_0: f32, %cv: i32, %out: f32):
    %0 = arith.cmpi sge, %cv, %c0_i32 : i32
    %1 = arith.mulf %in, %in_0 : f32
    %2 = arith.addf %out, %1 : f32
    %3 = arith.select %0, %2, %out : f32
    linalg.yield %3 : f32
  }
  return
}
