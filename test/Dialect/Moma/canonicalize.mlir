// Exact canonicalisations of the moma dialect.
// RUN: moma-opt %s --split-input-file --canonicalize | FileCheck %s

// Untied weights over a single modality are plain weights.
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>]} {
// CHECK-LABEL: func.func @tie_single_modality
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>, %[[M:.*]]: tensor<2x8xi32>, %[[W:.*]]: tensor<1x32x64xf32>, %[[B:.*]]: tensor<1x64xf32>, %[[G:.*]]: tensor<1x32xf32>, %[[WI:.*]]: tensor<1x32x128xf32>, %[[WO:.*]]: tensor<1x64x32xf32>, %[[IDS:.*]]: tensor<2x8xi32>, %[[T:.*]]: tensor<1x64x32xf32>
// CHECK-DAG: %[[W2:.*]] = tensor.collapse_shape %[[W]] {{\[\[}}0, 1], [2]] : tensor<1x32x64xf32> into tensor<32x64xf32>
// CHECK-DAG: %[[B2:.*]] = tensor.collapse_shape %[[B]] {{\[\[}}0, 1]] : tensor<1x64xf32> into tensor<64xf32>
// CHECK: moma.linear %[[X]], %[[W2]] bias %[[B2]] : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64xf32>) -> tensor<2x8x64xf32>
// CHECK: %[[G2:.*]] = tensor.collapse_shape %[[G]] {{\[\[}}0, 1]] : tensor<1x32xf32> into tensor<32xf32>
// CHECK: moma.norm rms %[[X]], %[[G2]] : (tensor<2x8x32xf32>, tensor<32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.ffn swiglu %[[X]], %{{.*}}, %{{.*}} : (tensor<2x8x32xf32>, tensor<32x128xf32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.embed %[[IDS]], %{{.*}} : (tensor<2x8xi32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
// CHECK-NOT: modality
func.func @tie_single_modality(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %w: tensor<1x32x64xf32>, %b: tensor<1x64xf32>, %g: tensor<1x32xf32>,
    %wi: tensor<1x32x128xf32>, %wo: tensor<1x64x32xf32>, %ids: tensor<2x8xi32>,
    %t: tensor<1x64x32xf32>)
    -> (tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>) {
  %0 = moma.linear %x, %w bias %b modality %m : (tensor<2x8x32xf32>, tensor<1x32x64xf32>, tensor<1x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  %1 = moma.norm rms %x, %g modality %m : (tensor<2x8x32xf32>, tensor<1x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %2 = moma.ffn swiglu %x, %wi, %wo modality %m : (tensor<2x8x32xf32>, tensor<1x32x128xf32>, tensor<1x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %3 = moma.embed %ids, %t modality %m : (tensor<2x8xi32>, tensor<1x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %0, %1, %2, %3 : tensor<2x8x64xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
}

// CHECK-LABEL: func.func @tie_attention_and_aux_router
// CHECK: moma.attention %arg0, %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} heads 4 kv_heads 4 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
// CHECK: moma.aux_router %arg0 weights(%{{.*}}, %{{.*}}) : (tensor<2x8x32xf32>, tensor<32x16xf32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
func.func @tie_attention_and_aux_router(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %w: tensor<1x32x32xf32>, %a1: tensor<1x32x16xf32>, %a2: tensor<1x16x4xf32>)
    -> (tensor<2x8x32xf32>, tensor<2x8x4xf32>) {
  %0 = moma.attention %x, %w, %w, %w, %w modality %m heads 4 kv_heads 4 head_dim 8 : (tensor<2x8x32xf32>, tensor<1x32x32xf32>, tensor<1x32x32xf32>, tensor<1x32x32xf32>, tensor<1x32x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  %1 = moma.aux_router %x weights(%a1, %a2) modality %m : (tensor<2x8x32xf32>, tensor<1x32x16xf32>, tensor<1x16x4xf32>, tensor<2x8xi32>) -> tensor<2x8x4xf32>
  return %0, %1 : tensor<2x8x32xf32>, tensor<2x8x4xf32>
}
}

// -----

// Two modalities: weights stay untied.
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>, #moma.modality<1, "image", tokens = 64 to 96>]} {
// CHECK-LABEL: func.func @keep_untied
// CHECK: moma.linear %arg0, %arg2 modality %arg1
func.func @keep_untied(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>, %w: tensor<2x32x64xf32>) -> tensor<2x8x64xf32> {
  %0 = moma.linear %x, %w modality %m : (tensor<2x8x32xf32>, tensor<2x32x64xf32>, tensor<2x8xi32>) -> tensor<2x8x64xf32>
  return %0 : tensor<2x8x64xf32>
}
}

// -----

// One expert per modality group with a unit gate is the untied dense FFN
// (MoT-style); expert-choice with capacity 1 routes every token.
#g0 = #moma.expert_group<modality = 0, experts = 1, expert_choice(capacity = 1.0), score = softmax>
#g1 = #moma.expert_group<modality = 1, experts = 1, token_choice(top_k = 1), score = softmax>
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>, #moma.modality<1, "image", tokens = 64 to 96>]} {
// CHECK-LABEL: func.func @single_expert_groups
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>, %[[M:.*]]: tensor<2x8xi32>, %[[R:.*]]: tensor<32x1xf32>, %[[WI:.*]]: tensor<2x32x128xf32>, %[[WO:.*]]: tensor<2x64x32xf32>)
// CHECK-NEXT: %[[F:.*]] = moma.ffn swiglu %[[X]], %[[WI]], %[[WO]] modality %[[M]] : (tensor<2x8x32xf32>, tensor<2x32x128xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: %[[S:.*]] = arith.addf %[[X]], %[[F]] : tensor<2x8x32xf32>
// CHECK-NEXT: return %[[S]]
func.func @single_expert_groups(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>, %wi: tensor<2x32x128xf32>, %wo: tensor<2x64x32xf32>) -> tensor<2x8x32xf32> {
  %l = moma.router %x, %m weights(%r, %r) groups [#g0, #g1] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x1xf32>, tensor<32x1xf32>) -> tensor<2x8x1xf32>
  %tok, %gate, %off = moma.route %l, %m groups [#g0, #g1] : (tensor<2x8x1xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<3xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  %ys = moma.experts swiglu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<3xi32>, tensor<2x32x128xf32>, tensor<2x64x32xf32>) -> tensor<16x32xf32>
  %y = moma.combine %ys, %tok, %gate residual %x : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>, tensor<2x8x32xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}
}

// -----

// With a single modality the result is the plain dense FFN.
#g = #moma.expert_group<modality = 0, experts = 1, token_choice(top_k = 1), score = softmax>
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>]} {
// CHECK-LABEL: func.func @single_expert_is_dense
// CHECK: %[[WI:.*]] = tensor.collapse_shape %arg3
// CHECK: %[[WO:.*]] = tensor.collapse_shape %arg4
// CHECK: %[[F:.*]] = moma.ffn gelu %arg0, %[[WI]], %[[WO]] : (tensor<2x8x32xf32>, tensor<32x64xf32>, tensor<64x32xf32>) -> tensor<2x8x32xf32>
// CHECK-NEXT: return %[[F]]
func.func @single_expert_is_dense(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>, %wi: tensor<1x32x64xf32>, %wo: tensor<1x64x32xf32>) -> tensor<2x8x32xf32> {
  %l = moma.router %x, %m weights(%r) groups [#g] : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<32x1xf32>) -> tensor<2x8x1xf32>
  %tok, %gate, %off = moma.route %l, %m groups [#g] : (tensor<2x8x1xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<2xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  %ys = moma.experts gelu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<2xi32>, tensor<1x32x64xf32>, tensor<1x64x32xf32>) -> tensor<16x32xf32>
  %y = moma.combine %ys, %tok, %gate : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}
}

// -----

// Not exact, so not rewritten: a sigmoid gate scales the expert output, and
// capacity 0.5 drops half the tokens.
#sig = #moma.expert_group<modality = 0, experts = 1, expert_choice(capacity = 1.0), score = sigmoid>
#half = #moma.expert_group<modality = 0, experts = 1, expert_choice(capacity = 0.5), score = softmax>
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>]} {
// CHECK-LABEL: func.func @gated_single_expert_stays
// CHECK: moma.route
// CHECK: moma.combine
// CHECK-NOT: moma.ffn
func.func @gated_single_expert_stays(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %l: tensor<2x8x1xf32>, %wi: tensor<1x32x64xf32>, %wo: tensor<1x64x32xf32>) -> tensor<2x8x32xf32> {
  %tok, %gate, %off = moma.route %l, %m groups [#sig] : (tensor<2x8x1xf32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<2xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<16xi32>) -> tensor<16x32xf32>
  %ys = moma.experts gelu %xs, %off, %wi, %wo : (tensor<16x32xf32>, tensor<2xi32>, tensor<1x32x64xf32>, tensor<1x64x32xf32>) -> tensor<16x32xf32>
  %y = moma.combine %ys, %tok, %gate : (tensor<16x32xf32>, tensor<16xi32>, tensor<16xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}

// CHECK-LABEL: func.func @partial_capacity_stays
// CHECK: moma.combine
// CHECK-NOT: moma.ffn
func.func @partial_capacity_stays(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %l: tensor<2x8x1xf32>, %wi: tensor<1x32x64xf32>, %wo: tensor<1x64x32xf32>) -> tensor<2x8x32xf32> {
  %tok, %gate, %off = moma.route %l, %m groups [#half] : (tensor<2x8x1xf32>, tensor<2x8xi32>) -> (tensor<8xi32>, tensor<8xf32>, tensor<2xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<2x8x32xf32>, tensor<8xi32>) -> tensor<8x32xf32>
  %ys = moma.experts gelu %xs, %off, %wi, %wo : (tensor<8x32xf32>, tensor<2xi32>, tensor<1x32x64xf32>, tensor<1x64x32xf32>) -> tensor<8x32xf32>
  %y = moma.combine %ys, %tok, %gate : (tensor<8x32xf32>, tensor<8xi32>, tensor<8xf32>) -> tensor<2x8x32xf32>
  return %y : tensor<2x8x32xf32>
}
}

// -----

// Mixture-of-depths with capacity 1.0 is the plain block (then the gate).
module attributes {moma.modalities = [#moma.modality<0, "text", tokens = 0 to 64>, #moma.modality<1, "image", tokens = 64 to 96>]} {
// CHECK-LABEL: func.func @full_capacity_depth
// CHECK-SAME: (%[[X:.*]]: tensor<2x8x32xf32>, %[[M:.*]]: tensor<2x8xi32>, %[[R:.*]]: tensor<32x1xf32>, %[[W:.*]]: tensor<32x32xf32>, %[[WI:.*]]: tensor<2x32x128xf32>, %[[WO:.*]]: tensor<2x64x32xf32>)
// CHECK: %[[I:.*]], %[[G:.*]] = moma.depth_route %[[X]], %[[R]] {capacity_factor = 1.000000e+00 : f64}
// CHECK-NOT: moma.depth_region
// CHECK: %[[A:.*]] = moma.attention %[[X]], %[[W]], %[[W]], %[[W]], %[[W]] heads 4 kv_heads 4 head_dim 8 :
// CHECK: %[[F:.*]] = moma.ffn swiglu %[[A]], %[[WI]], %[[WO]] modality %[[M]]
// CHECK: %[[D:.*]] = arith.subf %[[F]], %[[X]] : tensor<2x8x32xf32>
// CHECK: %[[S:.*]] = moma.scale %[[D]], %[[G]] : (tensor<2x8x32xf32>, tensor<2x8xf32>) -> tensor<2x8x32xf32>
// CHECK: %[[Y:.*]] = arith.addf %[[X]], %[[S]] : tensor<2x8x32xf32>
// CHECK: return %[[Y]]
func.func @full_capacity_depth(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>, %w: tensor<32x32xf32>, %wi: tensor<2x32x128xf32>,
    %wo: tensor<2x64x32xf32>) -> tensor<2x8x32xf32> {
  %idx, %gate = moma.depth_route %x, %r {capacity_factor = 1.0 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  %y = moma.depth_region %x, %m, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>, tensor<2x8xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x8xi32>, %ps: tensor<2x8xi32>):
    %a = moma.attention %xs, %w, %w, %w, %w positions %ps heads 4 kv_heads 4 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
    %f = moma.ffn swiglu %a, %wi, %wo modality %ms : (tensor<2x8x32xf32>, tensor<2x32x128xf32>, tensor<2x64x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
    moma.yield %f : tensor<2x8x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// Ungated: the block output itself.
// CHECK-LABEL: func.func @full_capacity_ungated
// CHECK-NOT: moma.depth_region
// CHECK: %[[A:.*]] = moma.attention %arg0
// CHECK-NEXT: return %[[A]]
func.func @full_capacity_ungated(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>, %w: tensor<32x32xf32>) -> tensor<2x8x32xf32> {
  %idx, %gate = moma.depth_route %x, %r {capacity_factor = 1.0 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  %y = moma.depth_region %x, %m, %idx : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x8xi32>, %ps: tensor<2x8xi32>):
    %a = moma.attention %xs, %w, %w, %w, %w heads 4 kv_heads 4 head_dim 8 : (tensor<2x8x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>) -> tensor<2x8x32xf32>
    moma.yield %a : tensor<2x8x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// A real subset (25%) keeps its region.
// CHECK-LABEL: func.func @partial_depth_stays
// CHECK: moma.depth_region
func.func @partial_depth_stays(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>) -> tensor<2x8x32xf32> {
  %idx, %gate = moma.depth_route %x, %r {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  %y = moma.depth_region %x, %m, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x2xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    moma.yield %xs : tensor<2x2x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// Auxiliary-router selection is data dependent even with K = L.
// CHECK-LABEL: func.func @aux_depth_stays
// CHECK: moma.depth_region
func.func @aux_depth_stays(%x: tensor<2x8x32xf32>, %m: tensor<2x8xi32>,
    %r: tensor<32x1xf32>, %a: tensor<2x8x1xf32>) -> tensor<2x8x32xf32> {
  %idx, %gate = moma.depth_route %x, %r aux %a {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8x1xf32>) -> (tensor<2x8xi32>, tensor<2x8xf32>)
  %y = moma.depth_region %x, %m, %idx gate %gate : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x8xi32>, tensor<2x8xf32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x8x32xf32>, %ms: tensor<2x8xi32>, %ps: tensor<2x8xi32>):
    moma.yield %xs : tensor<2x8x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}

// Positions 0..L-1 are the default and are dropped; others are kept.
// CHECK-LABEL: func.func @default_positions
// CHECK: moma.attention %arg0, %arg1, %arg1, %arg1, %arg1 heads
// CHECK: moma.attention %arg0, %arg1, %arg1, %arg1, %arg1 positions %{{.*}} heads
func.func @default_positions(%x: tensor<1x4x32xf32>, %w: tensor<32x32xf32>) -> (tensor<1x4x32xf32>, tensor<1x4x32xf32>) {
  %iota = arith.constant dense<[[0, 1, 2, 3]]> : tensor<1x4xi32>
  %other = arith.constant dense<[[0, 2, 4, 6]]> : tensor<1x4xi32>
  %0 = moma.attention %x, %w, %w, %w, %w positions %iota heads 4 kv_heads 4 head_dim 8 : (tensor<1x4x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<1x4xi32>) -> tensor<1x4x32xf32>
  %1 = moma.attention %x, %w, %w, %w, %w positions %other heads 4 kv_heads 4 head_dim 8 : (tensor<1x4x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<32x32xf32>, tensor<1x4xi32>) -> tensor<1x4x32xf32>
  return %0, %1 : tensor<1x4x32xf32>, tensor<1x4x32xf32>
}
}
