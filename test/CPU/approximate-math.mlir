// RUN: moma-opt %s --moma-cpu-approximate-math | FileCheck %s

// f32 exp and erf, scalar and vector, become arithmetic (no libm call is
// left for LLVM to emit per element); f64 and other functions stay.
// CHECK-LABEL: func.func @approximated
// CHECK-NOT:     math.exp
// CHECK-NOT:     math.erf
// CHECK:         math.fma {{.*}} : vector<8xf32>
// CHECK:         math.fma {{.*}} : f32
// CHECK:         return
func.func @approximated(%x: vector<8xf32>, %y: f32) -> (vector<8xf32>, f32) {
  %a = math.exp %x : vector<8xf32>
  %b = math.erf %y : f32
  return %a, %b : vector<8xf32>, f32
}

// CHECK-LABEL: func.func @kept
// CHECK:         math.exp {{.*}} : f64
// CHECK:         math.log {{.*}} : f32
func.func @kept(%x: f64, %y: f32) -> (f64, f32) {
  %a = math.exp %x : f64
  %b = math.log %y : f32
  return %a, %b : f64, f32
}
