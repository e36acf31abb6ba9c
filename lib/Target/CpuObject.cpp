//===- CpuObject.cpp - LLVM-dialect modules to host shared objects --------===//

#include "moma/Target/CpuObject.h"

#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/IR/Builders.h"
#include "mlir/Target/LLVMIR/Dialect/Builtin/BuiltinToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/LLVMIR/LLVMToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Dialect/OpenMP/OpenMPToLLVMIRTranslation.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/IR/LLVMContext.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/Target/TargetOptions.h"
#include "llvm/TargetParser/Host.h"

using namespace mlir;

/// The support routines lowered MLIR code calls besides libc, libm and
/// libomp: `memrefCopy` (strided `memref.copy`, normally from
/// libmlir_c_runner_utils, which a deployed program cannot assume; same ABI
/// as upstream's), and `moma_cpu_set_threads`, which the runtime calls after
/// loading the object to size the OpenMP team.
static const char kSupportSource[] = R"c(
#include <stdint.h>
#include <string.h>

void omp_set_num_threads(int);

void moma_cpu_set_threads(int n) {
  if (n > 0)
    omp_set_num_threads(n);
}

typedef struct {
  int64_t rank;
  void *descriptor;
} UnrankedMemRef;

/* descriptor: allocated, aligned, offset, sizes[rank], strides[rank] */
void memrefCopy(int64_t elemSize, UnrankedMemRef *src, UnrankedMemRef *dst) {
  int64_t rank = src->rank;
  char **sd = (char **)src->descriptor, **dd = (char **)dst->descriptor;
  char *sbase = sd[1], *dbase = dd[1];
  int64_t *sm = (int64_t *)(sd + 2), *dm = (int64_t *)(dd + 2);
  int64_t s = sm[0], d = dm[0];
  int64_t *sizes = sm + 1, *sstrides = sm + 1 + rank, *dstrides = dm + 1 + rank;
  int64_t total = 1;
  for (int64_t i = 0; i < rank; ++i) {
    if (sizes[i] == 0)
      return;
    total *= sizes[i];
  }
  int64_t index[rank > 0 ? rank : 1];
  memset(index, 0, sizeof(index));
  for (int64_t n = 0; n < total; ++n) {
    memcpy(dbase + d * elemSize, sbase + s * elemSize, elemSize);
    for (int64_t axis = rank - 1; axis >= 0; --axis) {
      ++index[axis];
      s += sstrides[axis];
      d += dstrides[axis];
      if (index[axis] < sizes[axis])
        break;
      s -= sstrides[axis] * sizes[axis];
      d -= dstrides[axis] * sizes[axis];
      index[axis] = 0;
    }
  }
}
)c";

llvm::Error moma::addPointerArrayWrapper(ModuleOp module, StringRef callee,
                                         StringRef wrapperName) {
  auto target = module.lookupSymbol<LLVM::LLVMFuncOp>(callee);
  if (!target)
    return llvm::createStringError("no LLVM function '" + callee + "'");
  MLIRContext *ctx = module.getContext();
  auto ptr = LLVM::LLVMPointerType::get(ctx);
  for (Type type : target.getFunctionType().getParams())
    if (type != ptr)
      return llvm::createStringError(
          "'" + callee +
          "' takes a non-pointer argument: compile with "
          "bare-pointer memrefs");
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(module.getBody());
  Location loc = target.getLoc();
  auto wrapperType =
      LLVM::LLVMFunctionType::get(LLVM::LLVMVoidType::get(ctx), {ptr});
  auto wrapper = LLVM::LLVMFuncOp::create(b, loc, wrapperName, wrapperType);
  Block *entry = wrapper.addEntryBlock(b);
  b.setInsertionPointToStart(entry);
  SmallVector<Value> args;
  Value array = entry->getArgument(0);
  for (unsigned i = 0, e = target.getNumArguments(); i < e; ++i) {
    Value slot = LLVM::GEPOp::create(b, loc, ptr, ptr, array,
                                     ArrayRef<LLVM::GEPArg>{int32_t(i)});
    Value valueAddress = LLVM::LoadOp::create(b, loc, ptr, slot);
    args.push_back(LLVM::LoadOp::create(b, loc, ptr, valueAddress));
  }
  LLVM::CallOp::create(b, loc, target, args);
  LLVM::ReturnOp::create(b, loc, ValueRange{});
  return llvm::Error::success();
}

/// Creates the file `path` and has `write` fill it; failing to create it is an
/// error that names the path.
static llvm::Error
writeFileWith(const std::string &path,
              llvm::function_ref<llvm::Error(llvm::raw_fd_ostream &)> write) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return llvm::createStringError("cannot write '" + path +
                                   "': " + ec.message());
  return write(os);
}

llvm::Expected<std::vector<char>> moma::compileToSharedObject(ModuleOp module,
                                                              StringRef cpu) {
  DialectRegistry registry;
  registerBuiltinDialectTranslation(registry);
  registerLLVMDialectTranslation(registry);
  registerOpenMPDialectTranslation(registry);
  module.getContext()->appendDialectRegistry(registry);

  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();

  llvm::LLVMContext llvmContext;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, llvmContext);
  if (!llvmModule)
    return llvm::createStringError("translation to LLVM IR failed");

  std::string tripleName = llvm::sys::getDefaultTargetTriple();
  llvm::Triple triple(tripleName);
  std::string error;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, error);
  if (!target)
    return llvm::createStringError("no LLVM target for '" + tripleName +
                                   "': " + error);
  // The feature level, not the host: the program runs on any CPU of that
  // level (the runtime checks it at load time).
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      triple, cpu, "", llvm::TargetOptions(), llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!machine->getMCSubtargetInfo()->isCPUStringValid(cpu))
    return llvm::createStringError("unknown CPU level '" + cpu.str() + "'");
  llvmModule->setTargetTriple(triple);
  llvmModule->setDataLayout(machine->createDataLayout());

  auto optimize = makeOptimizingTransformer(3, 0, machine.get());
  if (llvm::Error err = optimize(llvmModule.get()))
    return std::move(err);

  llvm::SmallString<128> dir;
  if (std::error_code ec =
          llvm::sys::fs::createUniqueDirectory("momac-cpu", dir))
    return llvm::createStringError("cannot create a temporary directory: " +
                                   ec.message());
  llvm::scope_exit cleanup([&] { llvm::sys::fs::remove_directories(dir); });
  std::string objectPath = (dir + "/kernels.o").str();
  std::string libraryPath = (dir + "/kernels.so").str();
  if (llvm::Error err = writeFileWith(
          objectPath, [&](llvm::raw_fd_ostream &os) -> llvm::Error {
            llvm::legacy::PassManager passes;
            if (machine->addPassesToEmitFile(passes, os, nullptr,
                                             llvm::CodeGenFileType::ObjectFile))
              return llvm::createStringError(
                  "the host target cannot emit objects");
            passes.run(*llvmModule);
            return llvm::Error::success();
          }))
    return std::move(err);

  llvm::ErrorOr<std::string> linker = llvm::sys::findProgramByName("clang-22");
  if (!linker)
    linker = llvm::sys::findProgramByName("clang");
  if (!linker)
    return llvm::createStringError(
        "linking the CPU kernels needs clang-22 (or clang) on PATH");
  std::string supportPath = (dir + "/support.c").str();
  if (llvm::Error err = writeFileWith(
          supportPath, [](llvm::raw_fd_ostream &os) -> llvm::Error {
            os << kSupportSource;
            return llvm::Error::success();
          }))
    return std::move(err);
  SmallVector<StringRef> argv = {*linker, "-shared", "-fuse-ld=lld", "-O2",
                                 "-fPIC", "-o", libraryPath, objectPath,
                                 supportPath, "-lm",
                                 // The LLVM OpenMP runtime by its soname
                                 // (Debian's libomp5 has no unversioned link).
                                 "-l:libomp.so.5"};
  std::string message;
  int status = llvm::sys::ExecuteAndWait(*linker, argv, std::nullopt, {}, 0, 0,
                                         &message);
  if (status != 0)
    return llvm::createStringError("linking the CPU kernels failed (" +
                                   *linker + " exited with " +
                                   std::to_string(status) + ") " + message);
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> library =
      llvm::MemoryBuffer::getFile(libraryPath);
  if (!library)
    return llvm::createStringError("cannot read the linked kernels: " +
                                   library.getError().message());
  StringRef bytes = (*library)->getBuffer();
  return std::vector<char>(bytes.begin(), bytes.end());
}
