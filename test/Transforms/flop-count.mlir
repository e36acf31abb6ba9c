// FLOP and parameter accounting, checked against values computed by hand.
// RUN: moma-opt %s --moma-flop-count -o /dev/null | FileCheck %s
// RUN: moma-opt %s --moma-flop-count=output=%t.txt -o /dev/null
// RUN: FileCheck %s < %t.txt

#text = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
#image = #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 32>,
    #moma.modality<1, "image", tokens = 32 to 64>]} {

// D = 16, L = 8, MoD keeps K = 4 of 8 (fraction 1/2).
//   norm (rms, untied):      4 D                               =   64
//   depth_route:             2 D                               =   32 (dense: 0)
//   attention projections:   2 D d (2H + 2G) = 2*16*8*6 = 1536, x 1/2 = 768 (dense 1536)
//   attention scores:        4 H d (K+1)/2 = 4*2*8*2.5 = 160,   x 1/2 =  80
//                            dense: 4 H d (L+1)/2 = 4*2*8*4.5          = 288
//   head:                    2 D V = 2*16*64                   = 2048
//   forward 2992, dense 3936, ratio 0.7602, training 3 x 2992 = 8976
//   params: embedding 64*16 = 1024; norm 2*16; router 16; attention
//   256+128+128+256 = 768; head 1024: total 2864, non-embedding 1840;
//   active per token 16 + 16 + 768/2 + 1024 = 1440.
// CHECK-LABEL: flops @mod_block
// CHECK-NEXT: text image
// CHECK-NEXT: attention projections 768 768
// CHECK-NEXT: attention scores 80 80
// CHECK-NEXT: routers 32 32
// CHECK-NEXT: norms 64 64
// CHECK-NEXT: head 2048 2048
// CHECK-NEXT: forward total 2992 2992
// CHECK-NEXT: training (fwd + bwd = 3x fwd) 8976 8976
// CHECK-NEXT: dense baseline forward 3936 3936
// CHECK-NEXT: ratio to dense 0.7602 0.7602
// CHECK-NEXT: active params (non-embedding) 1440 1440
// CHECK-NEXT: total params: 2864 (embedding 1024, non-embedding 1840)
// CHECK-NEXT: params attention projections: 768
// CHECK-NEXT: params routers: 16
// CHECK-NEXT: params norms: 32
// CHECK-NEXT: params head: 1024
func.func @mod_block(%ids: tensor<1x8xi32>, %mod: tensor<1x8xi32>,
    %emb: tensor<64x16xf32>, %g: tensor<2x16xf32>, %r: tensor<16x1xf32>,
    %wq: tensor<16x16xf32>, %wk: tensor<16x8xf32>, %wv: tensor<16x8xf32>,
    %wo: tensor<16x16xf32>, %head: tensor<16x64xf32>, %t: tensor<1x8xi32>)
    -> tensor<f32> {
  %h = moma.embed %ids, %emb : (tensor<1x8xi32>, tensor<64x16xf32>) -> tensor<1x8x16xf32>
  %n = moma.norm rms %h, %g modality %mod : (tensor<1x8x16xf32>, tensor<2x16xf32>, tensor<1x8xi32>) -> tensor<1x8x16xf32>
  %idx, %gate = moma.depth_route %n, %r {capacity_factor = 0.5 : f64} : (tensor<1x8x16xf32>, tensor<16x1xf32>) -> (tensor<1x4xi32>, tensor<1x4xf32>)
  %y = moma.depth_region %n, %mod, %idx gate %gate : (tensor<1x8x16xf32>, tensor<1x8xi32>, tensor<1x4xi32>, tensor<1x4xf32>) -> tensor<1x8x16xf32> {
  ^bb0(%xs: tensor<1x4x16xf32>, %ms: tensor<1x4xi32>, %ps: tensor<1x4xi32>):
    %a = moma.attention %xs, %wq, %wk, %wv, %wo positions %ps heads 2 kv_heads 1 head_dim 8 : (tensor<1x4x16xf32>, tensor<16x16xf32>, tensor<16x8xf32>, tensor<16x8xf32>, tensor<16x16xf32>, tensor<1x4xi32>) -> tensor<1x4x16xf32>
    moma.yield %a : tensor<1x4x16xf32>
  }
  %logits = moma.linear %y, %head : (tensor<1x8x16xf32>, tensor<16x64xf32>) -> tensor<1x8x64xf32>
  %per, %all = moma.cross_entropy %logits, %t, %mod : (tensor<1x8x64xf32>, tensor<1x8xi32>, tensor<1x8xi32>) -> (tensor<2xf32>, tensor<f32>)
  return %all : tensor<f32>
}

// Text: 4 experts, top-2; image: 2 experts, expert-choice capacity 1.
// GELU experts D = 16, F = 32: one slot 4 D F = 2048.
//   text:  router 2*16*4 = 128, experts 2 slots = 4096: 4224, ratio 2.0625
//   image: router 2*16*2 =  64, experts 1 slot  = 2048: 2112, ratio 1.03125
//   params: experts 6 x (16*32 + 32*16) = 6144, routers 64 + 32: 6240;
//   active: text 2*1024 + 64 = 2112, image 1024 + 32 = 1056.
// CHECK-LABEL: flops @modality_groups
// CHECK-NEXT: text image
// CHECK-NEXT: routers 128 64
// CHECK-NEXT: experts 4096 2048
// CHECK-NEXT: forward total 4224 2112
// CHECK-NEXT: training (fwd + bwd = 3x fwd) 12672 6336
// CHECK-NEXT: dense baseline forward 2048 2048
// CHECK-NEXT: ratio to dense 2.0625 1.031{{[23]}}
// CHECK-NEXT: active params (non-embedding) 2112 1056
// CHECK-NEXT: total params: 6240 (embedding 0, non-embedding 6240)
// CHECK-NEXT: params routers: 96
// CHECK-NEXT: params experts: 6144
func.func @modality_groups(%x: tensor<1x8x16xf32>, %mod: tensor<1x8xi32>,
    %rt: tensor<16x4xf32>, %ri: tensor<16x2xf32>, %wi: tensor<6x16x32xf32>,
    %wo: tensor<6x32x16xf32>) -> tensor<1x8x16xf32> {
  %l = moma.router %x, %mod weights(%rt, %ri) groups [#text, #image] : (tensor<1x8x16xf32>, tensor<1x8xi32>, tensor<16x4xf32>, tensor<16x2xf32>) -> tensor<1x8x4xf32>
  %tok, %gate, %off = moma.route %l, %mod groups [#text, #image] : (tensor<1x8x4xf32>, tensor<1x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<7xi32>)
  %xs = moma.dispatch %x, %tok : (tensor<1x8x16xf32>, tensor<16xi32>) -> tensor<16x16xf32>
  %ys = moma.experts gelu %xs, %off, %wi, %wo : (tensor<16x16xf32>, tensor<7xi32>, tensor<6x16x32xf32>, tensor<6x32x16xf32>) -> tensor<16x16xf32>
  %y = moma.combine %ys, %tok, %gate residual %x : (tensor<16x16xf32>, tensor<16xi32>, tensor<16xf32>, tensor<1x8x16xf32>) -> tensor<1x8x16xf32>
  return %y : tensor<1x8x16xf32>
}
}
