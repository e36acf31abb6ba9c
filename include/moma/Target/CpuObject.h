//===- CpuObject.h - LLVM-dialect modules to host shared objects -*- C++ -*-=//
//
// The CPU back end's last step: translate an LLVM-dialect module to LLVM IR,
// optimise it, emit a position-independent object for the host and link it
// into a shared object that the runtime dlopens.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_TARGET_CPUOBJECT_H
#define MOMA_TARGET_CPUOBJECT_H

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <string>
#include <vector>

namespace moma {

/// Adds `extern "C" void <wrapperName>(void **args)` to an LLVM-dialect
/// module: it loads one pointer argument through each `args[i]` (the
/// runtime's kernel ABI, like cuLaunchKernel's kernelParams) and calls
/// `callee`, whose parameters must all be `!llvm.ptr` (bare-pointer memrefs).
llvm::Error addPointerArrayWrapper(mlir::ModuleOp module,
                                   llvm::StringRef callee,
                                   llvm::StringRef wrapperName);

/// Compiles `module` (LLVM dialect, OpenMP ops allowed) at -O3 for the x86-64
/// feature level `cpu` ("x86-64-v3": AVX2 + FMA; "x86-64-v4": AVX-512) and
/// links it into a shared object with the system linker driver (clang-22 /
/// clang, which must be on PATH), with the LLVM OpenMP runtime (libomp.so.5)
/// and a support routine `moma_cpu_set_threads(int)` the runtime calls to
/// size the thread team. Returns the bytes of the shared object.
llvm::Expected<std::vector<char>> compileToSharedObject(mlir::ModuleOp module,
                                                        llvm::StringRef cpu);

} // namespace moma

#endif // MOMA_TARGET_CPUOBJECT_H
