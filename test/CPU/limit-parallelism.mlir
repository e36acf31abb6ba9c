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
