// One expected-error per verifier rule of the dense ops (embed, norm,
// linear, ffn, attention: dialects/moma/DenseVerifiers.cpp and their ODS
// constraints).
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// embed ids rank
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<16xi32>, %t: tensor<128x32xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-2 [batch, sequence] tensor of 32-bit signless integer values, but got 'tensor<16xi32>'}}
  %h = moma.embed %ids, %t : (tensor<16xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// embed untied table needs a modality operand
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<2x128x32xf32>) {
  // expected-error @+1 {{'table' must have shape [?, ?] ([vocab, features]), found [2, 128, 32]}}
  %h = moma.embed %ids, %t : (tensor<2x8xi32>, tensor<2x128x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// embed untied table leading dim is M
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<3x128x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'table' must have shape [2, ?, ?] ([modalities, vocab, features]), found [3, 128, 32]}}
  %h = moma.embed %ids, %t modality %m : (tensor<2x8xi32>, tensor<3x128x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// embed result width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<128x32xf32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 32] ([batch, sequence, features]), found [2, 8, 16]}}
  %h = moma.embed %ids, %t : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x16xf32>
  return
}
}

// -----

// embed vocabulary covers the modalities
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<100x32xf32>) {
  // expected-error @+1 {{'table' has 100 rows but modality 'image' owns token ids up to 127}}
  %h = moma.embed %ids, %t : (tensor<2x8xi32>, tensor<100x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// untied weights need declared modalities
module {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<2x128x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{requires the enclosing module to declare 'moma.modalities'}}
  %h = moma.embed %ids, %t modality %m : (tensor<2x8xi32>, tensor<2x128x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// embed element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ids: tensor<2x8xi32>, %t: tensor<128x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {table, result} have same element type}}
  %h = moma.embed %ids, %t : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xbf16>
  return
}
}

// -----

// norm weight size
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<16xf32>) {
  // expected-error @+1 {{'weight' must have shape [32] ([features]), found [16]}}
  %y = moma.norm rms %x, %w : (tensor<2x8x32xf32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// norm bias only for layer norm
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{'bias' is only allowed with kind 'layer'}}
  %y = moma.norm rms %x, %w bias %w : (tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// norm epsilon
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{'epsilon' must be > 0, got 0}}
  %y = moma.norm rms %x, %w {epsilon = 0.0 : f64} : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// norm result type
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.norm rms %x, %w : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf16>
  return
}
}

// -----

// norm element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32xf16>) {
  // expected-error @+1 {{element type of 'weight' ('f16') must match that of 'x' ('f32')}}
  %y = moma.norm rms %x, %w : (tensor<2x8x32xf32>, tensor<32xf16>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// norm x rank
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<8x32xf32>, %w: tensor<32xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-3 [batch, sequence, features] tensor of floating-point values, but got 'tensor<8x32xf32>'}}
  %y = moma.norm rms %x, %w : (tensor<8x32xf32>, tensor<32xf32>) -> tensor<8x32xf32>
  return
}
}

// -----

// linear input width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<16x64xf32>) {
  // expected-error @+1 {{'weight' must have shape [32, ?] ([in, out]), found [16, 64]}}
  %y = moma.linear %x, %w : (tensor<2x8x32xf32>, tensor<16x64xf32>) -> tensor<2x8x64xf32>
  return
}
}

// -----

// linear bias
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %b: tensor<32xf32>) {
  // expected-error @+1 {{'bias' must have shape [64] ([out]), found [32]}}
  %y = moma.linear %x, %w bias %b : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32xf32>) -> tensor<2x8x64xf32>
  return
}
}

// -----

// linear LoRA B shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %a: tensor<32x4xf32>, %b: tensor<8x64xf32>) {
  // expected-error @+1 {{'lora_b' must have shape [4, 64] ([rank, out]), found [8, 64]}}
  %y = moma.linear %x, %w lora(%a, %b) : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32x4xf32>, tensor<8x64xf32>) -> tensor<2x8x64xf32>
  return
}
}

// -----

// linear result shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 64] ([batch, sequence, out]), found [2, 8, 32]}}
  %y = moma.linear %x, %w : (tensor<2x8x32xf32>, tensor<32x64xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// modality ids shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<2x32x64xf32>, %m: tensor<2x4xi32>) {
  // expected-error @+1 {{'modality' must have shape [2, 8] ([batch, sequence] modality ids), found [2, 4]}}
  %y = moma.linear %x, %w modality %m : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x4xi32>) -> tensor<2x8x64xf32>
  return
}
}

// -----

// swiglu needs gate and up halves
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x63xf32>, %wo: tensor<31x32xf32>) {
  // expected-error @+1 {{swiglu 'w_in' must have an even number of columns (gate half then up half), found 63}}
  %y = moma.ffn swiglu %x, %wi, %wo : (tensor<2x8x32xf32>, tensor<32x63xf32>, tensor<31x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ffn w_out shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x128xf32>, %wo: tensor<128x32xf32>) {
  // expected-error @+1 {{'w_out' must have shape [64, 32] ([hidden, out]), found [128, 32]}}
  %y = moma.ffn swiglu %x, %wi, %wo : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// untied ffn weights
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x64xf32>, %wo: tensor<64x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'w_in' must have shape [2, 32, ?] ([modalities, in, hidden]), found [32, 64]}}
  %y = moma.ffn gelu %x, %wi, %wo modality %m : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// heads multiple of kv_heads
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{heads (4) must be a multiple of kv_heads (3)}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 3 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// heads > 0 (ODS)
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{attribute 'heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 0 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// RoPE needs even head_dim
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x36xf32>, %wk: tensor<32x18xf32>, %wo: tensor<36x32xf32>) {
  // expected-error @+1 {{RoPE needs an even head_dim, got 9}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 9 {rope_theta = 1.0e4 : f64} : (tensor<2x8x32xf32>, tensor<32x36xf32>, tensor<32x18xf32>, tensor<32x18xf32>, tensor<36x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// rope_theta >= 0
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{'rope_theta' must be >= 0 (0 disables RoPE), got -1}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 8 {rope_theta = -1.0 : f64} : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// wk matches kv heads
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{'wk' must have shape [32, 16] ([features, kv_heads * head_dim]), found [32, 32]}}
  %y = moma.attention %x, %wq, %wq, %wk, %wo heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// wo shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x16xf32>) {
  // expected-error @+1 {{'wo' must have shape [32, 32] ([heads * head_dim, features]), found [32, 16]}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x16xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// positions shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>, %p: tensor<2x4xi32>) {
  // expected-error @+1 {{'positions' must have shape [2, 8] ([batch, sequence] token positions), found [2, 4]}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo positions %p heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>, tensor<2x4xi32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: attention kv_heads > 0
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{attribute 'kv_heads' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 0 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: attention head_dim > 0
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{attribute 'head_dim' failed to satisfy constraint: 64-bit signless integer attribute whose value is positive}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 0 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: attention result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf16>
  return
}
}

// -----

// ODS: attention element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf16>, %wk: tensor<32x16xf32>, %wo: tensor<32x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, wq, wk, wv, wo} have same element type}}
  %y = moma.attention %x, %wq, %wk, %wk, %wo heads 4 kv_heads 2 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf16>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: ffn result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x128xf32>, %wo: tensor<64x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.ffn swiglu %x, %wi, %wo : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>) -> tensor<2x4x32xf32>
  return
}
}

// -----

// ODS: ffn element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %wi: tensor<32x128xf32>, %wo: tensor<64x32xbf16>) {
  // expected-error @+1 {{failed to verify that all of {x, w_in, w_out} have same element type}}
  %y = moma.ffn swiglu %x, %wi, %wo : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xbf16>) -> tensor<2x8x32xf32>
  return
}
}
