// RUN: moma-opt %s --moma-cpu-limit-parallelism=min-work=1000 | FileCheck %s

// A top-level loop with enough work stays parallel; a small one and one
// nested in a sequential loop (it would fork a team per iteration) become
// scf.for nests.
// CHECK-LABEL: func.func @loops
// CHECK:         scf.parallel (%{{.*}}, %{{.*}}) = {{.*}} to (%c64, %c64)
// CHECK:         scf.for %{{.*}} = %c0 to %c8
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for %{{.*}} = %c0 to %c64
// CHECK-NEXT:      scf.for %{{.*}} = %c0 to %c64
// CHECK-NOT:     scf.parallel
func.func @loops(%a: memref<64x64xf32>, %v: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i, %j) = (%c0, %c0) to (%c64, %c64) step (%c1, %c1) {
    memref.store %one, %a[%i, %j] : memref<64x64xf32>
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    memref.store %one, %v[%i] : memref<8xf32>
  }
  scf.for %i = %c0 to %c64 step %c1 {
    scf.parallel (%j) = (%c0) to (%c64) step (%c1) {
      memref.store %one, %a[%i, %j] : memref<64x64xf32>
    }
  }
  return
}

// A tiled loop nest whose inner bounds are clamped tiles, min(lower + c, n):
// each counts its full tile (here 8 x 2 x 32/4 x 4 iterations of a two-op
// body, over min-work), so the nest keeps its thread team; the same nest
// with a bound the pass cannot bound counts one trip and runs in sequence.
// CHECK-LABEL: func.func @clamped_tiles
// CHECK:         scf.parallel (%{{.*}}) = (%c0) to (%c8)
// CHECK:         scf.for %{{.*}} = %c0 to %c8
// CHECK-NOT:     scf.parallel
func.func @clamped_tiles(%a: memref<8x64xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %c64 = arith.constant 64 : index
  %one = arith.constant 1.0 : f32
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    scf.for %j0 = %c0 to %c64 step %c32 {
      %end = arith.addi %j0, %c32 : index
      %hi = arith.minsi %end, %c64 : index
      scf.for %j = %j0 to %hi step %c4 {
        scf.for %k = %c0 to %c4 step %c1 {
          %col = arith.addi %j, %k : index
          memref.store %one, %a[%i, %col] : memref<8x64xf32>
        }
      }
    }
  }
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    scf.for %j0 = %c0 to %c64 step %c32 {
      %hi = arith.minsi %n, %c64 : index
      scf.for %j = %j0 to %hi step %c4 {
        scf.for %k = %c0 to %c4 step %c1 {
          %col = arith.addi %j, %k : index
          memref.store %one, %a[%i, %col] : memref<8x64xf32>
        }
      }
    }
  }
  return
}
