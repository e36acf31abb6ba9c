// RUN: moma-opt %s --split-input-file --moma-cpu-outline-kernels | FileCheck %s

// Two layers' worth of the same kernel on different views of the arena:
// one function, called twice, kept out of line; the constants are rebuilt
// inside, the views passed. A kernel that differs (another constant) gets
// a function of its own. The copy is a kernel too.
// CHECK-LABEL: func.func @forward
// CHECK-SAME:    (%[[A:.*]]: memref<16xf32>, %[[ARENA:.*]]: memref<128xi8>)
// CHECK:         %[[V0:.*]] = memref.view %[[ARENA]]
// CHECK-NEXT:    call @[[SCALE:forward.kernel0]](%[[A]], %[[V0]]) : (memref<16xf32>, memref<16xf32>) -> ()
// CHECK:         %[[V1:.*]] = memref.view %[[ARENA]]
// CHECK-NEXT:    call @[[SCALE]](%[[V0]], %[[V1]]) : (memref<16xf32>, memref<16xf32>) -> ()
// CHECK-NEXT:    call @[[OTHER:forward.kernel2]](%[[V1]], %[[V0]])
// CHECK-NEXT:    call @[[COPY:forward.kernel3]](%[[V0]], %[[A]])
// CHECK-NEXT:    return
// CHECK:       func.func private @[[SCALE]](%[[X:.*]]: memref<16xf32>, %[[Y:.*]]: memref<16xf32>)
// CHECK-SAME:    attributes {passthrough = ["noinline"]}
// CHECK-DAG:     arith.constant 2.000000e+00 : f32
// CHECK-DAG:     arith.constant 16 : index
// CHECK:         scf.parallel
// CHECK:           memref.load %[[X]]
// CHECK:           memref.store %{{.*}}, %[[Y]]
// CHECK:         return
// CHECK:       func.func private @[[OTHER]](
// CHECK-NOT:     passthrough
// CHECK:         arith.constant 3.000000e+00 : f32
// CHECK:       func.func private @[[COPY]](%[[S:.*]]: memref<16xf32>, %[[D:.*]]: memref<16xf32>)
// CHECK-NEXT:    memref.copy %[[S]], %[[D]]
func.func @forward(%a: memref<16xf32>, %arena: memref<128xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %c64 = arith.constant 64 : index
  %two = arith.constant 2.0 : f32
  %three = arith.constant 3.0 : f32
  %t0 = memref.view %arena[%c0][] : memref<128xi8> to memref<16xf32>
  scf.parallel (%i) = (%c0) to (%c16) step (%c1) {
    %x = memref.load %a[%i] : memref<16xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %t0[%i] : memref<16xf32>
  }
  %t1 = memref.view %arena[%c64][] : memref<128xi8> to memref<16xf32>
  scf.parallel (%i) = (%c0) to (%c16) step (%c1) {
    %x = memref.load %t0[%i] : memref<16xf32>
    %y = arith.mulf %x, %two : f32
    memref.store %y, %t1[%i] : memref<16xf32>
  }
  scf.parallel (%i) = (%c0) to (%c16) step (%c1) {
    %x = memref.load %t1[%i] : memref<16xf32>
    %y = arith.mulf %x, %three : f32
    memref.store %y, %t0[%i] : memref<16xf32>
  }
  memref.copy %t0, %a : memref<16xf32> to memref<16xf32>
  return
}

// -----

// A kernel reads a scalar computed at the top level (an argument) and
// returns the scalar its loop carries. A subview at a dynamic offset has
// no bare-pointer type: the kernel rebuilds it from the buffer and the
// offset.
// CHECK-LABEL: func.func @scalars
// CHECK:         %[[N:.*]] = memref.load
// CHECK:         %[[SUM:.*]] = call @[[K:scalars.kernel0]](%{{.*}}, %[[N]]) : (memref<16xf32>, index) -> f32
// CHECK-NEXT:    return %[[SUM]]
// CHECK:       func.func private @[[K]](%[[B:.*]]: memref<16xf32>, %[[OFF:.*]]: index) -> f32
// CHECK:         memref.subview %[[B]][%[[OFF]]] [8] [1]
// CHECK:         %[[R:.*]] = scf.for
// CHECK:         return %[[R]] : f32
func.func @scalars(%b: memref<16xf32>, %n: memref<index>) -> f32 {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %zero = arith.constant 0.0 : f32
  %off = memref.load %n[] : memref<index>
  %half = memref.subview %b[%off] [8] [1]
      : memref<16xf32> to memref<8xf32, strided<[1], offset: ?>>
  %sum = scf.for %i = %c0 to %c8 step %c1 iter_args(%acc = %zero) -> (f32) {
    %x = memref.load %half[%i] : memref<8xf32, strided<[1], offset: ?>>
    %s = arith.addf %acc, %x : f32
    scf.yield %s : f32
  }
  return %sum : f32
}

// -----

// A buffer of dynamic shape cannot be passed by bare pointer: the loop
// stays where it is.
// CHECK-LABEL: func.func @dynamic
// CHECK-NOT:     call
// CHECK:         scf.for
// CHECK-NOT:   func.func private
func.func @dynamic(%b: memref<?xf32>, %n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %zero = arith.constant 0.0 : f32
  scf.for %i = %c0 to %n step %c1 {
    memref.store %zero, %b[%i] : memref<?xf32>
  }
  return
}
