// One expected-error per verifier rule of the moma dialect's module,
// argument and result attributes and of its attributes (modalities, expert
// groups). The op verifiers' rules are in invalid-<family>.mlir, one file
// per verifier file of dialects/moma/.
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

// expected-error @below {{'moma.kernel' must be a dictionary with an integer 'id' and string 'class' and 'role'}}
func.func @kernel_plan_not_a_dictionary() attributes {moma.kernel = 1 : i64} {
  return
}

// -----

// expected-error @below {{'moma.kernel_target' must be a string on a module}}
func.func @kernel_target_not_on_a_module() attributes {moma.kernel_target = "sm_90"} {
  return
}

// -----

// expected-error @below {{'moma.vocab_chunk' must be a positive integer on an scf.for}}
func.func @vocab_chunk_not_on_a_loop() attributes {moma.vocab_chunk = 64 : i64} {
  return
}

// -----

func.func @vocab_chunk_not_positive(%n: index) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  // expected-error @below {{'moma.vocab_chunk' must be a positive integer on an scf.for}}
  scf.for %i = %c0 to %n step %c1 {
  } {moma.vocab_chunk = 0 : i64}
  return
}
