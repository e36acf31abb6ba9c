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

/// Compiles `module` (LLVM dialect only) for the host at -O2 and links it
/// into a shared object with the system linker driver (clang-22 / clang,
/// which must be on PATH). Returns the bytes of the shared object.
llvm::Expected<std::vector<char>> compileToSharedObject(mlir::ModuleOp module);

} // namespace moma

#endif // MOMA_TARGET_CPUOBJECT_H
