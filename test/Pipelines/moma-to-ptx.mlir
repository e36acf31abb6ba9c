// moma-to-ptx up to the NVVM dialect (format=nvvm: no CUDA toolkit needed):
// the host function keeps only allocations, constants and launches of
// kernels of one gpu.module that take root buffers as bare pointers.
// RUN: moma-opt %s --moma-to-ptx="chip=sm_90 format=nvvm" | FileCheck %s
// The same with 128-thread blocks for sm_80.
// RUN: moma-opt %s --moma-to-ptx="chip=sm_80 block-size=128 format=nvvm" | FileCheck %s --check-prefix=SM80

// CHECK-LABEL: func.func @forward
// CHECK-SAME: %[[X:[^:]*]]: memref<2x8x16xf32> {moma.input = "x"}
// CHECK-SAME: %[[W:[^:]*]]: memref<16x4xf32> {moma.weight = "w"}
// CHECK-SAME: %[[Y:[^:]*]]: memref<2x8x4xf32> {moma.output = "y"}
// CHECK-NOT: scf.
// CHECK-NOT: memref.load
// CHECK-NOT: memref.store
// CHECK-NOT: memref.subview
// CHECK-NOT: linalg.
// CHECK: %[[T:.*]] = memref.alloc() {{.*}} : memref<16x4xf32>
// The fill, the matmul (16 rows x 4 columns: 64 threads of one 256-thread
// block), the addition and the copy into the output.
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1) args(%[[T]] : memref<16x4xf32>)
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel_0 blocks in (%c1, %c1, %c1) threads in (%c256, %c1, %c1) args(%[[X]] : memref<2x8x16xf32>, %[[W]] : memref<16x4xf32>, %[[T]] : memref<16x4xf32>)
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel_1 {{.*}} args(%[[T]] : memref<16x4xf32>)
// CHECK-NEXT: gpu.launch_func @kernels::@forward_kernel_2 {{.*}} args(%[[T]] : memref<16x4xf32>, %[[Y]] : memref<2x8x4xf32>)
// CHECK-NEXT: return

// CHECK: gpu.module @kernels [#nvvm.target<O = 3, chip = "sm_90", features = "+ptx80">]
// CHECK: llvm.func @forward_kernel(%{{.*}}: !llvm.ptr{{.*}}) attributes {gpu.kernel{{.*}}nvvm.kernel, nvvm.maxntid = array<i32: 256, 1, 1>}
// One thread per element; the threads past the 64 elements do nothing.
// CHECK: %[[TID:.*]] = nvvm.read.ptx.sreg.tid.x range <i32, 0, 256> : i32
// CHECK: %[[I:.*]] = llvm.sext %[[TID]] : i32 to i64
// CHECK: llvm.icmp "ult" %[[I]], %{{.*}} : i64

// SM80: gpu.launch_func @kernels::@forward_kernel{{.*}} threads in (%c128, %c1, %c1)
// SM80: gpu.module @kernels [#nvvm.target<O = 3, chip = "sm_80", features = "+ptx80">]
func.func @forward(%x: tensor<2x8x16xf32> {moma.input = "x"},
                   %w: tensor<16x4xf32> {moma.weight = "w"})
    -> (tensor<2x8x4xf32> {moma.output = "y"}) {
  %y = moma.linear %x, %w : (tensor<2x8x16xf32>, tensor<16x4xf32>) -> tensor<2x8x4xf32>
  %z = arith.addf %y, %y : tensor<2x8x4xf32>
  return %z : tensor<2x8x4xf32>
}
