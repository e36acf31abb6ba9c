// moma-gpu-prepare-loops: copies become parallel loops of loads and stores,
// parallel loops that are not at the top level run sequentially, and
// top-level parallel loops are collapsed to one dimension with the last
// dimension fastest.
// RUN: moma-opt %s --split-input-file --allow-unregistered-dialect --moma-gpu-prepare-loops --verify-diagnostics | FileCheck %s

// A copy between strided views is a parallel nest of loads and stores, then
// collapsed: index / 8 and index % 8 address the rows and columns.
// CHECK-LABEL: func.func @copy
// CHECK-SAME: (%[[SRC:.*]]: memref<4x8xf32>, %[[DST:.*]]: memref<8x8xf32>)
// CHECK: %[[VIEW:.*]] = memref.subview %[[DST]][0, 0] [4, 8] [1, 1]
// CHECK-DAG: %[[C8:.*]] = arith.constant 8 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-NOT: memref.copy
// CHECK: scf.parallel (%[[I:.*]]) = (%{{.*}}) to (%[[C32]]) step (%{{.*}}) {
// CHECK: %[[COL:.*]] = arith.remui %[[I]], %[[C8]] : index
// CHECK: %[[ROW:.*]] = arith.divui %[[I]], %[[C8]] : index
// CHECK: %[[V:.*]] = memref.load %[[SRC]][%[[ROW]], %[[COL]]]
// CHECK: memref.store %[[V]], %[[VIEW]][%[[ROW]], %[[COL]]]
// CHECK: return
func.func @copy(%src: memref<4x8xf32>, %dst: memref<8x8xf32>) {
  %view = memref.subview %dst[0, 0] [4, 8] [1, 1]
      : memref<8x8xf32> to memref<4x8xf32, strided<[8, 1]>>
  memref.copy %src, %view : memref<4x8xf32> to memref<4x8xf32, strided<[8, 1]>>
  return
}

// -----

// A rank-0 copy is one load and one store.
// CHECK-LABEL: func.func @scalar_copy
// CHECK-NEXT: %[[V:.*]] = memref.load %arg0[] : memref<f32>
// CHECK-NEXT: memref.store %[[V]], %arg1[] : memref<f32>
// CHECK-NEXT: return
func.func @scalar_copy(%src: memref<f32>, %dst: memref<f32>) {
  memref.copy %src, %dst : memref<f32> to memref<f32>
  return
}

// -----

// A parallel loop inside a sequential loop (routing) becomes scf.for, and so
// does a copy there; the top-level loop stays parallel.
// CHECK-LABEL: func.func @nested
// CHECK: scf.for %[[E:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: scf.for %[[J:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: memref.store %{{.*}}, %arg0[%[[E]], %[[J]]]
// CHECK: scf.for %[[K:.*]] = %{{.*}} to %{{.*}} step %{{.*}} {
// CHECK-NEXT: memref.load %arg1[%[[K]]]
// CHECK-NEXT: memref.store %{{.*}}, %arg2[%[[K]]]
// CHECK-NOT: scf.parallel
// CHECK: return
func.func @nested(%m: memref<4x16xf32>, %a: memref<16xf32>, %b: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  scf.for %e = %c0 to %c4 step %c1 {
    scf.parallel (%j) = (%c0) to (%c16) step (%c1) {
      memref.store %zero, %m[%e, %j] : memref<4x16xf32>
    }
    memref.copy %a, %b : memref<16xf32> to memref<16xf32>
  }
  return
}

// -----

// Three dimensions with bounds and steps: trip counts 2 x 3 x 4 = 24, the
// last dimension fastest, each index rebuilt as lower + i * step.
// CHECK-LABEL: func.func @collapse
// CHECK: scf.parallel (%[[I:.*]]) = (%{{.*}}) to (%c24) step (%{{.*}}) {
// CHECK-NEXT: %[[D2:.*]] = arith.remui %[[I]], %c4 : index
// CHECK-NEXT: %[[R:.*]] = arith.divui %[[I]], %c4 : index
// CHECK-NEXT: %[[K:.*]] = arith.muli %[[D2]], %c2 : index
// CHECK-NEXT: %[[D1:.*]] = arith.remui %[[R]], %[[C3:.*]] : index
// CHECK-NEXT: %[[D0:.*]] = arith.divui %[[R]], %[[C3]] : index
// CHECK-NEXT: %[[J:.*]] = arith.addi %[[D1]], %c2 : index
// CHECK-NEXT: "test.use"(%[[D0]], %[[J]], %[[K]])
// CHECK-NOT: scf.parallel
func.func @collapse() {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c5 = arith.constant 5 : index
  %c8 = arith.constant 8 : index
  scf.parallel (%i, %j, %k) = (%c0, %c2, %c0) to (%c2, %c5, %c8) step (%c1, %c1, %c2) {
    "test.use"(%i, %j, %k) : (index, index, index) -> ()
  }
  return
}

// -----

func.func @reduction(%a: memref<16xf32>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  // expected-error @+1 {{has reductions, which moma-gpu-prepare-loops does not map}}
  %sum = scf.parallel (%i) = (%c0) to (%c16) step (%c1) init (%zero) -> f32 {
    %x = memref.load %a[%i] : memref<16xf32>
    scf.reduce(%x : f32) {
    ^bb0(%l: f32, %r: f32):
      %s = arith.addf %l, %r : f32
      scf.reduce.return %s : f32
    }
  }
  return %sum : f32
}
