// moma-gpu-wrap-sequential: host code left after loop mapping runs in
// single-thread launches; scalars that later code uses travel through
// rank-0 buffers.
// RUN: moma-opt %s --split-input-file --moma-gpu-wrap-sequential --verify-diagnostics | FileCheck %s

// A sequential loop and a store between two launches become one 1x1x1
// launch placed after them; allocations, views and constants stay on the
// host, deallocations are dropped.
// CHECK-LABEL: func.func @wrap
// CHECK: %[[ALLOC:.*]] = memref.alloc() : memref<16xf32>
// CHECK-NEXT: gpu.launch blocks({{.*}}) in ({{.*}} = %c16, {{.*}} = %c1, {{.*}} = %c1) threads({{.*}}) in ({{.*}} = %c1, {{.*}} = %c1, {{.*}} = %c1)
// CHECK: gpu.terminator
// CHECK: %[[VIEW:.*]] = memref.subview %[[ALLOC]][0] [8] [1]
// CHECK-NEXT: %[[ONE:.*]] = arith.constant 1 : index
// CHECK-NEXT: gpu.launch blocks({{.*}}) in ({{.*}} = %[[ONE]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]]) threads({{.*}}) in ({{.*}} = %[[ONE]], {{.*}} = %[[ONE]], {{.*}} = %[[ONE]])
// CHECK-NEXT: scf.for
// CHECK: memref.store %{{.*}}, %[[VIEW]]
// CHECK: }
// CHECK-NEXT: memref.store %{{.*}}, %arg0[%c0]
// CHECK-NEXT: gpu.terminator
// CHECK: gpu.launch
// CHECK-NOT: memref.dealloc
// CHECK: return
func.func @wrap(%out: memref<4xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c16 = arith.constant 16 : index
  %zero = arith.constant 0.0 : f32
  %alloc = memref.alloc() : memref<16xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c16, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %zero, %alloc[%bx] : memref<16xf32>
    gpu.terminator
  }
  scf.for %i = %c0 to %c8 step %c1 {
    %x = memref.load %alloc[%i] : memref<16xf32>
    %y = arith.addf %x, %x : f32
    memref.store %y, %alloc[%i] : memref<16xf32>
  }
  %view = memref.subview %alloc[0] [8] [1] : memref<16xf32> to memref<8xf32, strided<[1]>>
  scf.for %i = %c0 to %c8 step %c1 {
    memref.store %zero, %view[%i] : memref<8xf32, strided<[1]>>
  }
  memref.store %zero, %out[%c0] : memref<4xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    memref.store %zero, %out[%c0] : memref<4xf32>
    gpu.terminator
  }
  memref.dealloc %alloc : memref<16xf32>
  return
}

// -----

// A count loaded before a launch and used after it (a loop bound in a later
// sequential run, and inside a later launch) is stored into a memref<index>
// allocated at the entry and loaded where it is used.
// CHECK-LABEL: func.func @spill
// CHECK-NEXT: %[[SLOT:.*]] = memref.alloc() : memref<index>
// CHECK: gpu.launch
// CHECK: %[[N:.*]] = arith.index_cast
// CHECK-NEXT: memref.store %[[N]], %[[SLOT]][] : memref<index>
// CHECK-NEXT: gpu.terminator
// CHECK: gpu.launch
// CHECK-NEXT: %[[N1:.*]] = memref.load %[[SLOT]][] : memref<index>
// CHECK: arith.cmpi ult, %{{.*}}, %[[N1]]
// CHECK: gpu.launch
// CHECK-NEXT: %[[N2:.*]] = memref.load %[[SLOT]][] : memref<index>
// CHECK-NEXT: scf.for %{{.*}} = %c0 to %[[N2]] step %c1
func.func @spill(%counts: memref<2xi32>, %data: memref<64xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c64 = arith.constant 64 : index
  %zero = arith.constant 0.0 : f32
  %count = memref.load %counts[%c0] : memref<2xi32>
  %n = arith.index_cast %count : i32 to index
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c64, %sy = %c1, %sz = %c1) {
    %inside = arith.cmpi ult, %tx, %n : index
    scf.if %inside {
      memref.store %zero, %data[%tx] : memref<64xf32>
    }
    gpu.terminator
  }
  scf.for %i = %c0 to %n step %c1 {
    memref.store %zero, %data[%i] : memref<64xf32>
  }
  return
}

// -----

func.func @launch_size(%counts: memref<2xindex>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %n = memref.load %counts[%c0] : memref<2xindex>
  // expected-error @+1 {{uses a value computed on the device (by 'memref.load') on the host; data-dependent launch sizes and host code are not supported}}
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %n, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c1, %sy = %c1, %sz = %c1) {
    gpu.terminator
  }
  return
}
