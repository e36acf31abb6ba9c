// convert-moma-to-linalg runs as a partial conversion with the moma dialect
// illegal: a moma op that no pattern lowers fails the pass with the
// conversion driver's diagnostic at the op.
// RUN: moma-opt %s --convert-moma-to-linalg -split-input-file -verify-diagnostics

// Attention's row maxima start at -inf, which f8E4M3FN cannot represent
// (it would become NaN and poison every maximum): the pattern does not
// apply.
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 128>]} {
func.func @attention_without_infinity(%x: tensor<2x8x32xf8E4M3FN>,
    %wq: tensor<32x32xf8E4M3FN>, %wk: tensor<32x16xf8E4M3FN>,
    %wv: tensor<32x16xf8E4M3FN>, %wo: tensor<32x32xf8E4M3FN>)
    -> tensor<2x8x32xf8E4M3FN> {
  // expected-error @+1 {{failed to legalize operation 'moma.attention' that was explicitly marked illegal}}
  %y = moma.attention %x, %wq, %wk, %wv, %wo heads 4 kv_heads 2 head_dim 8
      : (tensor<2x8x32xf8E4M3FN>, tensor<32x32xf8E4M3FN>, tensor<32x16xf8E4M3FN>,
         tensor<32x16xf8E4M3FN>, tensor<32x32xf8E4M3FN>) -> tensor<2x8x32xf8E4M3FN>
  return %y : tensor<2x8x32xf8E4M3FN>
}
}

// -----

// Softmax routing scores start their maxima at -inf too.
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 128>]} {
func.func @softmax_route_without_infinity(%logits: tensor<2x8x4xf8E4M3FN>,
    %mod: tensor<2x8xi32>)
    -> (tensor<32xi32>, tensor<32xf8E4M3FN>, tensor<5xi32>) {
  // expected-error @+1 {{failed to legalize operation 'moma.route' that was explicitly marked illegal}}
  %tok, %gate, %off = moma.route %logits, %mod groups [
      #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax>]
      : (tensor<2x8x4xf8E4M3FN>, tensor<2x8xi32>)
      -> (tensor<32xi32>, tensor<32xf8E4M3FN>, tensor<5xi32>)
  return %tok, %gate, %off : tensor<32xi32>, tensor<32xf8E4M3FN>, tensor<5xi32>
}
}

// -----

// The attention gradient is lowered for f32 and f64 only (the bf16/f16 form,
// computed in f32 inside the op, is not written yet): the pattern does not
// apply and the op is reported.
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 128>]} {
func.func @attention_grad_bf16(%x: tensor<2x8x32xbf16>,
    %wq: tensor<32x32xbf16>, %wk: tensor<32x16xbf16>,
    %wv: tensor<32x16xbf16>, %wo: tensor<32x32xbf16>,
    %dy: tensor<2x8x32xbf16>)
    -> (tensor<2x8x32xbf16>, tensor<32x32xbf16>, tensor<32x16xbf16>,
        tensor<32x16xbf16>, tensor<32x32xbf16>) {
  // expected-error @+1 {{failed to legalize operation 'moma.attention_grad' that was explicitly marked illegal}}
  %dx, %dq, %dk, %dv, %do = moma.attention_grad %x, %wq, %wk, %wv, %wo, %dy
      heads 4 kv_heads 2 head_dim 8
      : (tensor<2x8x32xbf16>, tensor<32x32xbf16>, tensor<32x16xbf16>,
         tensor<32x16xbf16>, tensor<32x32xbf16>, tensor<2x8x32xbf16>)
      -> (tensor<2x8x32xbf16>, tensor<32x32xbf16>, tensor<32x16xbf16>,
          tensor<32x16xbf16>, tensor<32x32xbf16>)
  return %dx, %dq, %dk, %dv, %do : tensor<2x8x32xbf16>, tensor<32x32xbf16>,
      tensor<32x16xbf16>, tensor<32x16xbf16>, tensor<32x32xbf16>
}
}

// -----

// The experts' gradient lowers f32 and f64 only: narrower types reach it
// widened (moma-widen-compute), so a bf16 one is left to the driver.
func.func @bf16_experts_grad(%xs: tensor<4x8xbf16>, %off: tensor<3xi32>,
    %wi: tensor<2x8x12xbf16>, %wo: tensor<2x6x8xbf16>, %dy: tensor<4x8xbf16>)
    -> (tensor<4x8xbf16>, tensor<2x8x12xbf16>, tensor<2x6x8xbf16>) {
  // expected-error @+1 {{failed to legalize operation 'moma.experts_grad' that was explicitly marked illegal}}
  %dxs, %dwi, %dwo = moma.experts_grad swiglu %xs, %off, %wi, %wo, %dy
      : (tensor<4x8xbf16>, tensor<3xi32>, tensor<2x8x12xbf16>,
         tensor<2x6x8xbf16>, tensor<4x8xbf16>)
      -> (tensor<4x8xbf16>, tensor<2x8x12xbf16>, tensor<2x6x8xbf16>)
  return %dxs, %dwi, %dwo : tensor<4x8xbf16>, tensor<2x8x12xbf16>, tensor<2x6x8xbf16>
}
