// One expected-error per verifier rule of the backward ops
// (dialects/moma/GradientVerifiers.cpp and their ODS constraints). The
// operand rules they share with their forward ops are the forward ops'
// own (invalid-dense.mlir); here each backward op shows it applies them.
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// embed_grad: the gradient table must cover the declared token ids
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'result' has 100 rows but modality 'image' owns token ids up to 127}}
  %g = moma.embed_grad %ids, %dy : (tensor<2x8xi32>, tensor<2x8x32xf32>) -> tensor<100x32xf32>
  return
}
}

// -----

// embed_grad: dy's width is the table's
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %dy: tensor<2x8x16xf32>) {
  // expected-error @+1 {{'dy' must have shape [2, 8, 32] ([batch, sequence, features]), found [2, 8, 16]}}
  %g = moma.embed_grad %ids, %dy : (tensor<2x8xi32>, tensor<2x8x16xf32>) -> tensor<128x32xf32>
  return
}
}

// -----

// norm_grad: dx has x's type
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, dy, dx} have same type}}
  %dx, %dw = moma.norm_grad rms %x, %w, %dy : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x16xf32>, tensor<32xf32>)
  return
}
}

// -----

// norm_grad: untied weights need a modality operand
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<2x32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'weight' must have shape [32] ([features]), found [2, 32]}}
  %dx, %dw = moma.norm_grad rms %x, %w, %dy : (tensor<2x8x32xf32>, tensor<2x32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<2x32xf32>)
  return
}
}

// -----

// norm_grad: epsilon
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'epsilon' must be > 0, got 0}}
  %dx, %dw = moma.norm_grad rms %x, %w, %dy {epsilon = 0.0 : f64} : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<32xf32>)
  return
}
}

// -----

// bias_grad: the result is [features]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'result' must have shape [32] ([features]), found [16]}}
  %g = moma.bias_grad %dy : (tensor<2x8x32xf32>) -> tensor<16xf32>
  return
}
}

// -----

// bias_grad: untied, [modalities, features]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%dy: tensor<2x8x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'result' must have shape [2, 32] ([modalities, features]), found [32]}}
  %g = moma.bias_grad %dy modality %m : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<32xf32>
  return
}
}

// -----

// linear_grad: dy has the projection's output width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'dy' must have shape [2, 8, 64] ([batch, sequence, out]), found [2, 8, 32]}}
  %dx, %dw = moma.linear_grad %x, %w, %dy : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<32x64xf32>)
  return
}
}

// -----

// linear_grad: LoRA operands need their two gradients
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %dy: tensor<2x8x64xf32>, %a: tensor<32x4xf32>, %b: tensor<4x64xf32>) {
  // expected-error @+1 {{has 0 LoRA gradient results, expected 2 (dA, dB)}}
  %dx, %dw = moma.linear_grad %x, %w, %dy lora(%a, %b) : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8x64xf32>, tensor<32x4xf32>, tensor<4x64xf32>) -> (tensor<2x8x32xf32>, tensor<32x64xf32>)
  return
}
}

// -----

// linear_grad: LoRA gradients have the adapters' types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %dy: tensor<2x8x64xf32>, %a: tensor<32x4xf32>, %b: tensor<4x64xf32>) {
  // expected-error @+1 {{LoRA gradient results must have the types of 'lora_a' and 'lora_b'}}
  %dx, %dw, %da, %db = moma.linear_grad %x, %w, %dy lora(%a, %b) : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8x64xf32>, tensor<32x4xf32>, tensor<4x64xf32>) -> (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<4x64xf32>, tensor<32x4xf32>)
  return
}
}

// -----

// linear_grad: no LoRA, no LoRA gradients
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %dy: tensor<2x8x64xf32>) {
  // expected-error @+1 {{has 1 LoRA gradient results, expected 0 (no LoRA operands)}}
  %dx, %dw, %e = moma.linear_grad %x, %w, %dy : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<2x8x64xf32>) -> (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32x64xf32>)
  return
}
}

// -----

// ffn_grad: a SwiGLU w_in is [D, 2F]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x64xf32>, %wo: tensor<64x32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{'w_out' must have shape [32, 32] ([hidden, out]), found [64, 32]}}
  %dx, %dwi, %dwo = moma.ffn_grad swiglu %x, %wi, %wo, %dy : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64x32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64x32xf32>)
  return
}
}

// -----

// attention_grad: heads must be a multiple of kv_heads
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x24xf32>, %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>, %wo: tensor<24x32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{heads (3) must be a multiple of kv_heads (2)}}
  %dx, %a, %b, %c, %d = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy heads 3 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x24xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<24x32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<32x24xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<24x32xf32>)
  return
}
}

// -----

// attention_grad: each weight gradient has its weight's type
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>, %wo: tensor<32x32xf32>, %dy: tensor<2x8x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {wk, dwk} have same type}}
  %dx, %a, %b, %c, %d = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>, tensor<2x8x32xf32>) -> (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x32xf32>)
  return
}
}

// -----

// cross_entropy_grad: one loss gradient per declared modality
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>, %tm: tensor<2x8xi32>, %dp: tensor<3xf32>, %dt: tensor<f32>) {
  // expected-error @+1 {{'d_per_modality' must have shape [2] ([declared modalities]), found [3]}}
  %g = moma.cross_entropy_grad %l, %t, %tm, %dp, %dt : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>, tensor<3xf32>, tensor<f32>) -> tensor<2x8x128xf32>
  return
}
}

// -----

// cross_entropy_grad: targets are [batch, sequence]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x4xi32>, %tm: tensor<2x8xi32>, %dp: tensor<2xf32>, %dt: tensor<f32>) {
  // expected-error @+1 {{'targets' must have shape [2, 8] ([batch, sequence] target token ids), found [2, 4]}}
  %g = moma.cross_entropy_grad %l, %t, %tm, %dp, %dt : (tensor<2x8x128xf32>, tensor<2x4xi32>, tensor<2x8xi32>, tensor<2xf32>, tensor<f32>) -> tensor<2x8x128xf32>
  return
}
}
