// The token-order ops and the `positions` operands of the selections lower
// to plain linalg: modality_sort is two O(L^2) generics per row (the stable
// rank, which is `inverse`, then `order` as a sum over the positions of
// that rank: no scatter), permute a gather; depth_route's ranks, depth
// region's body positions and expert choice's ties read `positions`.
// RUN: moma-opt %s -split-input-file --convert-moma-to-linalg | FileCheck %s

// CHECK-LABEL: func.func @sort
// CHECK-SAME:    (%[[M:.*]]: tensor<2x8xi32>, %[[X:.*]]: tensor<2x8x32xf32>)
// CHECK-NOT:     moma.
// inverse[b, l]: positions j of a lower id, or the same id and j < l.
// CHECK:         %[[INV:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[M]], %[[M]] : {{.*}}) outs
// CHECK:           %[[LOWER:.*]] = arith.cmpi slt, %{{.*}}, %{{.*}} : i32
// CHECK:           %[[SAME:.*]] = arith.cmpi eq
// CHECK:           %[[J:.*]] = linalg.index 2
// CHECK:           %[[L:.*]] = linalg.index 1
// CHECK:           %[[BEFORE:.*]] = arith.cmpi ult, %[[J]], %[[L]] : index
// order[b, k] = sum over j of (inverse[b, j] == k ? j : 0).
// CHECK:         %[[ORDER:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[INV]] : tensor<2x8xi32>)
// CHECK:           arith.cmpi eq
// CHECK:           arith.select
// The gather: x[b, order[b, k], d], 0 outside [0, L).
// CHECK:         %[[Y:.*]] = linalg.generic {{.*}} ins(%[[ORDER]] : tensor<2x8xi32>) outs(%{{.*}} : tensor<2x8x32xf32>)
// CHECK:           tensor.extract %[[X]][%{{.*}}, %{{.*}}, %{{.*}}] : tensor<2x8x32xf32>
// CHECK:         return %[[INV]], %[[Y]]
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @sort(%m: tensor<2x8xi32>, %x: tensor<2x8x32xf32>) -> (tensor<2x8xi32>, tensor<2x8x32xf32>) {
  %o, %i = moma.modality_sort %m : tensor<2x8xi32>
  %y = moma.permute %x, %o : (tensor<2x8x32xf32>, tensor<2x8xi32>) -> tensor<2x8x32xf32>
  return %i, %y : tensor<2x8xi32>, tensor<2x8x32xf32>
}
}

// -----

// depth_route: equal scores rank by positions[b, j] < positions[b, l]
// instead of j < l; the region's body positions are positions[b, idx].
// CHECK-LABEL: func.func @depth
// CHECK-SAME:    (%{{.*}}: tensor<2x8x32xf32>, %{{.*}}: tensor<32x1xf32>, %{{.*}}: tensor<2x8xi32>, %[[P:.*]]: tensor<2x8xi32>)
// CHECK:         linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[R:.*]], %[[R]], %[[P]], %[[P]] :
// CHECK:         ^bb0(%[[SELF:.*]]: f32, %[[OTHER:.*]]: f32, %[[PSELF:.*]]: i32, %[[POTHER:.*]]: i32, %{{.*}}: i32):
// CHECK:           arith.cmpf ogt, %[[OTHER]], %[[SELF]]
// CHECK:           arith.cmpf oeq, %[[OTHER]], %[[SELF]]
// CHECK:           arith.cmpi slt, %[[POTHER]], %[[PSELF]] : i32
// Body positions: positions[b, idx[b, k]] (-1 for empty slots).
// CHECK:         linalg.generic
// CHECK:           %[[PV:.*]] = tensor.extract %[[P]][%{{.*}}, %{{.*}}] : tensor<2x8xi32>
// CHECK:           arith.select %{{.*}}, %[[PV]], %{{.*}} : i32
// CHECK:         arith.sitofp
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @depth(%x: tensor<2x8x32xf32>, %w: tensor<32x1xf32>, %m: tensor<2x8xi32>, %p: tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  %idx, %g = moma.depth_route %x, %w positions %p {capacity_factor = 0.25 : f64} : (tensor<2x8x32xf32>, tensor<32x1xf32>, tensor<2x8xi32>) -> (tensor<2x2xi32>, tensor<2x2xf32>)
  %y = moma.depth_region %x, %m, %idx positions %p : (tensor<2x8x32xf32>, tensor<2x8xi32>, tensor<2x2xi32>, tensor<2x8xi32>) -> tensor<2x8x32xf32> {
  ^bb0(%xs: tensor<2x2x32xf32>, %ms: tensor<2x2xi32>, %ps: tensor<2x2xi32>):
    %s = arith.sitofp %ps : tensor<2x2xi32> to tensor<2x2xf32>
    %z = moma.scale %xs, %s : (tensor<2x2x32xf32>, tensor<2x2xf32>) -> tensor<2x2x32xf32>
    moma.yield %z : tensor<2x2x32xf32>
  }
  return %y : tensor<2x8x32xf32>
}
}

// -----

// Expert choice with positions: tie keys b * 2^32 + positions[b, l] (i64),
// and an equal score wins the selection round when its key is lower.
// CHECK-LABEL: func.func @expert_choice
// CHECK:         %[[KEYS:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<16xi64>)
// CHECK:           arith.divui
// CHECK:           arith.shli
// CHECK:           arith.extsi %{{.*}} : i32 to i64
// CHECK:         scf.for
// CHECK:           arith.cmpf oeq
// CHECK:           tensor.extract %[[KEYS]]
// CHECK:           tensor.extract %[[KEYS]]
// CHECK:           arith.cmpi slt, %{{.*}}, %{{.*}} : i64
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @expert_choice(%l: tensor<2x8x2xf32>, %m: tensor<2x8xi32>, %p: tensor<2x8xi32>) -> tensor<16xi32> {
  %t, %g, %o = moma.route %l, %m positions %p groups [#moma.expert_group<modality = 0, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x2xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return %t : tensor<16xi32>
}
}
