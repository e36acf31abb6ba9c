// RUN: moma-opt %s --moma-clone-fills | FileCheck %s
// RUN: moma-opt %s --moma-to-cpu-buffers | FileCheck %s --check-prefix=BUF

// One zero fill, CSE'd between two accumulating matmuls: each gets a fill
// of its own, so bufferization (in the CPU pipeline) writes both in place
// and copies nothing.
// CHECK-LABEL: func.func @two_layers
// CHECK:         %[[E0:.*]] = tensor.empty() : tensor<4x8xf32>
// CHECK-NEXT:    %[[Z0:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E0]]
// CHECK-NEXT:    %[[H:.*]] = linalg.matmul ins(%arg0, %arg1 {{.*}} outs(%[[Z0]]
// CHECK-NEXT:    %[[E1:.*]] = tensor.empty() : tensor<4x8xf32>
// CHECK-NEXT:    %[[Z1:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E1]]
// CHECK-NEXT:    linalg.matmul ins(%arg0, %arg2 {{.*}} outs(%[[Z1]]
// BUF-LABEL:   func.func @two_layers
// BUF-NOT:       memref.copy
// BUF:           return
func.func @two_layers(%x: tensor<4x16xf32>, %w0: tensor<16x8xf32>, %w1: tensor<16x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x8xf32>
  %z = linalg.fill ins(%zero : f32) outs(%e : tensor<4x8xf32>) -> tensor<4x8xf32>
  %h0 = linalg.matmul ins(%x, %w0 : tensor<4x16xf32>, tensor<16x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %h1 = linalg.matmul ins(%x, %w1 : tensor<4x16xf32>, tensor<16x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %h0, %h1 : tensor<4x8xf32>, tensor<4x8xf32>
}

// A fill used once, or of a tensor that is not empty, stays as it is.
// CHECK-LABEL: func.func @kept
// CHECK-COUNT-1: linalg.fill
// CHECK-NOT:     linalg.fill
func.func @kept(%x: tensor<4x16xf32>, %w: tensor<16x8xf32>, %c: tensor<4x8xf32>) -> (tensor<4x8xf32>, tensor<4x8xf32>) {
  %zero = arith.constant 0.0 : f32
  %z = linalg.fill ins(%zero : f32) outs(%c : tensor<4x8xf32>) -> tensor<4x8xf32>
  %h0 = linalg.matmul ins(%x, %w : tensor<4x16xf32>, tensor<16x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  %h1 = linalg.matmul ins(%x, %w : tensor<4x16xf32>, tensor<16x8xf32>) outs(%z : tensor<4x8xf32>) -> tensor<4x8xf32>
  return %h0, %h1 : tensor<4x8xf32>, tensor<4x8xf32>
}
