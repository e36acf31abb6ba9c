// moma.experts_grad lowers to linalg generics over the slots, each slot's
// expert from the offsets selecting that expert's weights per row (as in the
// forward), and weight gradients that sum every expert's slots; no moma op
// remains.
// RUN: moma-opt %s --convert-moma-to-linalg | FileCheck %s

// SwiGLU without LoRA: the slot experts (-1 outside [off[0], off[E])), the
// recomputed u = x w_in[e] and h = silu(gate) * up, dw_out summed over each
// expert's slots, dh = dy w_out[e]^T, du = [dh up silu'(gate) | dh
// silu(gate)], dw_in, and dtokens = du w_in[e]^T zeroed on slots without an
// expert.
// CHECK-LABEL: func.func @swiglu
// CHECK-NOT: {{= moma\.}}
// CHECK: %[[COUNT:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "reduction"]} ins(%arg1 : tensor<5xi32>) outs(%{{.*}} : tensor<10xi32>)
// CHECK: %[[EXP:.*]] = linalg.generic {{.*}} ins(%[[COUNT]] : tensor<10xi32>) outs(%{{.*}} : tensor<10xi32>)
// CHECK: arith.select %{{.*}}, %{{.*}}, %c-1_i32 : i32
// CHECK: %[[U:.*]] = linalg.generic {{.*}} ins(%arg0, %[[EXP]] : tensor<10x8xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<10x12xf32>)
// CHECK: tensor.extract %arg2[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<4x8x12xf32>
// CHECK: %[[GATE:.*]] = tensor.extract_slice %[[U]][0, 0] [10, 6] [1, 1]
// CHECK: %[[UP:.*]] = tensor.extract_slice %[[U]][0, 6] [10, 6] [1, 1]
// CHECK: %[[H:.*]] = linalg.generic {{.*}} ins(%[[GATE]], %[[UP]] : tensor<10x6xf32>, tensor<10x6xf32>) outs(%{{.*}} : tensor<10x6xf32>)
// CHECK: %[[DH:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "reduction"]} ins(%arg4, %[[EXP]] : tensor<10x8xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<10x6xf32>)
// CHECK: tensor.extract %arg3[%{{.*}}, %{{.*}}, %{{.*}}] : tensor<4x6x8xf32>
// CHECK: %[[DWO:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} ins(%[[H]], %arg4, %[[EXP]] : tensor<10x6xf32>, tensor<10x8xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<4x6x8xf32>)
// CHECK: arith.cmpi eq
// CHECK: %[[DGATE:.*]] = linalg.generic {{.*}} ins(%[[DH]], %{{.*}}, %{{.*}} : tensor<10x6xf32>, tensor<10x6xf32>, tensor<10x6xf32>)
// CHECK: %[[DUP:.*]] = linalg.generic {{.*}} ins(%[[DH]], %{{.*}} : tensor<10x6xf32>, tensor<10x6xf32>)
// CHECK: %[[DU0:.*]] = tensor.insert_slice %[[DGATE]] into %{{.*}}[0, 0] [10, 6] [1, 1]
// CHECK: %[[DU:.*]] = tensor.insert_slice %[[DUP]] into %[[DU0]][0, 6] [10, 6] [1, 1]
// CHECK: %[[DX:.*]] = linalg.generic {{.*}} ins(%[[DU]], %[[EXP]] : tensor<10x12xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<10x8xf32>)
// CHECK: %[[DWI:.*]] = linalg.generic {{.*}} ins(%arg0, %[[DU]], %[[EXP]] : tensor<10x8xf32>, tensor<10x12xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<4x8x12xf32>)
// CHECK: %[[DXS:.*]] = linalg.generic {{.*}} ins(%[[DX]], %[[EXP]] : tensor<10x8xf32>, tensor<10xi32>) outs(%{{.*}} : tensor<10x8xf32>)
// CHECK: arith.cmpi sge
// CHECK: return %[[DXS]], %[[DWI]], %[[DWO]]
func.func @swiglu(%xs: tensor<10x8xf32>, %off: tensor<5xi32>,
    %wi: tensor<4x8x12xf32>, %wo: tensor<4x6x8xf32>, %dy: tensor<10x8xf32>)
    -> (tensor<10x8xf32>, tensor<4x8x12xf32>, tensor<4x6x8xf32>) {
  %dxs, %dwi, %dwo = moma.experts_grad swiglu %xs, %off, %wi, %wo, %dy
      : (tensor<10x8xf32>, tensor<5xi32>, tensor<4x8x12xf32>,
         tensor<4x6x8xf32>, tensor<10x8xf32>)
      -> (tensor<10x8xf32>, tensor<4x8x12xf32>, tensor<4x6x8xf32>)
  return %dxs, %dwi, %dwo : tensor<10x8xf32>, tensor<4x8x12xf32>, tensor<4x6x8xf32>
}

// GELU with LoRA in f64: gelu'(u) = Phi(u) + u phi(u), and the adapters'
// gradients scaled by lora_scale, in operand order (dA_in, dB_in, dA_out,
// dB_out).
// CHECK-LABEL: func.func @gelu_lora
// CHECK-NOT: {{= moma\.}}
// CHECK-DAG: %[[SCALE:[a-z0-9_]+]] = arith.constant 2.500000e-01 : f64
// CHECK: math.erf
// CHECK: math.exp
// CHECK: %[[SAI:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<4x8x2xf64>)
// CHECK: %[[DAI:.*]] = linalg.generic {{.*}} ins(%[[SAI]] : tensor<4x8x2xf64>)
// CHECK: arith.mulf %in, %[[SCALE]] : f64
// CHECK: %[[SBI:.*]] = linalg.generic {{.*}} iterator_types = ["parallel", "parallel", "parallel", "reduction"]} {{.*}} outs(%{{.*}} : tensor<4x2x6xf64>)
// CHECK: %[[DBI:.*]] = linalg.generic {{.*}} ins(%[[SBI]] : tensor<4x2x6xf64>)
// CHECK: arith.mulf %in, %[[SCALE]] : f64
// CHECK: return %{{.*}}, %{{.*}}, %{{.*}}, %[[DAI]], %[[DBI]], %{{.*}}, %{{.*}} : tensor<10x8xf64>, tensor<4x8x6xf64>, tensor<4x6x8xf64>, tensor<4x8x2xf64>, tensor<4x2x6xf64>, tensor<4x6x2xf64>, tensor<4x2x8xf64>
func.func @gelu_lora(%xs: tensor<10x8xf64>, %off: tensor<5xi32>,
    %wi: tensor<4x8x6xf64>, %wo: tensor<4x6x8xf64>, %dy: tensor<10x8xf64>,
    %ai: tensor<4x8x2xf64>, %bi: tensor<4x2x6xf64>, %ao: tensor<4x6x2xf64>,
    %bo: tensor<4x2x8xf64>)
    -> (tensor<10x8xf64>, tensor<4x8x6xf64>, tensor<4x6x8xf64>,
        tensor<4x8x2xf64>, tensor<4x2x6xf64>, tensor<4x6x2xf64>,
        tensor<4x2x8xf64>) {
  %dxs, %dwi, %dwo, %dai, %dbi, %dao, %dbo = moma.experts_grad gelu %xs,
      %off, %wi, %wo, %dy lora(%ai, %bi, %ao, %bo) {lora_scale = 0.25 : f64}
      : (tensor<10x8xf64>, tensor<5xi32>, tensor<4x8x6xf64>,
         tensor<4x6x8xf64>, tensor<10x8xf64>, tensor<4x8x2xf64>,
         tensor<4x2x6xf64>, tensor<4x6x2xf64>, tensor<4x2x8xf64>)
      -> (tensor<10x8xf64>, tensor<4x8x6xf64>, tensor<4x6x8xf64>,
          tensor<4x8x2xf64>, tensor<4x2x6xf64>, tensor<4x6x2xf64>,
          tensor<4x2x8xf64>)
  return %dxs, %dwi, %dwo, %dai, %dbi, %dao, %dbo
      : tensor<10x8xf64>, tensor<4x8x6xf64>, tensor<4x6x8xf64>,
        tensor<4x8x2xf64>, tensor<4x2x6xf64>, tensor<4x6x2xf64>,
        tensor<4x2x8xf64>
}
