// RUN: moma-opt %s --moma-to-cpu --mlir-disable-threading \
// RUN:   --mlir-print-ir-after=moma-cpu-limit-parallelism -o /dev/null 2>&1 \
// RUN:   | FileCheck %s

// The routing selections keep their threads on the CPU (issue 9): expert
// choice's threshold search is one top-level scf.parallel over the 8
// experts, each running its 32 + 9 key-bit passes over the 512 tokens in
// sequence; token choice's ranks are one top-level scf.parallel over
// (tokens, experts) with the rival experts in sequence. Neither is nested
// in a sequential loop over experts or capacity rounds. Each is a kernel
// function of its own (moma-cpu-outline-kernels), printed after its caller
// (threading off keeps the functions in order).

#ec_text = #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#ec_image = #moma.expert_group<modality = 1, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
#tc_text = #moma.expert_group<modality = 0, experts = 8, token_choice(top_k = 2), score = softmax>

module attributes {moma.modalities = [
    #moma.modality<0, "text", tokens = 0 to 96>,
    #moma.modality<1, "image", tokens = 96 to 128>]} {

// CHECK-LABEL: func.func @expert_choice(
// CHECK:       %[[KEYS:.*]] = memref.alloc() {{.*}} : memref<8x512xi64>
// CHECK-NEXT:  call @[[FILL:expert_choice.kernel[0-9]+]]({{.*}}%[[KEYS]]
// CHECK:       %[[THRESHOLDS:.*]] = memref.alloc() {{.*}} : memref<8xi64>
// CHECK-NEXT:  call @[[SEARCH:expert_choice.kernel[0-9]+]](%[[THRESHOLDS]],
// CHECK:       func.func private @[[FILL]](
// CHECK-NOT:   scf.for
// CHECK:       scf.parallel (%{{.*}}, %{{.*}}) = (%c0, %c0) to (%c8, %c512)
// CHECK:       func.func private @[[SEARCH]](
// CHECK-NOT:   scf.for
// CHECK:       scf.parallel (%{{.*}}) = (%c0) to (%c8)
// CHECK-NOT:     scf.parallel
// CHECK:         scf.for %{{.*}} = %c0 to %c41 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK:           scf.for %{{.*}} = %c0 to %c512 step %c1 iter_args(%{{.*}} = %c0_i64) -> (i64)
// CHECK:             memref.load %{{.*}} : memref<8x512xi64>
// CHECK:             arith.cmpi uge
// CHECK:       return
func.func @expert_choice(%logits: tensor<2x256x4xf32>, %mod: tensor<2x256xi32>)
    -> (tensor<512xi32>, tensor<512xf32>, tensor<9xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#ec_text, #ec_image] : (tensor<2x256x4xf32>, tensor<2x256xi32>) -> (tensor<512xi32>, tensor<512xf32>, tensor<9xi32>)
  return %tok, %gate, %off : tensor<512xi32>, tensor<512xf32>, tensor<9xi32>
}

// CHECK-LABEL: func.func @token_choice(
// CHECK:       %[[RANKS:.*]] = memref.alloc() {{.*}} : memref<512x8xi32>
// CHECK-NEXT:  call @{{.*}}(%[[RANKS]])
// CHECK-NEXT:  call @[[RANK:token_choice.kernel[0-9]+]]({{.*}}%[[RANKS]])
// CHECK:       func.func private @[[RANK]](
// CHECK-NOT:   scf.for
// CHECK:       scf.parallel (%{{.*}}, %{{.*}}) = (%c0, %c0) to (%c512, %c8)
// CHECK-NEXT:    scf.for %{{.*}} = %c0 to %c8 step %c1
// CHECK:           arith.cmpf ogt
// CHECK:       return
func.func @token_choice(%logits: tensor<2x256x8xf32>, %mod: tensor<2x256xi32>)
    -> (tensor<1024xi32>, tensor<1024xf32>, tensor<9xi32>) {
  %tok, %gate, %off = moma.route %logits, %mod groups [#tc_text] : (tensor<2x256x8xf32>, tensor<2x256xi32>) -> (tensor<1024xi32>, tensor<1024xf32>, tensor<9xi32>)
  return %tok, %gate, %off : tensor<1024xi32>, tensor<1024xf32>, tensor<9xi32>
}
}
