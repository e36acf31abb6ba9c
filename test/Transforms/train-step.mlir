// moma-train-step: a gradients function (moma-autodiff's results grad:NAME)
// becomes one optimizer step. With accumulation-steps=2: the inputs hold
// two micro-batches stacked along the first dimension and the body runs on
// row slices of them; losses and gradients are summed and scaled by 1/2;
// logits (float, rank 2) are dropped, an integer result keeps the last
// micro-batch's value; a `step` input and the AdamW moments (moma.state)
// are added; one moma.adamw with the configuration's attributes, a weight
// decay per weight (0 for a norm weight and a bias), and its results
// returned as moma.updates after grad_norm, lr and every route's
// expert_offsets:LAYER.
// RUN: moma-opt %s --split-input-file --moma-train-step="lr=0.01 beta1=0.8 beta2=0.95 eps=1e-6 weight-decay=0.1 warmup-steps=10 total-steps=100 decay=cosine final-lr-ratio=0.1 clip-grad-norm=1.0 accumulation-steps=2" | FileCheck %s
// RUN: moma-opt %s --split-input-file --moma-train-step="lr=0.5 total-steps=7 decay-norms-and-biases=true" | FileCheck %s --check-prefix=ONE

#text = #moma.expert_group<modality = 0, experts = 4, token_choice(top_k = 1), score = softmax>
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 32>,
    #moma.modality<1, "image", tokens = 32 to 64>]} {
func.func @forward(%ids: tensor<2x4xi32> {moma.input = "ids"},
    %x: tensor<2x4x8xf32> {moma.input = "x"},
    %w: tensor<8x4xf32> {moma.weight = "layers.3.moe.router"},
    %n: tensor<8xf32> {moma.weight = "layers.3.attn_norm.weight"},
    %b: tensor<8xf32> {moma.weight = "head.bias"})
    -> (tensor<f32> {moma.output = "total"},
        tensor<2xf32> {moma.output = "ce_per_modality"},
        tensor<2x4x8xf32> {moma.output = "logits"},
        tensor<2x4xi32> {moma.output = "last_ids"},
        tensor<8x4xf32> {moma.output = "grad:layers.3.moe.router"},
        tensor<8xf32> {moma.output = "grad:layers.3.attn_norm.weight"},
        tensor<8xf32> {moma.output = "grad:head.bias"}) {
  %l = moma.router %x, %ids weights(%w) groups [#text] : (tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<8x4xf32>) -> tensor<2x4x4xf32>
  %tok, %gate, %off = moma.route %l, %ids groups [#text] : (tensor<2x4x4xf32>, tensor<2x4xi32>) -> (tensor<8xi32>, tensor<8xf32>, tensor<5xi32>) loc("layers.3.moe.route")
  %total = arith.constant dense<1.0> : tensor<f32>
  %per = arith.constant dense<2.0> : tensor<2xf32>
  %g = arith.mulf %n, %b : tensor<8xf32>
  return %total, %per, %x, %ids, %w, %g, %b : tensor<f32>, tensor<2xf32>, tensor<2x4x8xf32>, tensor<2x4xi32>, tensor<8x4xf32>, tensor<8xf32>, tensor<8xf32>
}
}

// CHECK-LABEL: func.func @forward(
// CHECK-SAME: %[[IDS:[^:]+]]: tensor<4x4xi32> {moma.input = "ids"}, %[[X:[^:]+]]: tensor<4x4x8xf32> {moma.input = "x"},
// CHECK-SAME: %[[STEP:[^:]+]]: tensor<i64> {moma.input = "step"},
// CHECK-SAME: %[[W:[^:]+]]: tensor<8x4xf32> {moma.weight = "layers.3.moe.router"}, %[[N:[^:]+]]: tensor<8xf32> {moma.weight = "layers.3.attn_norm.weight"}, %[[B:[^:]+]]: tensor<8xf32> {moma.weight = "head.bias"},
// CHECK-SAME: %[[MW:[^:]+]]: tensor<8x4xf32> {moma.state = "adam.m:layers.3.moe.router"}, %[[MN:[^:]+]]: tensor<8xf32> {moma.state = "adam.m:layers.3.attn_norm.weight"}, %[[MB:[^:]+]]: tensor<8xf32> {moma.state = "adam.m:head.bias"},
// CHECK-SAME: %[[VW:[^:]+]]: tensor<8x4xf32> {moma.state = "adam.v:layers.3.moe.router"}, %[[VN:[^:]+]]: tensor<8xf32> {moma.state = "adam.v:layers.3.attn_norm.weight"}, %[[VB:[^:]+]]: tensor<8xf32> {moma.state = "adam.v:head.bias"})
// CHECK-SAME: -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "ce_per_modality"}, tensor<2x4xi32> {moma.output = "last_ids"},
// CHECK-SAME: tensor<8x4xf32> {moma.output = "grad:layers.3.moe.router"}, tensor<8xf32> {moma.output = "grad:layers.3.attn_norm.weight"}, tensor<8xf32> {moma.output = "grad:head.bias"},
// CHECK-SAME: tensor<f32> {moma.output = "grad_norm"}, tensor<f32> {moma.output = "lr"}, tensor<5xi32> {moma.output = "expert_offsets:layers.3.moe"},
// CHECK-SAME: tensor<8x4xf32> {moma.updates = "layers.3.moe.router"}, tensor<8xf32> {moma.updates = "layers.3.attn_norm.weight"}, tensor<8xf32> {moma.updates = "head.bias"},
// CHECK-SAME: tensor<8x4xf32> {moma.updates = "adam.m:layers.3.moe.router"}, tensor<8xf32> {moma.updates = "adam.m:layers.3.attn_norm.weight"}, tensor<8xf32> {moma.updates = "adam.m:head.bias"},
// CHECK-SAME: tensor<8x4xf32> {moma.updates = "adam.v:layers.3.moe.router"}, tensor<8xf32> {moma.updates = "adam.v:layers.3.attn_norm.weight"}, tensor<8xf32> {moma.updates = "adam.v:head.bias"})
// Micro-batch 0: rows [0, 2).
// CHECK: %[[IDS0:.*]] = tensor.extract_slice %[[IDS]][0, 0] [2, 4] [1, 1] : tensor<4x4xi32> to tensor<2x4xi32>
// CHECK: %[[X0:.*]] = tensor.extract_slice %[[X]][0, 0, 0] [2, 4, 8] [1, 1, 1] : tensor<4x4x8xf32> to tensor<2x4x8xf32>
// CHECK: moma.router %[[X0]], %[[IDS0]] weights(%[[W]])
// CHECK: moma.route
// CHECK: %[[T0:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[P0:.*]] = arith.constant dense<2.000000e+00> : tensor<2xf32>
// CHECK: %[[G0:.*]] = arith.mulf %[[N]], %[[B]]
// Micro-batch 1: rows [2, 4).
// CHECK: %[[IDS1:.*]] = tensor.extract_slice %[[IDS]][2, 0] [2, 4] [1, 1]
// CHECK: %[[X1:.*]] = tensor.extract_slice %[[X]][2, 0, 0] [2, 4, 8] [1, 1, 1]
// CHECK: moma.router %[[X1]], %[[IDS1]] weights(%[[W]])
// CHECK: %{{.*}}, %{{.*}}, %[[OFF1:.*]] = moma.route
// CHECK: %[[T1:.*]] = arith.constant dense<1.000000e+00> : tensor<f32>
// CHECK: %[[P1:.*]] = arith.constant dense<2.000000e+00> : tensor<2xf32>
// CHECK: %[[G1:.*]] = arith.mulf %[[N]], %[[B]]
// The sums, then the means: gradients first (moma.adamw's operands).
// CHECK: %[[TS:.*]] = arith.addf %[[T0]], %[[T1]] : tensor<f32>
// CHECK: %[[PS:.*]] = arith.addf %[[P0]], %[[P1]] : tensor<2xf32>
// CHECK: %[[GWS:.*]] = arith.addf %[[W]], %[[W]] : tensor<8x4xf32>
// CHECK: %[[GNS:.*]] = arith.addf %[[G0]], %[[G1]] : tensor<8xf32>
// CHECK: %[[GBS:.*]] = arith.addf %[[B]], %[[B]] : tensor<8xf32>
// CHECK: %[[H1:.*]] = arith.constant dense<5.000000e-01> : tensor<8x4xf32>
// CHECK: %[[GW:.*]] = arith.mulf %[[GWS]], %[[H1]]
// CHECK: %[[H2:.*]] = arith.constant dense<5.000000e-01> : tensor<8xf32>
// CHECK: %[[GN:.*]] = arith.mulf %[[GNS]], %[[H2]]
// CHECK: %[[H3:.*]] = arith.constant dense<5.000000e-01> : tensor<8xf32>
// CHECK: %[[GB:.*]] = arith.mulf %[[GBS]], %[[H3]]
// CHECK: %[[NW:.*]]:3, %[[NM:.*]]:3, %[[NV:.*]]:3, %[[NORM:.*]], %[[LR:.*]] = moma.adamw step %[[STEP]]
// CHECK-SAME: weights(%[[W]], %[[N]], %[[B]]) grads(%[[GW]], %[[GN]], %[[GB]]) exp_avg(%[[MW]], %[[MN]], %[[MB]]) exp_avg_sq(%[[VW]], %[[VN]], %[[VB]])
// CHECK-SAME: {beta1 = 8.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, decay = "cosine", eps = 9.9999999999999995E-7 : f64, final_lr_ratio = 1.000000e-01 : f64, lr = 1.000000e-02 : f64, max_grad_norm = 1.000000e+00 : f64, total_steps = 100 : i64, warmup_steps = 10 : i64, weight_decay = array<f64: 1.000000e-01, 0.000000e+00, 0.000000e+00>}
// CHECK: %[[H4:.*]] = arith.constant dense<5.000000e-01> : tensor<f32>
// CHECK: %[[TOTAL:.*]] = arith.mulf %[[TS]], %[[H4]] : tensor<f32>
// CHECK: %[[H5:.*]] = arith.constant dense<5.000000e-01> : tensor<2xf32>
// CHECK: %[[PER:.*]] = arith.mulf %[[PS]], %[[H5]] : tensor<2xf32>
// CHECK: return %[[TOTAL]], %[[PER]], %[[IDS1]], %[[GW]], %[[GN]], %[[GB]], %[[NORM]], %[[LR]], %[[OFF1]], %[[NW]]#0, %[[NW]]#1, %[[NW]]#2, %[[NM]]#0, %[[NM]]#1, %[[NM]]#2, %[[NV]]#0, %[[NV]]#1, %[[NV]]#2 :

// One micro-batch (the default): no slices, no scaling; the schedule's
// defaults; with decay-norms-and-biases every weight is decayed (here by
// the default 0); no clipping attribute without clip-grad-norm.
// ONE-LABEL: func.func @forward(
// ONE-SAME: tensor<2x4xi32> {moma.input = "ids"}, %{{[^:]+}}: tensor<2x4x8xf32> {moma.input = "x"}, %{{[^:]+}}: tensor<i64> {moma.input = "step"}
// ONE-NOT: tensor.extract_slice
// ONE-NOT: arith.addf
// ONE-NOT: arith.mulf {{.*}}dense<5.0
// ONE: moma.adamw
// ONE-SAME: {beta1 = 9.000000e-01 : f64, beta2 = 0.99899999999999999 : f64, decay = "linear", eps = 1.000000e-08 : f64, final_lr_ratio = 0.000000e+00 : f64, lr = 5.000000e-01 : f64, total_steps = 7 : i64, warmup_steps = 0 : i64, weight_decay = array<f64: 0.000000e+00, 0.000000e+00, 0.000000e+00>}

// -----

// Weight decay per weight, by name: `...norm.weight`, `...norm.bias` and
// `....bias` are not decayed unless decay-norms-and-biases (as the
// reference's is_norm_or_bias: a name without a dot is a norm's only if it
// is `bias`).
func.func @forward(%x: tensor<2xf32> {moma.input = "x"},
    %a: tensor<2xf32> {moma.weight = "final_norm.weight"},
    %b: tensor<2xf32> {moma.weight = "layers.0.ffn_norm.bias"},
    %c: tensor<2xf32> {moma.weight = "final_norm"},
    %f: tensor<2xf32> {moma.weight = "bias"},
    %d: tensor<2xf32> {moma.weight = "layers.0.normal.weight"},
    %e: tensor<2xf32> {moma.weight = "embed.weight"})
    -> (tensor<f32> {moma.output = "total"}, tensor<2xf32> {moma.output = "grad:final_norm.weight"},
        tensor<2xf32> {moma.output = "grad:layers.0.ffn_norm.bias"}, tensor<2xf32> {moma.output = "grad:final_norm"}, tensor<2xf32> {moma.output = "grad:bias"},
        tensor<2xf32> {moma.output = "grad:layers.0.normal.weight"}, tensor<2xf32> {moma.output = "grad:embed.weight"}) {
  %t = arith.constant dense<1.0> : tensor<f32>
  return %t, %x, %x, %x, %x, %x, %x : tensor<f32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>
}
// CHECK-LABEL: func.func @forward(
// CHECK: moma.adamw
// CHECK-SAME: weight_decay = array<f64: 0.000000e+00, 0.000000e+00, 1.000000e-01, 0.000000e+00, 1.000000e-01, 1.000000e-01>
// ONE-LABEL: func.func @forward(
// ONE: moma.adamw
// ONE-SAME: weight_decay = array<f64: 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00, 0.000000e+00>
