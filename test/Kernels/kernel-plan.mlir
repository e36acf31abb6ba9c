// RUN: moma-opt %s -split-input-file --moma-kernel-plan | FileCheck %s
// RUN: moma-opt %s -split-input-file --moma-kernel-plan=target=x86-64-v4 | FileCheck %s --check-prefix=V4
// RUN: moma-opt %s -split-input-file --moma-kernel-plan=target=sm_90 | FileCheck %s --check-prefix=GPU

// A matmul with its accumulator's fill (a prologue) and a residual add (an
// epilogue). x86-64-v3: N = 256 takes two vectors (mr 6), kc fills half of
// L1 (16 KiB / 64 B = 256, clamped to K = 128), mc half of L2 over kc
// (128 KiB / 512 B = 256 rows), clamped to M rounded up to whole tiles (66).
// x86-64-v4: four vectors of 16 lanes by 6 rows load least per FMA.
// CHECK-LABEL: func.func @matmul_fusion
// CHECK: linalg.fill {{.*}}moma.kernel = {class = "matmul", id = 0 : i64, role = "prologue"}
// CHECK: linalg.matmul {{.*}}moma.kernel = {bytes = 360448 : i64, class = "matmul", flops = 4210688 : i64, id = 0 : i64, launch = array<i64: 16>, moma_ops = [], role = "root", seconds = {{.*}}, shape = array<i64: 64, 256, 128, 1>, tiles = {kc = 128 : i64, mc = 66 : i64, mr = 6 : i64, nr = 16 : i64}, work = "N-panels"}
// CHECK: linalg.generic {{.*}}moma.kernel = {class = "matmul", id = 0 : i64, role = "epilogue"}
// CHECK-NOT: id = 1
// V4-LABEL: func.func @matmul_fusion
// V4: linalg.matmul {{.*}}tiles = {kc = 64 : i64, mc = 66 : i64, mr = 6 : i64, nr = 64 : i64}
// GPU-LABEL: func.func @matmul_fusion
// GPU: linalg.matmul {{.*}}launch = array<i64: 64, 256>{{.*}}tiles = {kc = 1 : i64, mc = 1 : i64, mr = 1 : i64, nr = 1 : i64}
#map = affine_map<(d0, d1) -> (d0, d1)>
func.func @matmul_fusion(%x: tensor<64x128xf32>, %w: tensor<128x256xf32>,
                         %r: tensor<64x256xf32>) -> tensor<64x256xf32> {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<64x256xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<64x256xf32>) -> tensor<64x256xf32>
  %y = linalg.matmul ins(%x, %w : tensor<64x128xf32>, tensor<128x256xf32>)
                     outs(%acc : tensor<64x256xf32>) -> tensor<64x256xf32>
  %e2 = tensor.empty() : tensor<64x256xf32>
  %s = linalg.generic {indexing_maps = [#map, #map, #map],
                       iterator_types = ["parallel", "parallel"]}
      ins(%y, %r : tensor<64x256xf32>, tensor<64x256xf32>)
      outs(%e2 : tensor<64x256xf32>) {
  ^bb0(%a: f32, %b: f32, %o: f32):
    %sum = arith.addf %a, %b : f32
    linalg.yield %sum : f32
  } -> tensor<64x256xf32>
  return %s : tensor<64x256xf32>
}

// -----

// Padding steers the register tile: N = 8 is one vector (a wider tile
// would pad half of it), N = 24 three vectors; untied weights (the
// row-selected generic of tokenMatmul) are a matmul of 4 groups.
// CHECK-LABEL: func.func @small_and_untied
// CHECK: linalg.matmul {{.*}}shape = array<i64: 32, 8, 16, 1>, tiles = {kc = 16 : i64, mc = {{[0-9]+}} : i64, mr = {{[0-9]+}} : i64, nr = 8 : i64}
// CHECK: linalg.generic {{.*}}class = "matmul"{{.*}}role = "root"{{.*}}shape = array<i64: 32, 24, 16, 4>, tiles = {{{.*}}nr = 24 : i64}
// GPU-LABEL: func.func @small_and_untied
// GPU: linalg.generic {{.*}}launch = array<i64: 3, 256>{{.*}}shape = array<i64: 32, 24, 16, 4>
#x = affine_map<(t, n, k) -> (t, k)>
#sel = affine_map<(t, n, k) -> (t)>
#y = affine_map<(t, n, k) -> (t, n)>
func.func @small_and_untied(%x: tensor<32x16xf32>, %w: tensor<16x8xf32>,
                            %wu: tensor<4x16x24xf32>, %m: tensor<32xi32>)
    -> (tensor<32x8xf32>, tensor<32x24xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<32x8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%e : tensor<32x8xf32>) -> tensor<32x8xf32>
  %y = linalg.matmul ins(%x, %w : tensor<32x16xf32>, tensor<16x8xf32>)
                     outs(%acc : tensor<32x8xf32>) -> tensor<32x8xf32>
  %e2 = tensor.empty() : tensor<32x24xf32>
  %acc2 = linalg.fill ins(%zero : f32) outs(%e2 : tensor<32x24xf32>) -> tensor<32x24xf32>
  %u = linalg.generic {indexing_maps = [#x, #sel, #y],
                       iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x, %m : tensor<32x16xf32>, tensor<32xi32>)
      outs(%acc2 : tensor<32x24xf32>) {
  ^bb0(%a: f32, %s: i32, %o: f32):
    %slice = arith.index_cast %s : i32 to index
    %n = linalg.index 1 : index
    %k = linalg.index 2 : index
    %b = tensor.extract %wu[%slice, %k, %n] : tensor<4x16x24xf32>
    %p = arith.mulf %a, %b : f32
    %sum = arith.addf %o, %p : f32
    linalg.yield %sum : f32
  } -> tensor<32x24xf32>
  return %y, %u : tensor<32x8xf32>, tensor<32x24xf32>
}

// -----

// A float row reduction: the element-wise ops feeding it and the fill of
// its accumulator are its prologue, its normalisation an epilogue; an
// integer count is a selection.
// CHECK-LABEL: func.func @reductions
// CHECK: linalg.generic {{.*}}class = "row_reduction", id = 0 : i64, role = "prologue"
// CHECK: linalg.generic {{.*}}class = "row_reduction", id = 0 : i64, role = "prologue"
// CHECK: linalg.fill {{.*}}class = "row_reduction", id = 0 : i64, role = "prologue"
// CHECK: linalg.generic {{.*}}class = "row_reduction", flops = 1024 : i64, id = 0 : i64, launch = array<i64: 8>{{.*}}role = "root"
// CHECK: linalg.generic {{.*}}class = "row_reduction", id = 0 : i64, role = "epilogue"
// CHECK: linalg.generic {{.*}}class = "selection", {{.*}}id = 1 : i64{{.*}}role = "root"
// GPU-LABEL: func.func @reductions
// GPU: linalg.generic {{.*}}class = "row_reduction", {{.*}}launch = array<i64: 1, 256>{{.*}}role = "root"
#id = affine_map<(i, j) -> (i, j)>
#row = affine_map<(i, j) -> (i)>
func.func @reductions(%x: tensor<8x32xf32>, %g: tensor<8xi32>)
    -> (tensor<8x32xf32>, tensor<8xi32>) {
  %zero = arith.constant 0.0 : f32
  %izero = arith.constant 0 : i32
  %e = tensor.empty() : tensor<8x32xf32>
  %sq = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<8x32xf32>) outs(%e : tensor<8x32xf32>) {
  ^bb0(%a: f32, %o: f32):
    %p = arith.mulf %a, %a : f32
    linalg.yield %p : f32
  } -> tensor<8x32xf32>
  %neg = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%sq : tensor<8x32xf32>) outs(%e : tensor<8x32xf32>) {
  ^bb0(%a: f32, %o: f32):
    %p = arith.negf %a : f32
    linalg.yield %p : f32
  } -> tensor<8x32xf32>
  %er = tensor.empty() : tensor<8xf32>
  %acc = linalg.fill ins(%zero : f32) outs(%er : tensor<8xf32>) -> tensor<8xf32>
  %sum = linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%neg : tensor<8x32xf32>) outs(%acc : tensor<8xf32>) {
  ^bb0(%a: f32, %o: f32):
    %s = arith.addf %a, %o : f32
    linalg.yield %s : f32
  } -> tensor<8xf32>
  %norm = linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x, %sum : tensor<8x32xf32>, tensor<8xf32>) outs(%e : tensor<8x32xf32>) {
  ^bb0(%a: f32, %s: f32, %o: f32):
    %d = arith.divf %a, %s : f32
    linalg.yield %d : f32
  } -> tensor<8x32xf32>
  %ei = tensor.empty() : tensor<8xi32>
  %count = linalg.generic {indexing_maps = [affine_map<(i, j) -> (j)>, #row],
                           iterator_types = ["parallel", "reduction"]}
      ins(%g : tensor<8xi32>) outs(%ei : tensor<8xi32>) {
  ^bb0(%a: i32, %o: i32):
    %s = arith.addi %a, %o : i32
    linalg.yield %s : i32
  } -> tensor<8xi32>
  return %norm, %count : tensor<8x32xf32>, tensor<8xi32>
}

// -----

// Element-wise ops that no kernel produces or consumes are one fused loop,
// its root the first; rows are its work items.
// CHECK-LABEL: func.func @elementwise_loop
// CHECK: linalg.generic {{.*}}class = "elementwise", flops = 64 : i64, id = 0 : i64, launch = array<i64: 2>, moma_ops = [], role = "root"
// CHECK: linalg.generic {{.*}}class = "elementwise", id = 0 : i64, role = "fused"
// CHECK-NOT: id = 1
#ew = affine_map<(i, j) -> (i, j)>
func.func @elementwise_loop(%x: tensor<2x16xf32>) -> tensor<2x16xf32> {
  %e = tensor.empty() : tensor<2x16xf32>
  %a = linalg.generic {indexing_maps = [#ew, #ew], iterator_types = ["parallel", "parallel"]}
      ins(%x : tensor<2x16xf32>) outs(%e : tensor<2x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %p = arith.mulf %v, %v : f32
    linalg.yield %p : f32
  } -> tensor<2x16xf32>
  %b = linalg.generic {indexing_maps = [#ew, #ew], iterator_types = ["parallel", "parallel"]}
      ins(%a : tensor<2x16xf32>) outs(%e : tensor<2x16xf32>) {
  ^bb0(%v: f32, %o: f32):
    %p = arith.negf %v : f32
    linalg.yield %p : f32
  } -> tensor<2x16xf32>
  return %b : tensor<2x16xf32>
}

// -----

// Loops: one that writes the row of its own index (a per-row top-1) is a
// row reduction; one that writes where data says (a scatter) selects.
// CHECK-LABEL: func.func @loops
// CHECK: scf.for
// CHECK: } {moma.kernel = {{{.*}}class = "row_reduction", {{.*}}launch = array<i64: 1>{{.*}}role = "root"{{.*}}work = "threads"
// CHECK: scf.for
// CHECK: } {moma.kernel = {{{.*}}class = "selection", {{.*}}role = "root"
// GPU-LABEL: func.func @loops
// GPU: } {moma.kernel = {{{.*}}launch = array<i64: 1, 1>
func.func @loops(%s: tensor<4x8xf32>, %dst: tensor<4xi32>, %t: tensor<4xi32>)
    -> (tensor<4xi32>, tensor<4xi32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %row = scf.for %i = %c0 to %c4 step %c1 iter_args(%acc = %dst) -> (tensor<4xi32>) {
    %v = tensor.extract %s[%i, %c0] : tensor<4x8xf32>
    %b = arith.fptosi %v : f32 to i32
    %n = tensor.insert %b into %acc[%i] : tensor<4xi32>
    scf.yield %n : tensor<4xi32>
  }
  %scat = scf.for %i = %c0 to %c4 step %c1 iter_args(%acc = %dst) -> (tensor<4xi32>) {
    %to = tensor.extract %t[%i] : tensor<4xi32>
    %j = arith.index_cast %to : i32 to index
    %c = arith.index_cast %i : index to i32
    %n = tensor.insert %c into %acc[%j] : tensor<4xi32>
    scf.yield %n : tensor<4xi32>
  }
  return %row, %scat : tensor<4xi32>, tensor<4xi32>
}
