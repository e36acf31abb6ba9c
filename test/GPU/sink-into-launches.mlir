// moma-gpu-sink-into-launches: views, globals and constants are recomputed
// inside the launches, so that kernels capture only root buffers (function
// arguments and allocations).
// RUN: moma-opt %s --split-input-file --moma-gpu-sink-into-launches --verify-diagnostics | FileCheck %s

// CHECK-LABEL: memref.global "private" constant @table
memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>

// CHECK-LABEL: func.func @sink
// CHECK-SAME: (%[[ARG:.*]]: memref<2x8xf32>)
// CHECK-NEXT: %[[ONE:.*]] = arith.constant 1 : index
// CHECK-NEXT: %[[ALLOC:.*]] = memref.alloc() : memref<16xf32>
// CHECK-NEXT: gpu.launch
// CHECK-DAG: %[[C2:.*]] = arith.constant 2 : index
// CHECK-DAG: %[[FLAT:.*]] = memref.collapse_shape %[[ARG]] {{\[}}[0, 1]]
// CHECK-DAG: %[[HALF:.*]] = memref.subview %[[ALLOC]][8] [8] [1]
// CHECK-DAG: %[[TABLE:.*]] = memref.get_global @table : memref<4xf32>
// CHECK: memref.load %[[TABLE]][%[[C2]]]
// CHECK: memref.load %[[FLAT]]
// CHECK: memref.store %{{.*}}, %[[HALF]]
// CHECK: gpu.terminator
// CHECK-NEXT: }
// CHECK-NEXT: return
func.func @sink(%arg: memref<2x8xf32>) {
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %alloc = memref.alloc() : memref<16xf32>
  %flat = memref.collapse_shape %arg [[0, 1]] : memref<2x8xf32> into memref<16xf32>
  %half = memref.subview %alloc[8] [8] [1] : memref<16xf32> to memref<8xf32, strided<[1], offset: 8>>
  %table = memref.get_global @table : memref<4xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    %scale = memref.load %table[%c2] : memref<4xf32>
    %x = memref.load %flat[%tx] : memref<16xf32>
    %y = arith.mulf %x, %scale : f32
    memref.store %y, %half[%tx] : memref<8xf32, strided<[1], offset: 8>>
    gpu.terminator
  }
  return
}

// -----

func.func @scalar_argument(%n: index, %out: memref<4xindex>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // expected-error @+1 {{would pass a value to its kernel that is not a root buffer (a function argument or a memref.alloc): a block argument of type 'index'}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %n, %out[%c0] : memref<4xindex>
    gpu.terminator
  }
  return
}

// -----

func.func @allocation_inside(%out: memref<4xf32>) {
  %c1 = arith.constant 1 : index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    // expected-error @+1 {{allocates inside a kernel; the moma GPU back end needs every buffer allocated in the function body (the arena)}}
    %tmp = memref.alloc() : memref<4xf32>
    memref.copy %tmp, %out : memref<4xf32> to memref<4xf32>
    gpu.terminator
  }
  return
}
