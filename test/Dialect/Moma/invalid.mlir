// One expected-error per verifier rule of the moma dialect.
// RUN: moma-opt %s --split-input-file --verify-diagnostics

// modalities only on a module
module {
// expected-error @+1 {{'moma.modalities' may only be declared on a builtin.module}}
func.func @f() attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>]} {
  return
}
}

// -----

// modalities must be an array
// expected-error @+1 {{'moma.modalities' must be an array of #moma.modality}}
module attributes {moma.modalities = 3 : i32} {
}

// -----

// at least one modality
// expected-error @+1 {{'moma.modalities' must declare at least one modality}}
module attributes {moma.modalities = []} {
}

// -----

// entries are modalities
// expected-error @+1 {{'moma.modalities' entry 1 is not a #moma.modality}}
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>, "image"]} {
}

// -----

// ids in order
// expected-error @+1 {{modality 'image' has id 2 but is entry 1 of the declaration (ids must be 0, 1, ... in order)}}
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>, #moma.modality<2, "image", tokens = 4 to 8>]} {
}

// -----

// unique names
// expected-error @+1 {{modality name 'text' is declared twice}}
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>, #moma.modality<1, "text", tokens = 4 to 8>]} {
}

// -----

// disjoint token ranges
// expected-error @+1 {{token ranges of modalities 'text' and 'image' overlap}}
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 6>, #moma.modality<1, "image", tokens = 4 to 8>]} {
}

// -----

// unknown moma attribute
// expected-error @+1 {{unknown moma attribute 'moma.layers'}}
module attributes {moma.layers = 3 : i64} {
}

// -----

// modality token range
// expected-error @+1 {{modality 'text' token range must satisfy 0 <= begin < end, got [8, 4)}}
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 8 to 4>]} {
}

// -----

// modality id
// expected-error @+1 {{modality id must be >= 0, got -1}}
module attributes {moma.modalities = [#moma.modality<-1, "text", tokens = 0 to 4>]} {
}

// -----

// modality name
// expected-error @+1 {{modality 0 must have a non-empty name}}
module attributes {moma.modalities = [#moma.modality<0, "", tokens = 0 to 4>]} {
}

// -----

// weight names are strings
module {
// expected-error @+1 {{'moma.weight' must be a non-empty string}}
func.func @f(%w: tensor<4xf32> {moma.weight = 3 : i64}) {
  return
}
}

// -----

// unknown argument attribute
module {
// expected-error @+1 {{unknown moma argument attribute 'moma.wieght'}}
func.func @f(%w: tensor<4xf32> {moma.wieght = "embed.weight"}) {
  return
}
}

// -----

// unknown result attribute
module {
// expected-error @+1 {{unknown moma result attribute 'moma.weight'}}
func.func @f(%w: tensor<4xf32>) -> (tensor<4xf32> {moma.weight = "x"}) {
  return %w : tensor<4xf32>
}
}

// -----

// at least one expert
// expected-error @+1 {{expert group must have at least 1 expert, got 0}}
module attributes {test.group = #moma.expert_group<modality = 0, experts = 0, expert_choice(capacity = 1.0), score = sigmoid>} {
}

// -----

// top_k <= experts
// expected-error @+1 {{token_choice top_k must satisfy 1 <= top_k <= experts (4), got 5}}
module attributes {test.group = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 5), score = softmax>} {
}

// -----

// top_k >= 1
// expected-error @+1 {{token_choice top_k must satisfy 1 <= top_k <= experts (4), got 0}}
module attributes {test.group = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 0), score = softmax>} {
}

// -----

// capacity <= experts
// expected-error @+1 {{expert_choice capacity must satisfy 0 < capacity <= experts (4), got 4.5}}
module attributes {test.group = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 4.5), score = sigmoid>} {
}

// -----

// capacity > 0
// expected-error @+1 {{expert_choice capacity must satisfy 0 < capacity <= experts (4), got 0}}
module attributes {test.group = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 0.0), score = sigmoid>} {
}

// -----

// a group serves a modality
// expected-error @+1 {{expert group must serve at least one modality}}
module attributes {test.group = #moma.expert_group<modalities = [], experts = 4, expert_choice(capacity = 1.0), score = sigmoid>} {
}

// -----

// group modalities are distinct
// expected-error @+1 {{expert group lists modality 0 twice}}
module attributes {test.group = #moma.expert_group<modalities = [0, 1, 0], experts = 4, token_choice(top_k = 1), score = softmax>} {
}

// -----

// group modality >= 0
// expected-error @+1 {{expert group modality must be >= 0, got -2}}
module attributes {test.group = #moma.expert_group<modality = -2, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>} {
}

// -----

// routing kind keyword
module attributes {
// expected-error @+1 {{expected 'token_choice' or 'expert_choice', got 'random_choice'}}
    test.group = #moma.expert_group<modality = 0, experts = 4, random_choice(top_k = 1), score = sigmoid>} {
}

// -----

// score keyword
module attributes {
// expected-error @+1 {{expected 'softmax' or 'sigmoid', got 'tanh'}}
    test.group = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 1), score = tanh>} {
}

// -----

// static shapes only
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x?x32xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-3 [batch, sequence, features] tensor of floating-point values, but got 'tensor<2x?x32xf32>'}}
  %y = moma.scale %x, %s : (tensor<2x?x32xf32>, tensor<2x8xf32>) -> tensor<2x?x32xf32>
  return
}
}

// -----

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

// linear LoRA operands together
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x64xf32>, %a: tensor<32x4xf32>) {
  // expected-error @+1 {{'lora_a' and 'lora_b' must be given together}}
  %y = "moma.linear"(%x, %w, %a) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 0>}> : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32x4xf32>) -> tensor<2x8x64xf32>
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

// one router weight per group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{expects one router weight per expert group (2), got 1}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// router weight matches experts
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>, %v: tensor<32x2xf32>) {
  // expected-error @+1 {{'weights[1]' must have shape [32, 4] ([features, experts of group 1]), found [32, 2]}}
  %l = moma.router %x, %m weights(%w, %v) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x2xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group modality declared
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{expert group 0 serves modality 2, which the module does not declare (it declares 2)}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 2, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// shared groups too
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{modality 0 has more than one expert group (groups 0 and 1)}}
  %l = moma.router %x, %m weights(%w, %w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modalities = [1, 0], experts = 4, token_choice(top_k = 1), score = softmax>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// one group per modality
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{modality 0 has more than one expert group (groups 0 and 1)}}
  %l = moma.router %x, %m weights(%w, %w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// at least one group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{requires at least one expert group}}
  %l = moma.router %x, %m weights() groups [] : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// logits cover the largest group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 8]}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x8xf32>
  return
}
}

// -----

// groups need declared modalities
module {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{requires the enclosing module to declare 'moma.modalities'}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// plan capacity
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 12 slots but these groups may fill up to 16 (16 tokens x the largest top_k / capacity)}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<12xi32>, tensor<12xf32>, tensor<9xi32>)
  return
}
}

// -----

// plan capacity with top_k
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 16 slots but these groups may fill up to 32 (16 tokens x the largest top_k / capacity)}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// plan capacity with aux
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{routing plan has 16 slots but these groups may fill up to 64 (16 tokens x the largest top_k / capacity, or experts with 'aux')}}
  %t, %g, %o = moma.route %l, %m aux %l groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
  return
}
}

// -----

// aux only for expert choice
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'aux' scores replace expert_choice selection, but no group uses expert_choice}}
  %t, %g, %o = moma.route %l, %m aux %l groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
  return
}
}

// -----

// aux shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %a: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'aux' scores must have the shape of 'logits' [2, 8, 4], found [2, 8, 1]}}
  %t, %g, %o = moma.route %l, %m aux %a groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x1xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<5xi32>)
  return
}
}

// -----

// expert offsets size
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [9] ([total experts + 1]), found [8]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<8xi32>)
  return
}
}

// -----

// slot gates
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'slot_gate' must have shape [16] ([slots]), found [15]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<15xf32>, tensor<9xi32>)
  return
}
}

// -----

// route logits shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x3xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 3]}}
  %t, %g, %o = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x3xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// dispatch result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %t: tensor<16xi32>) {
  // expected-error @+1 {{'result' must have shape [16, 32] ([slots, features]), found [8, 32]}}
  %xs = moma.dispatch %x, %t : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<8x32xf32>
  return
}
}

// -----

// experts offsets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<8xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [9] ([experts + 1]), found [8]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<8xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts input width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x16xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{'w_in' must have shape [?, 16, ?] ([experts, features, hidden columns]), found [8, 32, 128]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x16xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x16xf32>
  return
}
}

// -----

// experts w_out
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'w_out' must have shape [8, 64, 32] ([experts, hidden, out]), found [4, 64, 32]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<4x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts LoRA count
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>, %a: tensor<8x32x2xf32>) {
  // expected-error @+1 {{expects 0 or 4 LoRA operands (A_in, B_in, A_out, B_out), got 2}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo lora(%a, %a) : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x32x2xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts LoRA shapes
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>, %a: tensor<8x32x2xf32>, %b: tensor<8x2x128xf32>, %c: tensor<8x64x2xf32>, %d: tensor<8x2x16xf32>) {
  // expected-error @+1 {{'lora B_out' must have shape [8, 2, 32] ([experts, rank, features]), found [8, 2, 16]}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo lora(%a, %b, %c, %d) : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x2x128xf32>, tensor<8x64x2xf32>, tensor<8x2x16xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// experts result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %o: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{failed to verify that all of {tokens, result} have same type}}
  %ys = moma.experts swiglu %xs, %o, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf16>
  return
}
}

// -----

// combine gates
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<8xf32>) {
  // expected-error @+1 {{'slot_gate' must have shape [16] ([slots]), found [8]}}
  %y = moma.combine %ys, %t, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<8xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// combine residual
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<16xf32>, %r: tensor<2x4x32xf32>) {
  // expected-error @+1 {{'residual' type 'tensor<2x4x32xf32>' must equal the result type 'tensor<2x8x32xf32>'}}
  %y = moma.combine %ys, %t, %g residual %r : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x4x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// combine width
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %t: tensor<16xi32>, %g: tensor<16xf32>) {
  // expected-error @+1 {{'result' must have shape [?, ?, 32] ([batch, sequence, features]), found [2, 8, 16]}}
  %y = moma.combine %ys, %t, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>) -> tensor<2x8x16xf32>
  return
}
}

// -----

// depth capacity <= 1
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'capacity_factor' must satisfy 0 < c <= 1, got 1.5}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 1.5 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  return
}
}

// -----

// depth kept count
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'indices' must have shape [2, 2] ([batch, floor(sequence * capacity_factor)]), found [2, 4]}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x4xi32>, tensor<2x4xf32>)
  return
}
}

// -----

// depth keeps a token
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{'capacity_factor' 1.000000e-01 keeps no token of a sequence of 8}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.1 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x0xi32>, tensor<2x0xf32>)
  return
}
}

// -----

// depth aux keeps up to L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>, %a: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'indices' must have shape [2, 8] ([batch, sequence]: with 'aux' every position may be kept), found [2, 2]}}
  %i, %g = moma.depth_route %x, %w aux %a {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return
}
}

// -----

// depth router weight
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x2xf32>) {
  // expected-error @+1 {{'weight' must have shape [32, 1] ([features, 1]), found [32, 2]}}
  %i, %g = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x2xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  return
}
}

// -----

// depth region keeps at most L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x9xi32>) {
  // expected-error @+1 {{'indices' keeps 9 tokens per sequence but sequences have 8}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x9xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x9x32xf32>, %ms: tensor<2x9xi32>, %ps: tensor<2x9xi32>):
    moma.yield %xs : tensor<2x9x32xf32>
  }
  return
}
}

// -----

// depth region gate
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %g: tensor<2x3xf32>) {
  // expected-error @+1 {{'gate' must have shape [2, 2] ([batch, kept]), found [2, 3]}}
  %y = moma.depth_region %x, %m, %i gate %g : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x3xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// depth region body arguments
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>) {
  // expected-error @+1 {{body must take 3 arguments (kept tokens, their modality ids, their positions), got 1}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// depth region body argument types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>) {
  // expected-error @+1 {{body argument 0 (kept tokens) must be 'tensor<2x2x32xf32>', got 'tensor<2x8x32xf32>'}}
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x8x32xf32>
  }
  return
}
}

// -----

// depth region yield type
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %o: tensor<2x2x16xf32>) {
  %y = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    // expected-error @+1 {{yields 'tensor<2x2x16xf32>' but the depth region's kept tokens are 'tensor<2x2x32xf32>'}}
    moma.yield %o : tensor<2x2x16xf32>
  }
  return
}
}

// -----

// depth region extra values
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %i: tensor<2x2xi32>, %l: tensor<f32>) {
  %y, %e = moma.depth_region %x, %m, %i : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> (tensor<2x8x32xf32>, tensor<f32>) {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    // expected-error @+1 {{yields extra values of types () but the depth region returns ('tensor<f32>')}}
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}

// -----

// yield belongs to a depth region
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>) {
  // expected-error @+1 {{expects parent op 'moma.depth_region'}}
  moma.yield %x : tensor<2x8x32xf32>
  return
}
}

// -----

// scale shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x4xf32>) {
  // expected-error @+1 {{'scale' must have shape [2, 8] ([batch, sequence]), found [2, 4]}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x4xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// aux router W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<8x1xf32>) {
  // expected-error @+1 {{'W2' must have shape [16, ?] ([hidden, outputs]), found [8, 1]}}
  %p = moma.aux_router %x weights(%w1, %w2) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<8x1xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// aux router result
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 4] ([batch, sequence, outputs]), found [2, 8, 1]}}
  %p = moma.aux_router %x weights(%w1, %w2) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// aux router takes W1 and W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>) {
  // expected-error @+1 {{expects two weights (W1, W2), got 1}}
  %p = moma.aux_router %x weights(%w1) : (tensor<2x8x32xf32>, tensor<32x16xf32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// grouped aux routers need modality ids
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{with 'groups', a 'modality' operand must route each token to its group's router}}
  %p = moma.aux_router %x weights(%w1, %w2) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// two weights per group
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{expects two weights (W1, W2) per expert group (4), got 2}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group aux router W2
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x2xf32>) {
  // expected-error @+1 {{'W2 of group 0' must have shape [16, 4] ([hidden, experts of group 0]), found [16, 2]}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x2xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// group aux router columns
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w1: tensor<32x16xf32>, %w2: tensor<16x4xf32>) {
  // expected-error @+1 {{result has 2 columns but the largest group has 4 experts}}
  %p = moma.aux_router %x weights(%w1, %w2) modality %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x2xf32>
  return
}
}

// -----

// route mask shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%t: tensor<16xi32>, %o: tensor<9xi32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'result' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 8]}}
  %k = moma.route_mask %t, %o, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<16xi32>, tensor<9xi32>, tensor<2x8xi32>) -> tensor<2x8x8xf32>
  return
}
}

// -----

// depth mask keeps at most L
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%i: tensor<2x4xi32>) {
  // expected-error @+1 {{'indices' keeps 4 tokens per sequence but sequences have 2}}
  %k = moma.depth_mask %i : (tensor<2x4xi32>) -> tensor<2x2x1xf32>
  return
}
}

// -----

// depth mask shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%i: tensor<2x4xi32>) {
  // expected-error @+1 {{'result' must have shape [2, ?, 1] ([batch, sequence, 1]), found [2, 8, 2]}}
  %k = moma.depth_mask %i : (tensor<2x4xi32>) -> tensor<2x8x2xf32>
  return
}
}

// -----

// per-modality loss size
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{'per_modality' must have shape [2] ([declared modalities]), found [3]}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<3xf32>, tensor<f32>)
  return
}
}

// -----

// total loss is a scalar
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{result #1 must be statically shaped rank-0 scalar tensor of floating-point values, but got 'tensor<1xf32>'}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<1xf32>)
  return
}
}

// -----

// targets shape
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x7xi32>) {
  // expected-error @+1 {{'targets' must have shape [2, 8] ([batch, sequence] target token ids), found [2, 7]}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x7xi32>, tensor<2x7xi32>) -> (tensor<2xf32>, tensor<f32>)
  return
}
}

// -----

// per-modality loss needs modalities
module {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{requires the enclosing module to declare 'moma.modalities'}}
  %p, %a = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return
}
}

// -----

// balance loss needs token choice
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{needs at least one token_choice group (expert_choice groups are balanced by construction)}}
  %b = moma.load_balancing_loss %l, %m, %o groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
  return
}
}

// -----

// balance loss offsets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %o: tensor<9xi32>) {
  // expected-error @+1 {{'expert_offsets' must have shape [5] ([total experts + 1]), found [9]}}
  %b = moma.load_balancing_loss %l, %m, %o groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
  return
}
}

// -----

// z-loss logits
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x2xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{'logits' must have shape [2, 8, 4] ([batch, sequence, largest expert count]), found [2, 8, 2]}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x2xf32>, tensor<2x8xi32>) -> tensor<f32>
  return
}
}

// -----

// aux loss targets
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%p: tensor<2x8x4xf32>, %t: tensor<2x8x1xf32>) {
  // expected-error @+1 {{'targets' must have the shape of 'scores' [2, 8, 4], found [2, 8, 1]}}
  %b = moma.aux_router_loss %p, %t : (tensor<2x8x4xf32>, tensor<2x8x1xf32>) -> tensor<f32>
  return
}
}

// -----

// aux loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%p: tensor<2x8x4xf32>, %t: tensor<2x8x4xf16>) {
  // expected-error @+1 {{failed to verify that all of {scores, targets, result} have same element type}}
  %b = moma.aux_router_loss %p, %t : (tensor<2x8x4xf32>, tensor<2x8x4xf16>) -> tensor<f32>
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

// -----

// ODS: scale result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x8xf32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x16xf32>
  return
}
}

// -----

// ODS: scale element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<2x8xf16>) {
  // expected-error @+1 {{failed to verify that all of {x, scale} have same element type}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf16>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: scale factors are [batch, sequence]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %s: tensor<16xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-2 [batch, sequence] tensor of floating-point values, but got 'tensor<16xf32>'}}
  %y = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: dispatch element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %tok: tensor<16xi32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same element type}}
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf16>
  return
}
}

// -----

// ODS: slot tokens are [slots]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %tok: tensor<2x8xi32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-1 [slots] tensor of 32-bit signless integer values, but got 'tensor<2x8xi32>'}}
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: slot rows are [slots, features]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<2x8x32xf32>, %off: tensor<9xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-2 [slots, features] tensor of floating-point values, but got 'tensor<2x8x32xf32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<2x8x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: expert offsets are [experts + 1]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %off: tensor<9x1xi32>, %wi: tensor<8x32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-1 [experts + 1] tensor of 32-bit signless integer values, but got 'tensor<9x1xi32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<9x1xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: expert weights are stacked [experts, rows, columns]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%xs: tensor<16x32xf32>, %off: tensor<9xi32>, %wi: tensor<32x128xf32>, %wo: tensor<8x64x32xf32>) {
  // expected-error @+1 {{operand #2 must be statically shaped rank-3 [experts, rows, columns] tensor of floating-point values, but got 'tensor<32x128xf32>'}}
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  return
}
}

// -----

// ODS: slot gates are [slots]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%ys: tensor<16x32xf32>, %tok: tensor<16xi32>, %g: tensor<16x1xf32>) {
  // expected-error @+1 {{operand #2 must be statically shaped rank-1 [slots] tensor of floating-point values, but got 'tensor<16x1xf32>'}}
  %y = moma.combine %ys, %tok, %g : (tensor<16x32xf32>, tensor<16xi32>, tensor<16x1xf32>) -> tensor<2x8x32xf32>
  return
}
}

// -----

// ODS: router logits are [batch, sequence, columns]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<16x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-3 [batch, sequence, columns] tensor of floating-point values, but got 'tensor<16x4xf32>'}}
  %tok, %gate, %off = moma.route %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<16x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return
}
}

// -----

// ODS: kept indices are [batch, kept]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%idx: tensor<4xi32>) {
  // expected-error @+1 {{operand #0 must be statically shaped rank-2 [batch, kept] tensor of 32-bit signless integer values, but got 'tensor<4xi32>'}}
  %t = moma.depth_mask %idx : (tensor<4xi32>) -> tensor<2x8x1xf32>
  return
}
}

// -----

// ODS: kept gates are [batch, kept]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>) {
  // expected-error @+1 {{result #1 must be statically shaped rank-2 [batch, kept] tensor of floating-point values, but got 'tensor<4xf32>'}}
  %idx, %g = moma.depth_route %x, %w {capacity_factor = 2.5e-01 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<4xf32>)
  return
}
}

// -----

// ODS: losses are scalars
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{result #0 must be statically shaped rank-0 scalar tensor of floating-point values, but got 'tensor<1xf32>'}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<1xf32>
  return
}
}

// -----

// ODS: per-modality losses are [modalities]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{result #0 must be statically shaped rank-1 [modalities] tensor of floating-point values, but got 'tensor<f32>'}}
  %per, %all = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<f32>, tensor<f32>)
  return
}
}

// -----

// ODS: cross-entropy element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x128xf32>, %t: tensor<2x8xi32>) {
  // expected-error @+1 {{failed to verify that all of {per_modality, total} have same element type}}
  %per, %all = moma.cross_entropy %l, %t, %t : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f16>)
  return
}
}

// -----

// ODS: load-balancing loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>, %off: tensor<5xi32>) {
  // expected-error @+1 {{failed to verify that all of {logits, result} have same element type}}
  %lb = moma.load_balancing_loss %l, %m, %off groups [#moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<5xi32>) -> tensor<f16>
  return
}
}

// -----

// ODS: router z-loss element types
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%l: tensor<2x8x4xf32>, %m: tensor<2x8xi32>) {
  // expected-error @+1 {{failed to verify that all of {logits, result} have same element type}}
  %z = moma.router_z_loss %l, %m groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f16>
  return
}
}

// -----

// ODS: modality ids are [batch, sequence]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<16xi32>, %w: tensor<32x4xf32>) {
  // expected-error @+1 {{operand #1 must be statically shaped rank-2 [batch, sequence] tensor of 32-bit signless integer values, but got 'tensor<16xi32>'}}
  %l = moma.router %x, %m weights(%w) groups [#moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x32xf32>, tensor<16xi32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  return
}
}

// -----

// ODS: depth region result type is that of x
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @f(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %idx: tensor<2x2xi32>) {
  // expected-error @+1 {{failed to verify that all of {x, result} have same type}}
  %y = moma.depth_region %x, %m, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> tensor<2x8x16xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return
}
}
