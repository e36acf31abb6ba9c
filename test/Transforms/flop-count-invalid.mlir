// Experts whose plan cannot be traced to a route cannot be attributed.
// RUN: moma-opt %s --moma-flop-count -o /dev/null --verify-diagnostics

func.func @untraceable(%xs: tensor<4x8xf32>, %off: tensor<3xi32>,
    %wi: tensor<2x8x16xf32>, %wo: tensor<2x16x8xf32>) -> tensor<4x8xf32> {
  // expected-error @+1 {{cannot attribute expert FLOPs to modalities: 'expert_offsets' does not come from a moma.route}}
  %ys = moma.experts gelu %xs, %off, %wi, %wo : (tensor<4x8xf32>, tensor<3xi32>, tensor<2x8x16xf32>, tensor<2x16x8xf32>) -> tensor<4x8xf32>
  return %ys : tensor<4x8xf32>
}
