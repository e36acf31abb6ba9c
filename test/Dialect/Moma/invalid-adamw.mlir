// One expected-error per verifier rule of moma.adamw
// (dialects/moma/OptimizerOps.cpp) and its custom syntax.
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// the learning rate must be positive
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'lr' must be a finite number > 0}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 0.0 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// betas are in [0, 1)
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'beta2' must be in [0, 1)}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 1.0 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// epsilon must be positive
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'eps' must be a finite number > 0}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 0.0 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// a negative warm-up
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'warmup_steps' must be >= 0}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = -1 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// total steps from 1
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'total_steps' must be >= 1}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 0 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// an unknown decay shape
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'decay' must be "linear", "cosine" or "constant", not "exponential"}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "exponential", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// the floor is a fraction
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'final_lr_ratio' must be in [0, 1]}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 1.5 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// one decay per weight
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'weight_decay' must have one entry per weight (1), not 2}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0, 0.1>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// no negative decay
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'weight_decay' entry #0 must be a finite number >= 0}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: -0.1>} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// a clipping threshold must be positive
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{attribute 'max_grad_norm' must be a finite number > 0}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>, max_grad_norm = -1.0 : f64} : tensor<4xf32> -> tensor<f32>
  return
}

// -----

// the scalars have the weights' element type
func.func @f(%w: tensor<4xf32>, %g: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{weight #0 has elements of type 'f32', but 'grad_norm' is 'tensor<f64>' (every weight must have its element type)}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xf32> -> tensor<f64>
  return
}

// -----

// bf16 weights need master weights
func.func @f(%w: tensor<4xbf16>, %g: tensor<4xbf16>, %s: tensor<i64>) {
  // expected-error @+1 {{updates f32 or f64 weights only (the optimizer's state of bf16/f16 models is not implemented), not 'bf16'}}
  %r:5 = moma.adamw step %s weights(%w) grads(%g) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : tensor<4xbf16> -> tensor<bf16>
  return
}

// -----

// one type per weight in the syntax
func.func @f(%w: tensor<4xf32>, %s: tensor<i64>) {
  // expected-error @+2 {{expected 1 types for 'weights', one per weight, but got 2}}
  %r:5 = moma.adamw step %s weights(%w) grads(%w) exp_avg(%w) exp_avg_sq(%w)
      {beta1 = 0.9 : f64} : tensor<4xf32>, tensor<4xf32> -> tensor<f32>
  return
}

// -----

// in generic form, a gradient of another shape than its weight
func.func @f(%w: tensor<4xf32>, %g: tensor<5xf32>, %s: tensor<i64>) {
  // expected-error @+1 {{'grads' #0 must have weight #0's type 'tensor<4xf32>', not 'tensor<5xf32>'}}
  %r:5 = "moma.adamw"(%w, %g, %w, %w, %s) {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-8 : f64, lr = 1.0e-3 : f64, warmup_steps = 0 : i64, total_steps = 10 : i64, decay = "linear", final_lr_ratio = 0.0 : f64, weight_decay = array<f64: 0.0>} : (tensor<4xf32>, tensor<5xf32>, tensor<4xf32>, tensor<4xf32>, tensor<i64>) -> (tensor<4xf32>, tensor<4xf32>, tensor<4xf32>, tensor<f32>, tensor<f32>)
  return
}
