// moma-strip-attributes drops the module's modalities and the names on
// function arguments and results, and nothing else.
// RUN: moma-opt %s --moma-strip-attributes | FileCheck %s

// CHECK: module attributes {test.keep = 1 : i64} {
// CHECK-NOT: moma.
// CHECK: func.func @f(%{{.*}}: tensor<4xf32> {test.arg}, %{{.*}}: tensor<4xf32>) -> tensor<4xf32>
// CHECK: llvm.func @g(!llvm.ptr)
module attributes {test.keep = 1 : i64, moma.modalities = [#moma.modality<0, "text", tokens = 0 to 4>]} {
  func.func @f(%a: tensor<4xf32> {moma.input = "ids", test.arg}, %w: tensor<4xf32> {moma.weight = "w"}) -> (tensor<4xf32> {moma.output = "y"}) {
    return %w : tensor<4xf32>
  }
  llvm.func @g(!llvm.ptr {moma.output = "z"})
}
