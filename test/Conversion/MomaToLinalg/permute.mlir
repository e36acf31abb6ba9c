// The token-order ops and the `positions` operands of the selections lower
// to plain linalg: modality_sort is two O(L^2) generics per row (the stable
// rank, which is `inverse`, then `order` as a sum over the positions of
// that rank: no scatter), permute a gather; the tie parts of depth_route's
// and expert choice's selection keys and depth region's body positions
// read `positions`.
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

// depth_route: equal scores go to the lower positions[b, l] instead of the
// lower l: the tie part of a selection key is the stable rank of
// positions[b, l] in its row (buildStableRanks: j counts when
// positions[b, j] < positions[b, l], or equal and j < l), in [0, L) like
// l, so the keys keep their width (35 bits, i64); the region's body
// positions are positions[b, idx].
// CHECK-LABEL: func.func @depth
// CHECK-SAME:    (%{{.*}}: tensor<2x8x32xf32>, %{{.*}}: tensor<32x1xf32>, %{{.*}}: tensor<2x8xi32>, %[[P:.*]]: tensor<2x8xi32>)
// CHECK:         %[[R:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xf32>)
// CHECK:         %[[RANK:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[P]], %[[P]] : tensor<2x8xi32>, tensor<2x8xi32>)
// CHECK:         ^bb0(%[[PSELF:.*]]: i32, %[[POTHER:.*]]: i32, %{{.*}}: i32):
// CHECK:           arith.cmpi slt, %[[POTHER]], %[[PSELF]] : i32
// CHECK:           arith.cmpi eq, %[[POTHER]], %[[PSELF]] : i32
// CHECK:           %[[J:.*]] = linalg.index 2 : index
// CHECK:           %[[L:.*]] = linalg.index 1 : index
// CHECK:           arith.cmpi ult, %[[J]], %[[L]] : index
// CHECK:         linalg.generic {{.*}} ins(%[[R]], %[[RANK]] : tensor<2x8xf32>, tensor<2x8xi32>) outs(%{{.*}} : tensor<2x8xi64>)
// CHECK:         ^bb0(%{{.*}}: f32, %[[TIE:.*]]: i32, %{{.*}}: i64):
// CHECK:           %[[TIEINDEX:.*]] = arith.index_cast %[[TIE]] : i32 to index
// CHECK:           arith.subi %c7, %[[TIEINDEX]] : index
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

// Expert choice with positions: the tie part of token t = (b, l) is
// b * L + the stable rank of positions[b, l] in its row, in [0, B * L) like
// t (the keys stay 33-bit i64s): the keys' generic reads it where it read t.
// CHECK-LABEL: func.func @expert_choice
// CHECK-SAME:    %[[P:[a-z0-9]+]]: tensor<2x8xi32>)
// CHECK:         %[[BASE:.*]] = linalg.generic {{.*}} outs(%{{.*}} : tensor<2x8xi32>)
// CHECK:           %[[B:.*]] = linalg.index 0 : index
// CHECK:           arith.muli %[[B]], %c8 : index
// CHECK:         %[[RANK:.*]] = linalg.generic {{.*}}iterator_types = ["parallel", "parallel", "reduction"]{{.*}} ins(%[[P]], %[[P]] : tensor<2x8xi32>, tensor<2x8xi32>) outs(%[[BASE]] : tensor<2x8xi32>)
// CHECK:         %[[TIES:.*]] = tensor.collapse_shape %[[RANK]] {{\[\[}}0, 1]] : tensor<2x8xi32> into tensor<16xi32>
// CHECK:         linalg.generic {{.*}} outs(%{{.*}} : tensor<4x16xi64>)
// CHECK:           %[[T:.*]] = linalg.index 1 : index
// CHECK:           %[[TIE:.*]] = tensor.extract %[[TIES]][%[[T]]] : tensor<16xi32>
// CHECK:           %[[TIEINDEX:.*]] = arith.index_cast %[[TIE]] : i32 to index
// CHECK:           arith.subi %c15, %[[TIEINDEX]] : index
module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {
func.func @expert_choice(%l: tensor<2x8x2xf32>, %m: tensor<2x8xi32>, %p: tensor<2x8xi32>) -> tensor<16xi32> {
  %t, %g, %o = moma.route %l, %m positions %p groups [#moma.expert_group<modality = 0, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>, #moma.expert_group<modality = 1, experts = 2, expert_choice(capacity = 1.0), score = sigmoid>] : (tensor<2x8x2xf32>, tensor<2x8xi32>, tensor<2x8xi32>) -> (tensor<16xi32>, tensor<16xf32>, tensor<5xi32>)
  return %t : tensor<16xi32>
}
}
