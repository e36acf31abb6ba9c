// moma-drop-in-place-updates: after bufferization, a train step's results
// marked moma.updates = NAME must be the buffer of the weight or state
// argument NAME (written in place); they are dropped, the other results
// kept. A result written elsewhere is an error naming the weight or state.
// RUN: moma-opt %s --split-input-file --moma-drop-in-place-updates --verify-diagnostics | FileCheck %s

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[W:[^:]+]]: memref<4xf32> {moma.weight = "w"}, %[[M:[^:]+]]: memref<4xf32> {moma.state = "adam.m:w"})
// CHECK-SAME: -> (memref<f32> {moma.output = "total"}, memref<f32> {moma.output = "lr"}) {
// CHECK: %[[T:.*]] = memref.alloc() : memref<f32>
// CHECK: %[[LR:.*]] = memref.alloc() : memref<f32>
// CHECK-NEXT: return %[[T]], %[[LR]] : memref<f32>, memref<f32>
func.func @forward(%w: memref<4xf32> {moma.weight = "w"}, %m: memref<4xf32> {moma.state = "adam.m:w"})
    -> (memref<f32> {moma.output = "total"}, memref<4xf32> {moma.updates = "w"},
        memref<f32> {moma.output = "lr"}, memref<4xf32> {moma.updates = "adam.m:w"}) {
  %t = memref.alloc() : memref<f32>
  %lr = memref.alloc() : memref<f32>
  return %t, %w, %lr, %m : memref<f32>, memref<4xf32>, memref<f32>, memref<4xf32>
}

// -----

// A function without moma.updates results is left as it is.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: -> (memref<4xf32> {moma.output = "y"})
// CHECK-NEXT: return %{{.*}} : memref<4xf32>
func.func @forward(%w: memref<4xf32> {moma.weight = "w"}) -> (memref<4xf32> {moma.output = "y"}) {
  return %w : memref<4xf32>
}

// -----

// expected-error @+1 {{moma-drop-in-place-updates: the update of 'w' is not written in place into its argument (bufferization gave it another buffer)}}
func.func @forward(%w: memref<4xf32> {moma.weight = "w"}) -> (memref<4xf32> {moma.updates = "w"}) {
  %new = memref.alloc() : memref<4xf32>
  return %new : memref<4xf32>
}

// -----

// The buffer of another weight is not the update's own.
// expected-error @+1 {{moma-drop-in-place-updates: the update of 'adam.v:w' is not written in place into its argument (bufferization gave it another buffer)}}
func.func @forward(%w: memref<4xf32> {moma.weight = "w"}, %v: memref<4xf32> {moma.state = "adam.v:w"}) -> (memref<4xf32> {moma.updates = "w"}, memref<4xf32> {moma.updates = "adam.v:w"}) {
  return %w, %w : memref<4xf32>, memref<4xf32>
}
