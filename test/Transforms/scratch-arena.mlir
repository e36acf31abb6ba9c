// moma-scratch-arena: temporaries become views of one byte arena, a new last
// argument, at offsets planned by lifetime; buffers that leave the function,
// or whose instances would outlive a loop iteration, stay allocations.
// RUN: moma-opt %s --moma-scratch-arena --split-input-file --verify-diagnostics | FileCheck %s
// RUN: moma-opt %s --moma-scratch-arena=reuse=false --split-input-file --verify-diagnostics | FileCheck %s --check-prefix=BUMP
// RUN: not moma-opt %s --moma-scratch-arena=alignment=48 --split-input-file 2>&1 | FileCheck %s --check-prefix=ALIGN

// Three temporaries: %a dies at the load, so %c, allocated after it, takes
// its bytes; %b is live across both and gets its own. Offsets are multiples
// of 64 and of each allocation's alignment; the dealloc of %b goes.
// CHECK-LABEL: func.func @lifetimes
// CHECK-SAME: (%[[IN:[^:]*]]: memref<16xf32>, %[[OUT:[^:]*]]: memref<16xf32>, %[[ARENA:[^:]*]]: memref<128xi8> {moma.scratch = 128 : i64})
// CHECK: %[[A:.*]] = memref.view %[[ARENA]][%{{.*}}][] : memref<128xi8> to memref<16xf32>
// CHECK: memref.copy %[[IN]], %[[A]]
// CHECK: %[[C64:.*]] = arith.constant 64 : index
// CHECK-NEXT: %[[B:.*]] = memref.view %[[ARENA]][%[[C64]]][] : memref<128xi8> to memref<8xf64>
// CHECK: memref.store %{{.*}}, %[[B]]
// CHECK-NEXT: %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %[[ARENA]][%[[C0]]][] : memref<128xi8> to memref<4xi32>
// CHECK-NOT: memref.alloc
// CHECK-NOT: memref.dealloc
// CHECK: return
// BUMP-LABEL: func.func @lifetimes
// BUMP-SAME: memref<192xi8> {moma.scratch = 192 : i64}
// BUMP: arith.constant 128 : index
// BUMP-NEXT: memref.view %{{.*}} : memref<192xi8> to memref<4xi32>
func.func @lifetimes(%in: memref<16xf32>, %out: memref<16xf32>) {
  %a = memref.alloc() {alignment = 64 : i64} : memref<16xf32>
  memref.copy %in, %a : memref<16xf32> to memref<16xf32>
  %b = memref.alloc() : memref<8xf64>
  %c0 = arith.constant 0 : index
  %x = memref.load %a[%c0] : memref<16xf32>
  %y = arith.extf %x : f32 to f64
  memref.store %y, %b[%c0] : memref<8xf64>
  %c = memref.alloc() : memref<4xi32>
  %i = arith.fptosi %x : f32 to i32
  memref.store %i, %c[%c0] : memref<4xi32>
  %z = memref.load %b[%c0] : memref<8xf64>
  memref.dealloc %b : memref<8xf64>
  memref.copy %in, %out : memref<16xf32> to memref<16xf32>
  return
}

// -----

// A use through a view (subview, collapse_shape) keeps the buffer alive: %b
// may not take %a's bytes while the view of %a is read.
// CHECK-LABEL: func.func @views
// CHECK-SAME: memref<512xi8> {moma.scratch = 512 : i64}
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK-NEXT: memref.view %{{.*}}[%[[C0]]][] : memref<512xi8> to memref<4x16xf32>
// CHECK: %[[C256:.*]] = arith.constant 256 : index
// CHECK-NEXT: memref.view %{{.*}}[%[[C256]]][] : memref<512xi8> to memref<64xf32>
func.func @views(%in: memref<4x16xf32>, %out: memref<16xf32>) {
  %a = memref.alloc() : memref<4x16xf32>
  memref.copy %in, %a : memref<4x16xf32> to memref<4x16xf32>
  %flat = memref.collapse_shape %a [[0, 1]] : memref<4x16xf32> into memref<64xf32>
  %b = memref.alloc() : memref<64xf32>
  memref.copy %flat, %b : memref<64xf32> to memref<64xf32>
  %part = memref.subview %b[0] [16] [1] : memref<64xf32> to memref<16xf32, strided<[1]>>
  memref.copy %part, %out : memref<16xf32, strided<[1]>> to memref<16xf32>
  return
}

// -----

// A use inside a loop keeps a buffer alive for the whole loop; a temporary
// of the loop body that stays in its iteration is placed too.
// CHECK-LABEL: func.func @loops
// CHECK-SAME: memref<128xi8> {moma.scratch = 128 : i64}
// CHECK: memref.view %{{.*}}[%{{.*}}][] : memref<128xi8> to memref<16xf32>
// CHECK: scf.for
// CHECK: %[[C64:.*]] = arith.constant 64 : index
// CHECK-NEXT: memref.view %{{.*}}[%[[C64]]][] : memref<128xi8> to memref<16xf32>
// CHECK-NOT: memref.alloc
func.func @loops(%in: memref<16xf32>, %out: memref<16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %acc = memref.alloc() : memref<16xf32>
  memref.copy %in, %acc : memref<16xf32> to memref<16xf32>
  scf.for %i = %c0 to %c4 step %c1 {
    %tmp = memref.alloc() : memref<16xf32>
    memref.copy %acc, %tmp : memref<16xf32> to memref<16xf32>
    memref.copy %tmp, %acc : memref<16xf32> to memref<16xf32>
  }
  memref.copy %acc, %out : memref<16xf32> to memref<16xf32>
  return
}

// -----

// Left alone: a returned buffer, one passed to a call, one of dynamic shape,
// and a loop-body buffer carried into the next iteration.
// CHECK-LABEL: func.func @escapes
// CHECK-SAME: (%{{[^:]*}}: index, %{{[^:]*}}: memref<16xf32>) -> memref<16xf32>
// CHECK: memref.alloc() : memref<16xf32>
// CHECK: memref.alloc(%{{.*}}) : memref<?xf32>
// CHECK: memref.alloc() : memref<8xf32>
// CHECK: scf.for
// CHECK: memref.alloc() : memref<16xf32>
func.func private @consume(memref<8xf32>)
func.func @escapes(%n: index, %in: memref<16xf32>) -> memref<16xf32> {
  %r = memref.alloc() : memref<16xf32>
  memref.copy %in, %r : memref<16xf32> to memref<16xf32>
  %d = memref.alloc(%n) : memref<?xf32>
  %e = memref.alloc() : memref<8xf32>
  func.call @consume(%e) : (memref<8xf32>) -> ()
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %last = scf.for %i = %c0 to %c4 step %c1 iter_args(%prev = %in) -> (memref<16xf32>) {
    %next = memref.alloc() : memref<16xf32>
    memref.copy %prev, %next : memref<16xf32> to memref<16xf32>
    scf.yield %next : memref<16xf32>
  }
  return %r : memref<16xf32>
}

// -----

// A buffer allocated in the body of a parallel loop (a packed panel of the
// CPU mapping) stays an allocation: the iterations run at once on threads,
// and one place in the arena would be shared by all of them.
// CHECK-LABEL: func.func @parallel_body
// CHECK-SAME: %{{.*}}: memref<64xi8> {moma.scratch = 64 : i64}
// CHECK: memref.view
// CHECK: scf.parallel
// CHECK:   memref.alloc() : memref<16xf32>
// CHECK:   memref.dealloc
func.func @parallel_body(%out: memref<4x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %t = memref.alloc() : memref<16xf32>
  scf.parallel (%i) = (%c0) to (%c4) step (%c1) {
    %p = memref.alloc() : memref<16xf32>
    memref.copy %t, %p : memref<16xf32> to memref<16xf32>
    %row = memref.subview %out[%i, 0] [1, 16] [1, 1] : memref<4x16xf32> to memref<16xf32, strided<[1], offset: ?>>
    memref.copy %p, %row : memref<16xf32> to memref<16xf32, strided<[1], offset: ?>>
    memref.dealloc %p : memref<16xf32>
    scf.reduce
  }
  return
}

// -----

// A function with callers keeps its signature.
// expected-remark @below {{moma-scratch-arena: skipped, the function has callers}}
func.func @callee() {
  %a = memref.alloc() : memref<4xf32>
  return
}
// CHECK-LABEL: func.func @caller
// CHECK-NOT: moma.scratch
func.func @caller() {
  func.call @callee() : () -> ()
  return
}

// ALIGN: error: moma-scratch-arena: alignment 48 is not a power of two
