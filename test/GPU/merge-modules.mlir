// moma-gpu-merge-modules: the one-kernel modules of gpu-kernel-outlining
// become one module; each kernel takes its old module's name, copies of a
// global are kept once, and the launches follow.
// RUN: moma-opt %s --split-input-file --moma-gpu-merge-modules --verify-diagnostics | FileCheck %s

// CHECK-LABEL: module attributes {gpu.container_module}
// CHECK: func.func @forward
// CHECK-NEXT: %[[C1:.*]] = arith.constant 1 : index
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel blocks
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel_0 blocks
// CHECK-NEXT: return
// CHECK: gpu.module @kernels {
// CHECK-NEXT: memref.global "private" constant @table
// CHECK-NEXT: gpu.func @forward_kernel(%{{.*}}: memref<4xf32>) kernel
// CHECK: memref.load %{{.*}}[%c0]
// CHECK: gpu.func @forward_kernel_0(%{{.*}}: memref<4xf32>) kernel
// CHECK: memref.load %{{.*}}[%c1]
// CHECK-NOT: memref.global "private" constant @table
// CHECK-NOT: gpu.module
module attributes {gpu.container_module} {
  memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
  func.func @forward(%a: memref<4xf32>) {
    %c1 = arith.constant 1 : index
    gpu.launch_func @forward_kernel::@forward_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    gpu.launch_func @forward_kernel_0::@forward_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1) args(%a : memref<4xf32>)
    return
  }
  gpu.module @forward_kernel {
    gpu.func @forward_kernel(%a: memref<4xf32>) kernel {
      %c0 = arith.constant 0 : index
      %t = memref.get_global @table : memref<4xf32>
      %x = memref.load %t[%c0] : memref<4xf32>
      memref.store %x, %a[%c0] : memref<4xf32>
      gpu.return
    }
    memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
  }
  gpu.module @forward_kernel_0 {
    gpu.func @forward_kernel(%a: memref<4xf32>) kernel {
      %c1 = arith.constant 1 : index
      %t = memref.get_global @table : memref<4xf32>
      %x = memref.load %t[%c1] : memref<4xf32>
      memref.store %x, %a[%c1] : memref<4xf32>
      gpu.return
    }
    memref.global "private" constant @table : memref<4xf32> = dense<[1.0, 2.0, 3.0, 4.0]>
  }
}

// -----

// expected-error @+1 {{is named 'kernels', the name of the merged GPU module}}
func.func @kernels() {
  return
}
gpu.module @forward_kernel {
  gpu.func @forward_kernel() kernel {
    gpu.return
  }
}
