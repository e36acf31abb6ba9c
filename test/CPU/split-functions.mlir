// RUN: moma-opt %s --moma-cpu-split-functions=max-parallel-loops=1 | FileCheck %s

// One parallel loop per part. The view is rebuilt in each part that reads
// it; the scalar loaded in the second part and stored by the third is
// returned and passed on.
// CHECK-LABEL: func.func @forward
// CHECK-SAME:    (%[[A:.*]]: memref<16xf32>, %[[ARENA:.*]]: memref<64xi8>)
// CHECK-NEXT:    call @forward.part0(%[[A]], %[[ARENA]]) : (memref<16xf32>, memref<64xi8>) -> ()
// CHECK-NEXT:    %[[S:.*]] = call @forward.part1(%[[A]], %[[ARENA]]) : (memref<16xf32>, memref<64xi8>) -> f32
// CHECK-NEXT:    call @forward.part2(%[[A]], %[[ARENA]], %[[S]]) : (memref<16xf32>, memref<64xi8>, f32) -> ()
// CHECK-NEXT:    return
// CHECK:       func.func private @forward.part0(%{{.*}}: memref<16xf32>, %{{.*}}: memref<64xi8>)
// CHECK:         memref.view
// CHECK:         scf.parallel
// CHECK:       func.func private @forward.part1(%{{.*}}: memref<16xf32>, %{{.*}}: memref<64xi8>) -> f32
// CHECK:         memref.view
// CHECK:         %[[L:.*]] = memref.load
// CHECK:         scf.parallel
// CHECK:         return %[[L]] : f32
// CHECK:       func.func private @forward.part2(%[[P:.*]]: memref<16xf32>, %{{.*}}: memref<64xi8>, %[[Y:.*]]: f32)
// CHECK:         memref.store %[[Y]], %[[P]]
func.func @forward(%a: memref<16xf32>, %arena: memref<64xi8>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c16 = arith.constant 16 : index
  %t = memref.view %arena[%c0][] : memref<64xi8> to memref<16xf32>
  scf.parallel (%i) = (%c0) to (%c16) step (%c1) {
    %x = memref.load %a[%i] : memref<16xf32>
    memref.store %x, %t[%i] : memref<16xf32>
  }
  %s = memref.load %t[%c0] : memref<16xf32>
  scf.parallel (%i) = (%c0) to (%c16) step (%c1) {
    %x = memref.load %t[%i] : memref<16xf32>
    memref.store %x, %a[%i] : memref<16xf32>
  }
  memref.store %s, %a[%c0] : memref<16xf32>
  return
}
