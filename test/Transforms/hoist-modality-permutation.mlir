// RUN: moma-opt %s -split-input-file -verify-diagnostics --moma-hoist-modality-permutation | FileCheck %s

// A Mixture-of-Transformers layer (untied norm, attention and FFN) and the
// LM head. The pass sorts every batch row by modality once at the entry and
// gathers the token inputs (ids, modality) into that order; the layer then
// runs on modality-contiguous rows with the original positions as
// attention's `positions`. The only inverse gather is of the [B, L, D]
// rows before the LM head, so the logits come out in sequence order and
// cross-entropy reads them with the original targets: no per-layer
// permutation anywhere.
// CHECK-LABEL: func.func @mot
// CHECK-SAME:    (%[[IDS:[^:]*]]: tensor<2x8xi32> {moma.input = "ids"}, %[[MOD:[^:]*]]: tensor<2x8xi32> {moma.input = "modality"}, %[[TGT:[^:]*]]: tensor<2x8xi32> {moma.input = "targets"}, %[[TMOD:[^:]*]]: tensor<2x8xi32> {moma.input = "target_modality"}
// CHECK:         %[[ORDER:.*]], %[[INV:.*]] = moma.modality_sort %[[MOD]] : tensor<2x8xi32>
// CHECK-DAG:     %[[SMOD:.*]] = moma.permute %[[MOD]], %[[ORDER]] : (tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8xi32>
// CHECK-DAG:     %[[SIDS:.*]] = moma.permute %[[IDS]], %[[ORDER]]
// CHECK:         %[[H:.*]] = moma.embed %[[SIDS]]
// CHECK:         %[[N:.*]] = moma.norm rms %[[H]], %{{.*}} modality %[[SMOD]]
// CHECK:         %[[A:.*]] = moma.attention %[[N]], {{.*}} positions %[[ORDER]] modality %[[SMOD]]
// CHECK:         %[[R:.*]] = arith.addf %[[H]], %[[A]]
// CHECK:         %[[F:.*]] = moma.ffn gelu %[[R]], %{{.*}}, %{{.*}} modality %[[SMOD]]
// CHECK:         %[[OUT:.*]] = arith.addf %[[R]], %[[F]]
// CHECK:         %[[SEQ:.*]] = moma.permute %[[OUT]], %[[INV]]
// CHECK:         %[[LOGITS:.*]] = moma.linear %[[SEQ]]
// CHECK:         %[[PER:.*]], %[[TOTAL:.*]] = moma.cross_entropy %[[LOGITS]], %[[TGT]], %[[TMOD]]
// CHECK-NOT:     moma.permute
// CHECK:         return %[[LOGITS]], %[[TOTAL]]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @mot(%ids: tensor<2x8xi32> {moma.input = "ids"},
               %mod: tensor<2x8xi32> {moma.input = "modality"},
               %tgt: tensor<2x8xi32> {moma.input = "targets"},
               %tmod: tensor<2x8xi32> {moma.input = "target_modality"},
               %table: tensor<128x32xf32>, %nw: tensor<2x32xf32>,
               %wq: tensor<2x32x32xf32>, %wk: tensor<2x32x32xf32>,
               %wv: tensor<2x32x32xf32>, %wo: tensor<2x32x32xf32>,
               %win: tensor<2x32x64xf32>, %wout: tensor<2x64x32xf32>,
               %head: tensor<32x128xf32>)
    -> (tensor<2x8x128xf32>, tensor<f32>) {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %n = moma.norm rms %h, %nw modality %mod : (tensor<2x8x32xf32>, tensor<2x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %a = moma.attention %n, %wq, %wk, %wv, %wo modality %mod heads 4 kv_heads 4 head_dim 8 {rope_theta = 1.0e+04 : f64} : (tensor<2x8x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x32x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %r = arith.addf %h, %a : tensor<2x8x32xf32>
  %f = moma.ffn gelu %r, %win, %wout modality %mod : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %out = arith.addf %r, %f : tensor<2x8x32xf32>
  %logits = moma.linear %out, %head : (tensor<2x8x32xf32>, tensor<32x128xf32>) -> tensor<2x8x128xf32>
  %per, %total = moma.cross_entropy %logits, %tgt, %tmod : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %logits, %total : tensor<2x8x128xf32>, tensor<f32>
}
}

// -----

// Mixture-of-depths around an expert-choice MoE, and a top-level
// expert-choice MoE: every selection whose ties follow token order gets the
// original positions. depth_route and depth_region get `order`; inside the
// region, where the kept tokens arrive in modality order, the route breaks
// ties by the body's `ps` (which the region now fills with the original
// positions); the top-level route gets `order`. A loss-only program: the
// cross-entropy reads permuted logits, so its targets are gathered too (the
// only i32 gathers besides ids and modality), and nothing is un-permuted.
// CHECK-LABEL: func.func @mod_moe
// CHECK-SAME:    (%[[IDS:[^:]*]]: tensor<2x8xi32> {moma.input = "ids"}, %[[MOD:[^:]*]]: tensor<2x8xi32> {moma.input = "modality"}, %[[TGT:[^:]*]]: tensor<2x8xi32> {moma.input = "targets"}, %[[TMOD:[^:]*]]: tensor<2x8xi32> {moma.input = "target_modality"}
// CHECK:         %[[ORDER:.*]], %[[INV:.*]] = moma.modality_sort %[[MOD]]
// CHECK-DAG:     %[[SMOD:.*]] = moma.permute %[[MOD]], %[[ORDER]]
// CHECK-DAG:     %[[SIDS:.*]] = moma.permute %[[IDS]], %[[ORDER]]
// CHECK-DAG:     %[[STGT:.*]] = moma.permute %[[TGT]], %[[ORDER]]
// CHECK-DAG:     %[[STMOD:.*]] = moma.permute %[[TMOD]], %[[ORDER]]
// CHECK:         %[[H:.*]] = moma.embed %[[SIDS]]
// CHECK:         %[[IDX:.*]], %[[GATE:.*]] = moma.depth_route %[[H]], %{{.*}} positions %[[ORDER]]
// CHECK:         moma.depth_region %[[H]], %[[SMOD]], %[[IDX]] gate %[[GATE]] positions %[[ORDER]]
// CHECK:         ^bb0(%[[XS:.*]]: tensor<2x4x32xf32>, %[[MS:.*]]: tensor<2x4xi32>, %[[PS:.*]]: tensor<2x4xi32>):
// CHECK:           moma.route %{{.*}}, %[[MS]] positions %[[PS]] groups
// CHECK:         moma.route %{{.*}}, %[[SMOD]] positions %[[ORDER]] groups
// CHECK:         moma.cross_entropy %{{.*}}, %[[STGT]], %[[STMOD]]
// CHECK-NOT:     %[[INV]]
// CHECK:         return
#text = #moma.expert_group<modality = 0, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>
#image = #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @mod_moe(%ids: tensor<2x8xi32> {moma.input = "ids"},
                   %mod: tensor<2x8xi32> {moma.input = "modality"},
                   %tgt: tensor<2x8xi32> {moma.input = "targets"},
                   %tmod: tensor<2x8xi32> {moma.input = "target_modality"},
                   %table: tensor<128x32xf32>, %dw: tensor<32x1xf32>,
                   %rt: tensor<32x2xf32>, %ri: tensor<32x2xf32>,
                   %win: tensor<4x32x64xf32>, %wout: tensor<4x64x32xf32>,
                   %head: tensor<32x128xf32>) -> tensor<f32> {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %idx, %gate = moma.depth_route %h, %dw {capacity_factor = 5.0e-01 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x4xi32>, tensor<2x4xf32>)
  %y = moma.depth_region %h, %mod, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x4xi32>, tensor<2x4xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x4x32xf32>, %ms: tensor<2x4xi32>, %ps: tensor<2x4xi32>):
    %l = moma.router %xs, %ms weights(%rt, %ri) groups [#text, #image] : (tensor<2x4x32xf32>, tensor<2x4xi32>, tensor<32x2xf32>, tensor<32x2xf32>) -> tensor<2x4x2xf32>
    %t, %g, %o = moma.route %l, %ms groups [#text, #image] : (tensor<2x4x2xf32>, tensor<2x4xi32>) -> (tensor<8xi32>, tensor<8xf32>, tensor<5xi32>)
    %d = moma.dispatch %xs, %t : (tensor<2x4x32xf32>, tensor<8xi32>) -> tensor<8x32xf32>
    %e = moma.experts gelu %d, %o, %win, %wout : (tensor<8x32xf32>, tensor<5xi32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<8x32xf32>
    %c = moma.combine %e, %t, %g residual %xs : (tensor<8x32xf32>, tensor<8xi32>, tensor<8xf32>, tensor<2x4x32xf32>) -> tensor<2x4x32xf32>
    moma.yield %c : tensor<2x4x32xf32>
  }
  %l = moma.router %y, %mod weights(%rt, %ri) groups [#text, #image] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x2xf32>, tensor<32x2xf32>) -> tensor<2x8x2xf32>
  %t, %g, %o = moma.route %l, %mod groups [#text, #image] : (tensor<2x8x2xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  %d = moma.dispatch %y, %t : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  %e = moma.experts gelu %d, %o, %win, %wout : (tensor<16x32xf32>, tensor<5xi32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<16x32xf32>
  %c = moma.combine %e, %t, %g residual %y : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  %logits = moma.linear %c, %head : (tensor<2x8x32xf32>, tensor<32x128xf32>) -> tensor<2x8x128xf32>
  %per, %total = moma.cross_entropy %logits, %tgt, %tmod : (tensor<2x8x128xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %total : tensor<f32>
}
}

// -----

// A routing plan refers to tokens by their (permuted) index and has no
// cheap inverse: a function that returns one is left unchanged.
// CHECK-LABEL: func.func @returns_plan
// CHECK-NOT:     moma.modality_sort
// CHECK-NOT:     moma.permute
// CHECK:         moma.route %{{.*}}, %{{.*}} groups
#text = #moma.expert_group<modality = 0, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>
#image = #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @returns_plan(%ids: tensor<2x8xi32> {moma.input = "ids"},
                        %mod: tensor<2x8xi32> {moma.input = "modality"},
                        %table: tensor<128x32xf32>, %rt: tensor<32x2xf32>,
                        %ri: tensor<32x2xf32>) -> tensor<16xi32> {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %l = moma.router %h, %mod weights(%rt, %ri) groups [#text, #image] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x2xf32>, tensor<32x2xf32>) -> tensor<2x8x2xf32>
  %t, %g, %o = moma.route %l, %mod groups [#text, #image] : (tensor<2x8x2xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  // expected-remark @+1 {{this op reads a token-order-dependent value it cannot un-permute; the function is left unchanged}}
  return %t : tensor<16xi32>
}
}

// -----

// Without a `moma.input = "modality"` argument there is nothing to sort.
// CHECK-LABEL: func.func @no_modality
// CHECK-NOT:     moma.modality_sort
// CHECK:         moma.embed %arg0
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>]} {
func.func @no_modality(%ids: tensor<2x8xi32> {moma.input = "ids"},
                       %table: tensor<64x32xf32>) -> tensor<2x8x32xf32> {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
  return %h : tensor<2x8x32xf32>
}
}

// -----

// Shared weights only (a dense model): nothing selects by modality, so
// sorting would only cost the gathers; the function is left as it is.
// CHECK-LABEL: func.func @dense
// CHECK-NOT:     moma.modality_sort
// CHECK-NOT:     moma.permute
// CHECK:         moma.attention %{{.*}} heads 4
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 64>,
    #moma.modality<1, "image", tokens = 64 to 128>]} {
func.func @dense(%ids: tensor<2x8xi32> {moma.input = "ids"},
                 %mod: tensor<2x8xi32> {moma.input = "modality"},
                 %table: tensor<128x32xf32>, %w: tensor<32x32xf32>)
    -> tensor<2x8x32xf32> {
  %h = moma.embed %ids, %table : (tensor<2x8xi32>, tensor<128x32xf32>) -> tensor<2x8x32xf32>
  %a = moma.attention %h, %w, %w, %w, %w heads 4 kv_heads 4 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
  return %a : tensor<2x8x32xf32>
}
}
