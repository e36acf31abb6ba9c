// RUN: moma-opt %s --moma-gpu-unroll-chunk-loops --canonicalize | FileCheck %s

// A loop marked moma.vocab_chunk is unrolled into one body per chunk (the
// induction variable a constant in each, folded by the canonicalizer); an
// unmarked loop stays.
// CHECK-LABEL: func.func @chunks
// CHECK-SAME: %[[W:.*]]: tensor<4x96xf32>, %[[S:.*]]: tensor<f32>
// CHECK-DAG: %[[C0:.*]] = arith.constant 0 : index
// CHECK-DAG: %[[C32:.*]] = arith.constant 32 : index
// CHECK-DAG: %[[C64:.*]] = arith.constant 64 : index
// CHECK-NOT: moma.vocab_chunk
// CHECK: %[[A:.*]] = tensor.extract %[[W]][%[[C0]], %[[C0]]]
// CHECK: %[[S1:.*]] = tensor.insert %{{.*}} into %[[S]][]
// CHECK: tensor.extract %[[W]][%[[C0]], %[[C32]]]
// CHECK: %[[S2:.*]] = tensor.insert %{{.*}} into %[[S1]][]
// CHECK: tensor.extract %[[W]][%[[C0]], %[[C64]]]
// CHECK: %[[S3:.*]] = tensor.insert %{{.*}} into %[[S2]][]
// CHECK: %[[R:.*]] = scf.for {{.*}} iter_args(%{{.*}} = %[[S3]])
// CHECK: return %[[R]]
func.func @chunks(%w: tensor<4x96xf32>, %s: tensor<f32>, %n: index) -> tensor<f32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c32 = arith.constant 32 : index
  %c96 = arith.constant 96 : index
  %r = scf.for %off = %c0 to %c96 step %c32 iter_args(%acc = %s) -> tensor<f32> {
    %x = tensor.extract %w[%c0, %off] : tensor<4x96xf32>
    %old = tensor.extract %acc[] : tensor<f32>
    %sum = arith.addf %old, %x : f32
    %next = tensor.insert %sum into %acc[] : tensor<f32>
    scf.yield %next : tensor<f32>
  } {moma.vocab_chunk = 32 : i64}
  %t = scf.for %i = %c0 to %n step %c1 iter_args(%acc = %r) -> tensor<f32> {
    %old = tensor.extract %acc[] : tensor<f32>
    %twice = arith.addf %old, %old : f32
    %next = tensor.insert %twice into %acc[] : tensor<f32>
    scf.yield %next : tensor<f32>
  }
  return %t : tensor<f32>
}
