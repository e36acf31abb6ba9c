// Every moma op round-trips through the custom form and the generic form.
// RUN: moma-opt %s | moma-opt | FileCheck %s
// RUN: moma-opt %s --mlir-print-op-generic | moma-opt | FileCheck %s
// RUN: moma-opt %s --mlir-print-op-generic | FileCheck %s --check-prefix=GENERIC

#ec_text = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#ec_image = #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#tc_text = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
#tc_image = #moma.expert_group<modality = 1, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
#shared = #moma.expert_group<modalities = [0, 1], experts = 4, token_choice(top_k = 2), score = softmax, renormalize>

// CHECK-DAG: #[[EC0:.*]] = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.000000e+00), score = sigmoid>
// CHECK-DAG: #[[EC1:.*]] = #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.000000e+00), score = sigmoid>
// CHECK-DAG: #[[TC0:.*]] = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
// CHECK-DAG: #[[TC1:.*]] = #moma.expert_group<modality = 1, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
// CHECK-DAG: #[[SHARED:.*]] = #moma.expert_group<modalities = [0, 1], experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
// CHECK: module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 96>, #moma.modality<1, "image", tokens = 96 to 128>]}
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// CHECK-LABEL: func.func @embed_norm_linear
// CHECK: %[[H:.*]] = moma.embed %arg0, %arg1 : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
// CHECK: %[[U:.*]] = moma.embed %arg0, %arg2 modality %arg3 : (tensor<2x8xi32>, tensor<2x128x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
// CHECK: moma.norm rms %[[H]], %arg4 : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.norm layer %[[H]], %arg5 bias %arg6 modality %arg3 {epsilon = 9.9999999999999995E-7 : f64}
// CHECK: moma.linear %[[H]], %arg7 bias %arg8 : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
// CHECK: moma.linear %[[H]], %arg7 lora(%arg9, %arg10) {lora_scale = 2.000000e+00 : f64}
// CHECK: moma.linear %[[U]], %arg11 modality %arg3 : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
// GENERIC: "moma.embed"(%{{.*}}, %{{.*}}) : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
// GENERIC: "moma.norm"({{.*}}) <{epsilon = 1.000000e-05 : f64, kind = 0 : i32, operandSegmentSizes = array<i32: 1, 1, 0, 0>}>
func.func @embed_norm_linear(%ids: tensor<2x8xi32>, %table: tensor<128x32xf32>,
    %tables: tensor<2x128x32xf32>, %mod: tensor<2x8xi32>, %g: tensor<32xf32>,
    %gs: tensor<2x32xf32>, %bs: tensor<2x32xf32>, %w: tensor<32x64xf32>,
    %b: tensor<64xf32>, %la: tensor<32x4xf32>, %lb: tensor<4x64xf32>,
    %ws: tensor<2x32x64xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x64xf32>,
        tensor<2x8x64xf32>, tensor<2x8x64xf32>) {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %u = moma.embed %ids, %tables modality %mod : (tensor<2x8xi32>, tensor<2x128x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %n0 = moma.norm rms %h, %g : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %n1 = moma.norm layer %h, %gs bias %bs modality %mod {epsilon = 1.0e-6 : f64} : (tensor<2x8x32xf32>, tensor<2x32xf32>, tensor<2x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %l0 = moma.linear %h, %w bias %b : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
  %l1 = moma.linear %h, %w lora(%la, %lb) {lora_scale = 2.0 : f64} : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<32x4xf32>, tensor<4x64xf32>) -> tensor<2x8x64xf32>
  %l2 = moma.linear %u, %ws modality %mod : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  return %n0, %n1, %l0, %l1, %l2 : tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>, tensor<2x8x64xf32>
}

// CHECK-LABEL: func.func @attention_ffn
// CHECK: moma.attention %arg0, %arg1, %arg2, %arg3, %arg4 heads 4 kv_heads 2 head_dim 8 {rope_theta = 1.000000e+04 : f64} : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.attention %arg0, %arg5, %arg6, %arg7, %arg8 positions %arg9 modality %arg9 heads 4 kv_heads 4 head_dim 8 {causal = false}
// CHECK: moma.ffn swiglu %arg0, %arg10, %arg11 : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.ffn gelu %arg0, %arg12, %arg13 modality %arg9 : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
// GENERIC: "moma.attention"({{.*}}) <{causal = true, head_dim = 8 : i64, heads = 4 : i64, kv_heads = 2 : i64, operandSegmentSizes = array<i32: 1, 1, 1, 1, 1, 0, 0>, rope_theta = 1.000000e+04 : f64}>
// GENERIC: "moma.ffn"({{.*}}) <{activation = 0 : i32}>
func.func @attention_ffn(%x: tensor<2x8x32xf32>, %wq: tensor<32x32xf32>,
    %wk: tensor<32x16xf32>, %wv: tensor<32x16xf32>, %wo: tensor<32x32xf32>,
    %uq: tensor<2x32x32xf32>, %uk: tensor<2x32x32xf32>, %uv: tensor<2x32x32xf32>,
    %uo: tensor<2x32x32xf32>, %mod: tensor<2x8xi32>, %wi: tensor<32x128xf32>,
    %wd: tensor<64x32xf32>, %gi: tensor<2x32x64xf32>, %gd: tensor<2x64x32xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %a = moma.attention %x, %wq, %wk, %wv, %wo heads 4 kv_heads 2 head_dim 8 {rope_theta = 1.0e4 : f64} : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x16xf32>, tensor<32x16xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  %u = moma.attention %x, %uq, %uk, %uv, %uo positions %mod modality %mod heads 4 kv_heads 4 head_dim 8 {causal = false} : (tensor<2x8x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %f = moma.ffn swiglu %x, %wi, %wd : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
  %g = moma.ffn gelu %x, %gi, %gd modality %mod : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %a, %u, %f, %g : tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// A MoMa t4i4 FFN: expert-choice, sigmoid, 4 text + 4 image experts.
// CHECK-LABEL: func.func @moma_ffn
// CHECK: %[[L:.*]] = moma.router %arg0, %arg1 weights(%arg2, %arg3) groups [#[[EC0]], #[[EC1]]] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
// CHECK: %[[TOK:.*]], %[[GATE:.*]], %[[OFF:.*]] = moma.route %[[L]], %arg1 groups [#[[EC0]], #[[EC1]]] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
// CHECK: %[[XS:.*]] = moma.dispatch %arg0, %[[TOK]] : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
// CHECK: %[[YS:.*]] = moma.experts swiglu %[[XS]], %[[OFF]], %arg4, %arg5 : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
// CHECK: moma.combine %[[YS]], %[[TOK]], %[[GATE]] residual %arg0 : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.route_mask %[[TOK]], %[[OFF]], %arg1 groups [#[[EC0]], #[[EC1]]] : (tensor<16xi32>, tensor<9xi32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
// CHECK: moma.router_z_loss %[[L]], %arg1 groups [#[[EC0]], #[[EC1]]] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f32>
// GENERIC: "moma.route"(%{{.*}}, %{{.*}}) <{groups = [#{{.*}}, #{{.*}}], operandSegmentSizes = array<i32: 1, 1, 0, 0>}> : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
func.func @moma_ffn(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %rt: tensor<32x4xf32>, %ri: tensor<32x4xf32>, %wi: tensor<8x32x128xf32>,
    %wo: tensor<8x64x32xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x4xf32>, tensor<f32>) {
  %logits = moma.router %x, %mod weights(%rt, %ri) groups [#ec_text, #ec_image] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x4xf32>, tensor<32x4xf32>) -> tensor<2x8x4xf32>
  %tok, %gate, %off = moma.route %logits, %mod groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<9xi32>, tensor<8x32x128xf32>, tensor<8x64x32xf32>) -> tensor<16x32xf32>
  %y = moma.combine %ys, %tok, %gate residual %x : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  %mask = moma.route_mask %tok, %off, %mod groups [#ec_text, #ec_image] : (tensor<16xi32>, tensor<9xi32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  %z = moma.router_z_loss %logits, %mod groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> tensor<f32>
  return %y, %mask, %z : tensor<2x8x32xf32>, tensor<2x8x4xf32>, tensor<f32>
}

// Causal inference with per-modality auxiliary routers.
// CHECK-LABEL: func.func @aux_routed
// CHECK: %[[P:.*]] = moma.aux_router %arg0 weights(%arg3, %arg4) modality %arg1 : (tensor<2x8x32xf32>, tensor<2x32x16xf32>, tensor<2x16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
// CHECK: moma.route %arg2, %arg1 aux %[[P]] groups [#[[EC0]], #[[EC1]]] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<9xi32>)
// CHECK: moma.aux_router_loss %[[P]], %arg5 : (tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<f32>
func.func @aux_routed(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %logits: tensor<2x8x4xf32>, %w1: tensor<2x32x16xf32>, %w2: tensor<2x16x4xf32>,
    %target: tensor<2x8x4xf32>)
    -> (tensor<64xi32>, tensor<64xf32>, tensor<9xi32>, tensor<f32>) {
  %p = moma.aux_router %x weights(%w1, %w2) modality %mod : (tensor<2x8x32xf32>, tensor<2x32x16xf32>, tensor<2x16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  %tok, %gate, %off = moma.route %logits, %mod aux %p groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8x4xf32>) -> (tensor<64xi32>, tensor<64xf32>, tensor<9xi32>)
  %l = moma.aux_router_loss %p, %target : (tensor<2x8x4xf32>, tensor<2x8x4xf32>) -> tensor<f32>
  return %tok, %gate, %off, %l : tensor<64xi32>, tensor<64xf32>, tensor<9xi32>, tensor<f32>
}

// Per-group auxiliary routers read the residual stream through a
// stop-gradient.
// CHECK-LABEL: func.func @grouped_aux_routers
// CHECK: %[[S:.*]] = moma.stop_gradient %arg0 : tensor<2x8x32xf32>
// CHECK: moma.aux_router %[[S]] weights(%arg2, %arg3, %arg4, %arg5) modality %arg1 groups [#[[EC0]], #[[EC1]]] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
// GENERIC: "moma.aux_router"({{.*}}) <{groups = [#{{.*}}, #{{.*}}], operandSegmentSizes = array<i32: 1, 4, 1>}>
func.func @grouped_aux_routers(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %a1: tensor<32x16xf32>, %a2: tensor<16x4xf32>, %b1: tensor<32x16xf32>,
    %b2: tensor<16x4xf32>) -> tensor<2x8x4xf32> {
  %s = moma.stop_gradient %x : tensor<2x8x32xf32>
  %p = moma.aux_router %s weights(%a1, %a2, %b1, %b2) modality %mod groups [#ec_text, #ec_image] : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<32x16xf32>, tensor<16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return %p : tensor<2x8x4xf32>
}

// A group shared by several modalities (Uni-MoE: all tokens, one group).
// CHECK-LABEL: func.func @shared_group
// CHECK: moma.route %arg1, %arg0 groups [#[[SHARED]]] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
func.func @shared_group(%mod: tensor<2x8xi32>, %logits: tensor<2x8x4xf32>)
    -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#shared] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<5xi32>)
  return %tok, %gate, %off : tensor<32xi32>, tensor<32xf32>, tensor<5xi32>
}

// Uni-MoE: token-choice top-2, softmax, LoRA experts, balance loss.
// CHECK-LABEL: func.func @uni_moe
// CHECK: %[[TOK:.*]], %[[GATE:.*]], %[[OFF:.*]] = moma.route %arg2, %arg1 groups [#[[TC0]], #[[TC1]]]
// CHECK: %[[XS:.*]] = moma.dispatch %arg0, %[[TOK]]
// CHECK: %[[YS:.*]] = moma.experts gelu %[[XS]], %[[OFF]], %arg3, %arg4 lora(%arg5, %arg6, %arg7, %arg8) {lora_scale = 5.000000e-01 : f64} : (tensor<32x32xf32>, tensor<9xi32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x2x64xf32>, tensor<8x64x2xf32>, tensor<8x2x32xf32>) -> tensor<32x32xf32>
// CHECK: moma.combine %[[YS]], %[[TOK]], %[[GATE]] : (tensor<32x32xf32>, tensor<32xi32>, tensor<32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.load_balancing_loss %arg2, %arg1, %[[OFF]] groups [#[[TC0]], #[[TC1]]] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
func.func @uni_moe(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %logits: tensor<2x8x4xf32>, %wi: tensor<8x32x64xf32>, %wo: tensor<8x64x32xf32>,
    %ai: tensor<8x32x2xf32>, %bi: tensor<8x2x64xf32>, %ao: tensor<8x64x2xf32>,
    %bo: tensor<8x2x32xf32>) -> (tensor<2x8x32xf32>, tensor<f32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#tc_text, #tc_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>) -> (tensor<32xi32>, tensor<32xf32>, tensor<9xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<32xi32>) -> tensor<32x32xf32>
  %ys = moma.experts gelu %xs, %off, %wi, %wo lora(%ai, %bi, %ao, %bo) {lora_scale = 0.5 : f64} : (tensor<32x32xf32>, tensor<9xi32>, tensor<8x32x64xf32>, tensor<8x64x32xf32>, tensor<8x32x2xf32>, tensor<8x2x64xf32>, tensor<8x64x2xf32>, tensor<8x2x32xf32>) -> tensor<32x32xf32>
  %y = moma.combine %ys, %tok, %gate : (tensor<32x32xf32>, tensor<32xi32>, tensor<32xf32>) -> tensor<2x8x32xf32>
  %lb = moma.load_balancing_loss %logits, %mod, %off groups [#tc_text, #tc_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<9xi32>) -> tensor<f32>
  return %y, %lb : tensor<2x8x32xf32>, tensor<f32>
}

// Mixture-of-depths: keep 25% of each sequence for the block.
// CHECK-LABEL: func.func @mixture_of_depths
// CHECK: %[[I:.*]], %[[G:.*]] = moma.depth_route %arg0, %arg2 {capacity_factor = 2.500000e-01 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
// CHECK: moma.depth_region %arg0, %arg1, %[[I]] gate %[[G]] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<2x8x32xf32> {
// CHECK: ^bb0(%[[XS:.*]]: tensor<2x2x32xf32>, %[[MS:.*]]: tensor<2x2xi32>, %[[PS:.*]]: tensor<2x2xi32>):
// CHECK:   %[[A:.*]] = moma.attention %[[XS]], %arg3, %arg3, %arg3, %arg3 positions %[[PS]] heads 4 kv_heads 4 head_dim 8
// CHECK:   %[[F:.*]] = moma.ffn swiglu %[[A]], %arg4, %arg5 modality %[[MS]]
// CHECK:   moma.yield %[[F]] : tensor<2x2x32xf32>
// CHECK: }
// CHECK: moma.depth_mask %[[I]] : (tensor<2x2xi32>) -> tensor<2x8x1xf32>
// CHECK: moma.scale %arg0, %arg6 : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.depth_route %arg0, %arg2 aux %arg7 {capacity_factor = 2.500000e-01 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
func.func @mixture_of_depths(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %w: tensor<32x1xf32>, %wa: tensor<32x32xf32>, %wi: tensor<2x32x128xf32>,
    %wo: tensor<2x64x32xf32>, %s: tensor<2x8xf32>, %aux: tensor<2x8x1xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x1xf32>, tensor<2x8x32xf32>, tensor<2x8xi32>) {
  %idx, %gate = moma.depth_route %x, %w {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  %y = moma.depth_region %x, %mod, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    %a = moma.attention %xs, %wa, %wa, %wa, %wa positions %ps heads 4 kv_heads 4 head_dim 8 : (tensor<2x2x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<2x2xi32>) -> tensor<2x2x32xf32>
    %f = moma.ffn swiglu %a, %wi, %wo modality %ms : (tensor<2x2x32xf32>, tensor<2x32x128xf32>, tensor<2x64x32xf32>, tensor<2x2xi32>) -> tensor<2x2x32xf32>
    moma.yield %f : tensor<2x2x32xf32>
  }
  %m = moma.depth_mask %idx : (tensor<2x2xi32>) -> tensor<2x8x1xf32>
  %sc = moma.scale %x, %s : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
  %ia, %ga = moma.depth_route %x, %w aux %aux {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  return %y, %m, %sc, %ia : tensor<2x8x32xf32>, tensor<2x8x1xf32>, tensor<2x8x32xf32>, tensor<2x8xi32>
}

// Program inputs, weights and outputs are named for the runtime.
// CHECK-LABEL: func.func @named_arguments
// CHECK-SAME: (%{{.*}}: tensor<2x8xi32> {moma.input = "ids"}, %{{.*}}: tensor<128x32xf32> {moma.weight = "embed.weight"}) -> (tensor<2x8x32xf32> {moma.output = "hidden"})
func.func @named_arguments(%ids: tensor<2x8xi32> {moma.input = "ids"}, %table: tensor<128x32xf32> {moma.weight = "embed.weight"}) -> (tensor<2x8x32xf32> {moma.output = "hidden"}) {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  return %h : tensor<2x8x32xf32>
}

// A depth region returns losses computed inside its block as extra results.
// CHECK-LABEL: func.func @depth_region_extras
// CHECK: %{{.*}}, %[[E:.*]] = moma.depth_region %arg0, %arg1, %arg2 : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> (tensor<2x8x32xf32>, tensor<f32>) {
// CHECK: moma.yield %{{.*}}, %arg3 : tensor<2x2x32xf32>, tensor<f32>
// CHECK: return %[[E]]
func.func @depth_region_extras(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>, %idx: tensor<2x2xi32>, %l: tensor<f32>) -> tensor<f32> {
  %y, %e = moma.depth_region %x, %mod, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>) -> (tensor<2x8x32xf32>, tensor<f32>) {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs, %l : tensor<2x2x32xf32>, tensor<f32>
  }
  return %e : tensor<f32>
}

// CHECK-LABEL: func.func @losses
// CHECK: moma.cross_entropy %arg0, %arg1, %arg2 : (tensor<2x8x128xbf16>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
func.func @losses(%logits: tensor<2x8x128xbf16>, %t: tensor<2x8xi32>, %tm: tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>) {
  %per, %all = moma.cross_entropy %logits, %t, %tm : (tensor<2x8x128xbf16>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %per, %all : tensor<2xf32>, tensor<f32>
}


// The hoisted modality permutation: the sort, the gathers and the
// positions operands of the order-dependent selections.
// CHECK-LABEL: func.func @token_order
// CHECK: %[[O:.*]], %[[V:.*]] = moma.modality_sort %arg1 : tensor<2x8xi32>
// CHECK: %[[X:.*]] = moma.permute %arg0, %[[O]] : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
// CHECK: %[[I:.*]], %{{.*}} = moma.depth_route %[[X]], %arg2 positions %[[O]] {capacity_factor = 2.500000e-01 : f64}
// CHECK: moma.depth_region %[[X]], %arg1, %[[I]] positions %[[O]] :
// CHECK: moma.route %arg3, %arg1 positions %[[O]] groups
// CHECK: moma.permute %{{.*}}, %[[V]]
func.func @token_order(%x: tensor<2x8x32xf32>, %mod: tensor<2x8xi32>,
    %w: tensor<32x1xf32>, %l: tensor<2x8x4xf32>)
    -> (tensor<2x8x32xf32>, tensor<16xi32>) {
  %o, %v = moma.modality_sort %mod : tensor<2x8xi32>
  %xp = moma.permute %x, %o : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %idx, %gate = moma.depth_route %xp, %w positions %o {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8xi32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  %y = moma.depth_region %xp, %mod, %idx positions %o : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  %t, %g, %off = moma.route %l, %mod positions %o groups [#ec_text, #ec_image] : (tensor<2x8x4xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<9xi32>)
  %back = moma.permute %y, %v : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %back, %t : tensor<2x8x32xf32>, tensor<16xi32>
}

}
