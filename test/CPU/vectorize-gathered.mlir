// RUN: moma-opt %s --moma-to-cpu-buffers | FileCheck %s

// The grouped expert GEMM reading its rows through slot_token (fused by
// moma-fuse-row-gathers): A is `select(valid slot, x[token, k], 0)`. Per
// register tile (12 rows on x86-64-v3), when every row's slot holds a
// token, the k loop reads x alone; else it keeps the select per row and k.
// CHECK-LABEL: func.func @gathered
// CHECK:         scf.parallel
// CHECK:           arith.andi %{{.*}}, %{{.*}} : i1
// CHECK:           scf.if %{{.*}} -> (vector<8xf32>
// CHECK:             scf.for {{.*}} iter_args
// CHECK-NOT:           arith.select
// CHECK:               vector.fma
// CHECK:           } else {
// CHECK:             scf.for {{.*}} iter_args
// CHECK:               arith.select %{{.*}}, %{{.*}}, %{{.*}} : f32
// CHECK:               vector.fma
func.func @gathered(%x: tensor<20x24xf32>, %st: tensor<45xi32>, %e: tensor<45xi32>, %w: tensor<4x24x40xf32>, %c: tensor<45x40xf32>) -> tensor<45x40xf32> {
  %c0 = arith.constant 0 : i32
  %glast = arith.constant 3 : i32
  %tlast = arith.constant 19 : i32
  %tend = arith.constant 20 : i32
  %zero = arith.constant 0.0 : f32
  %empty = tensor.empty() : tensor<45x24xf32>
  %rows = linalg.generic {indexing_maps = [affine_map<(s, d) -> (s)>, affine_map<(s, d) -> (s, d)>], iterator_types = ["parallel", "parallel"]} ins(%st : tensor<45xi32>) outs(%empty : tensor<45x24xf32>) {
  ^bb0(%t: i32, %out: f32):
    %lo = arith.cmpi sge, %t, %c0 : i32
    %hi = arith.cmpi slt, %t, %tend : i32
    %valid = arith.andi %lo, %hi : i1
    %a = arith.maxsi %t, %c0 : i32
    %b = arith.minsi %a, %tlast : i32
    %row = arith.index_cast %b : i32 to index
    %col = linalg.index 1 : index
    %v = tensor.extract %x[%row, %col] : tensor<20x24xf32>
    %r = arith.select %valid, %v, %zero : f32
    linalg.yield %r : f32
  } -> tensor<45x24xf32>
  %y = linalg.generic {indexing_maps = [affine_map<(t, n, k) -> (t, k)>, affine_map<(t, n, k) -> (t)>, affine_map<(t, n, k) -> (t, n)>], iterator_types = ["parallel", "parallel", "reduction"]} ins(%rows, %e : tensor<45x24xf32>, tensor<45xi32>) outs(%c : tensor<45x40xf32>) {
  ^bb0(%in: f32, %s: i32, %out: f32):
    %a = arith.maxsi %s, %c0 : i32
    %b = arith.minsi %a, %glast : i32
    %slice = arith.index_cast %b : i32 to index
    %col = linalg.index 1 : index
    %red = linalg.index 2 : index
    %wv = tensor.extract %w[%slice, %red, %col] : tensor<4x24x40xf32>
    %p = arith.mulf %in, %wv : f32
    %sum = arith.addf %out, %p : f32
    linalg.yield %sum : f32
  } -> tensor<45x40xf32>
  return %y : tensor<45x40xf32>
}
