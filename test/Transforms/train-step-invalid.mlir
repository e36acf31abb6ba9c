// moma-train-step's errors: a weight without a gradient result (moma-autodiff
// not run), a function that is already a train step, an argument that is
// neither a weight nor a static batched input, an unnamed result, no
// weights, no @forward; and every out-of-range option.
// RUN: moma-opt %s --split-input-file --moma-train-step --verify-diagnostics
//
// RUN: echo 'func.func @forward(%%w: tensor<2xf32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) { %%t = arith.constant dense<1.0> : tensor<f32>  return %%t, %%w : tensor<f32>, tensor<2xf32> }' > %t.mlir
// RUN: moma-opt %t.mlir --moma-train-step="lr=0.1" -o /dev/null
// RUN: not moma-opt %t.mlir --moma-train-step="lr=0" 2>&1 | FileCheck %s --check-prefix=LR
// RUN: not moma-opt %t.mlir --moma-train-step="beta1=1.0" 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not moma-opt %t.mlir --moma-train-step="beta2=-0.5" 2>&1 | FileCheck %s --check-prefix=BETA
// RUN: not moma-opt %t.mlir --moma-train-step="eps=0" 2>&1 | FileCheck %s --check-prefix=EPS
// RUN: not moma-opt %t.mlir --moma-train-step="weight-decay=-1" 2>&1 | FileCheck %s --check-prefix=DECAY
// RUN: not moma-opt %t.mlir --moma-train-step="warmup-steps=-1" 2>&1 | FileCheck %s --check-prefix=STEPS
// RUN: not moma-opt %t.mlir --moma-train-step="total-steps=0" 2>&1 | FileCheck %s --check-prefix=STEPS
// RUN: not moma-opt %t.mlir --moma-train-step="decay=exponential" 2>&1 | FileCheck %s --check-prefix=SHAPE
// RUN: not moma-opt %t.mlir --moma-train-step="final-lr-ratio=1.5" 2>&1 | FileCheck %s --check-prefix=FLOOR
// RUN: not moma-opt %t.mlir --moma-train-step="clip-grad-norm=-1" 2>&1 | FileCheck %s --check-prefix=CLIP
// RUN: not moma-opt %t.mlir --moma-train-step="accumulation-steps=0" 2>&1 | FileCheck %s --check-prefix=ACCUM
// LR: error: moma-train-step: lr must be > 0
// BETA: error: moma-train-step: beta1 and beta2 must be in [0, 1)
// EPS: error: moma-train-step: eps must be > 0
// DECAY: error: moma-train-step: weight-decay must be >= 0
// STEPS: error: moma-train-step: warmup-steps must be >= 0 and total-steps >= 1
// SHAPE: error: moma-train-step: decay must be linear, cosine or constant, not 'exponential'
// FLOOR: error: moma-train-step: final-lr-ratio must be in [0, 1]
// CLIP: error: moma-train-step: clip-grad-norm must be >= 0 (0: no clipping)
// ACCUM: error: moma-train-step: accumulation-steps must be >= 1

// expected-error @+1 {{moma-train-step: @forward returns no gradient of weight 'v' (run moma-autodiff first)}}
func.func @forward(%w: tensor<2xf32> {moma.weight = "w"}, %v: tensor<2xf32> {moma.weight = "v"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: @forward is already a train step}}
func.func @forward(%w: tensor<2xf32> {moma.weight = "w"}, %m: tensor<2xf32> {moma.state = "adam.m:w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: @forward is already a train step}}
func.func @forward(%s: tensor<i64> {moma.input = "step"}, %w: tensor<2xf32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: argument #0 must be a named weight or a static input of rank >= 1 (its first dimension is the batch)}}
func.func @forward(%x: tensor<f32> {moma.input = "x"}, %w: tensor<2xf32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) {
  return %x, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: argument #0 must be a named weight or a static input of rank >= 1 (its first dimension is the batch)}}
func.func @forward(%x: tensor<?x4xf32> {moma.input = "x"}, %w: tensor<2xf32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:w"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: result #1 is not a named tensor output}}
func.func @forward(%w: tensor<2xf32> {moma.weight = "w"}) -> (tensor<f32> {moma.output = "total"}, tensor<2xf32>) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %w : tensor<f32>, tensor<2xf32>
}

// -----

// expected-error @+1 {{moma-train-step: @forward has no weights to train}}
func.func @forward(%x: tensor<2xf32> {moma.input = "x"}) -> (tensor<f32> {moma.output = "total"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t : tensor<f32>
}

// -----

// expected-error @+1 {{moma-train-step: the module has no @forward}}
module {
  func.func @other() {
    return
  }
}
