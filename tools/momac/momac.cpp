//===- momac.cpp - The moma compiler driver -------------------------------===//
//
// momac MODEL.json [--emit=moma|flops|kernels] [-o OUT] [--batch=B
//       --seq-len=L]
//       [--routing=batch|aux] [--program=forward|gradients|train
//        [--train-config=C.json] [--recompute=none|layer]]
//       [--init-weights=W.safetensors --seed=N]
//       [--target=cpu|sm_80|sm_90|sm_90a [--scratch-reuse=false]
//        [--cubin=auto|always|never] [--ptxas=PATH]]
//
// Reads a model definition (examples/README.md), builds its moma IR and
// writes it, its FLOP table or its kernel plan (for --target, cpu by
// default), or compiles it into a program (.momaprog)
// for the CPU or an NVIDIA GPU; optionally writes seeded initial weights.
// Errors name the file, the JSON path and the rule, exit non-zero and leave
// no output file behind.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/ProgramFile.h"
#include "moma/Frontend/ModelBuilder.h"
#include "moma/Frontend/ModelConfig.h"
#include "moma/Frontend/TrainConfig.h"
#include "moma/Target/GpuProgram.h"
#include "moma/Target/ProgramCompiler.h"
#include "passes/Conversion/Passes.h"
#include "passes/Kernels/KernelReport.h"
#include "passes/Kernels/Passes.h"
#include "passes/Pipelines/Pipelines.h"
#include "passes/Transforms/FlopCount.h"
#include "passes/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Transforms/Passes.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace llvm;

namespace {
enum class EmitKind { Moma, Flops, Kernels };

cl::OptionCategory category("momac options");
cl::opt<std::string> inputFile(cl::Positional, cl::desc("<model.json>"),
                               cl::init("-"), cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("Output file ('-': stdout)"),
                                cl::value_desc("filename"), cl::init("-"),
                                cl::cat(category));
cl::opt<EmitKind>
    emit("emit", cl::desc("What to write"), cl::init(EmitKind::Moma),
         cl::values(clEnumValN(EmitKind::Moma, "moma", "moma dialect IR"),
                    clEnumValN(EmitKind::Flops, "flops",
                               "FLOPs per token by modality and op kind, and "
                               "parameters"),
                    clEnumValN(EmitKind::Kernels, "kernels",
                               "the kernel plan for --target (default cpu): "
                               "one line per kernel")),
         cl::cat(category));
cl::opt<int64_t> batch("batch", cl::desc("Sequences per batch"), cl::init(1),
                       cl::cat(category));
cl::opt<int64_t> seqLen("seq-len", cl::desc("Tokens per sequence"),
                        cl::init(4096), cl::cat(category));
/// Which outputs @forward returns.
enum class Outputs { All, Loss };
cl::opt<Outputs> outputs(
    "outputs",
    cl::desc("The outputs of the program: all (default: logits and losses), "
             "or loss (the losses only: the LM head is fused with "
             "cross-entropy and no [B, L, V] logits are ever written)"),
    cl::init(Outputs::All),
    cl::values(clEnumValN(Outputs::All, "all", "logits and losses"),
               clEnumValN(Outputs::Loss, "loss", "losses only, no logits")),
    cl::cat(category));
cl::opt<int64_t> vocabChunk(
    "vocab-chunk",
    cl::desc("With --outputs=loss: the fused LM head's vocabulary chunk "
             "instead of the cost model's (a divisor of the vocabulary; for "
             "tests and experiments)"),
    cl::init(0), cl::cat(category));
cl::opt<moma::BuildOptions::Routing> routing(
    "routing", cl::desc("How expert-choice and MoD select tokens"),
    cl::init(moma::BuildOptions::Routing::Batch),
    cl::values(clEnumValN(moma::BuildOptions::Routing::Batch, "batch",
                          "top-k over the whole batch (training)"),
               clEnumValN(moma::BuildOptions::Routing::Aux, "aux",
                          "auxiliary routers decide causally (inference)")),
    cl::cat(category));
cl::opt<std::string>
    initWeights("init-weights",
                cl::desc("Write seeded initial weights (safetensors)"),
                cl::value_desc("filename"), cl::cat(category));
cl::opt<uint64_t> seed("seed", cl::desc("Seed of --init-weights"), cl::init(0),
                       cl::cat(category));
cl::opt<std::string>
    target("target",
           cl::desc("Compile a program (.momaprog) for this target instead of "
                    "emitting text: cpu, sm_80, sm_90 or sm_90a"),
           cl::value_desc("target"), cl::cat(category));
cl::opt<std::string>
    cpuLevel("cpu",
             cl::desc("CPU target: the x86-64 feature level the kernels are "
                      "tiled and compiled for, x86-64-v3 (AVX2 + FMA, the "
                      "default) or x86-64-v4 (AVX-512)"),
             cl::init("x86-64-v3"), cl::value_desc("level"), cl::cat(category));
cl::opt<std::string> combineMode(
    "combine",
    cl::desc("CPU target: moma.combine in the second expert GEMM's epilogue, "
             "deterministic (no atomics, fixed summation order; the default) "
             "or fast (atomic adds)"),
    cl::init("deterministic"), cl::value_desc("mode"), cl::cat(category));
cl::opt<bool> scratchReuse(
    "scratch-reuse",
    cl::desc("GPU targets: let scratch buffers whose launches do not overlap "
             "share arena bytes (default on; off for debugging)"),
    cl::init(true), cl::cat(category));

/// What the compiled program computes.
enum class ProgramKind { Forward, Gradients, Train };
cl::opt<ProgramKind> programKind(
    "program", cl::desc("What the program computes"),
    cl::init(ProgramKind::Forward),
    cl::values(
        clEnumValN(ProgramKind::Forward, "forward",
                   "the forward pass and its losses (the default)"),
        clEnumValN(ProgramKind::Gradients, "gradients",
                   "the forward pass, its losses and the gradient of 'total' "
                   "with respect to every weight (outputs grad:NAME; "
                   "moma-autodiff)"),
        clEnumValN(ProgramKind::Train, "train",
                   "one optimizer step per run: gradients, AdamW with its "
                   "schedule and clipping over --train-config's "
                   "micro-batches, the weights updated in place "
                   "(examples/Training.md)")),
    cl::cat(category));

/// What the backward pass of a gradients or train program recomputes.
enum class Recompute { None, Layer };
cl::opt<Recompute> recompute(
    "recompute",
    cl::desc("--program=gradients|train: what the backward pass recomputes "
             "instead of keeping it from the forward pass (moma-autodiff)"),
    cl::init(Recompute::None),
    cl::values(clEnumValN(Recompute::None, "none",
                          "nothing: every activation is kept (the default)"),
               clEnumValN(Recompute::Layer, "layer",
                          "each layer, from its input, right before its "
                          "backward pass")),
    cl::cat(category));

enum class Permute { None, Modality };
cl::opt<Permute> permute(
    "permute",
    cl::desc("Token order the compiled network runs in (--target, "
             "--emit=kernels)"),
    cl::init(Permute::Modality),
    cl::values(clEnumValN(Permute::None, "none", "sequence order"),
               clEnumValN(Permute::Modality, "modality",
                          "modality-sorted within each batch row "
                          "(moma-hoist-modality-permutation, the default)")),
    cl::cat(category));

cl::opt<moma::CubinPolicy> cubin(
    "cubin",
    cl::desc("GPU targets: carry a cubin (assembled by ptxas) beside the PTX"),
    cl::values(clEnumValN(moma::CubinPolicy::Auto, "auto",
                          "when ptxas is found (default)"),
               clEnumValN(moma::CubinPolicy::Always, "always",
                          "always; no ptxas is an error"),
               clEnumValN(moma::CubinPolicy::Never, "never", "PTX only")),
    cl::init(moma::CubinPolicy::Auto), cl::cat(category));
cl::opt<std::string>
    ptxas("ptxas",
          cl::desc("GPU targets: the ptxas to assemble cubins with (default: "
                   "the CUDA toolkit's, else the one on PATH)"),
          cl::value_desc("path"), cl::cat(category));

int fail(const Twine &message) {
  WithColor::error(errs(), "momac") << message << "\n";
  return 1;
}

cl::opt<std::string>
    trainConfigFile("train-config",
                    cl::desc("--program=train: the training configuration "
                             "(moma-train-config/1, examples/Training.md)"),
                    cl::value_desc("filename"), cl::cat(category));

/// moma-train-step's options from a training configuration.
moma::MomaTrainStepOptions trainStepOptions(const moma::TrainConfig &config) {
  moma::MomaTrainStepOptions options;
  options.lr = config.lr;
  options.beta1 = config.beta1;
  options.beta2 = config.beta2;
  options.eps = config.eps;
  options.weightDecay = config.weightDecay;
  options.decayNormsAndBiases = config.decayNormsAndBiases;
  options.warmupSteps = config.warmupSteps;
  options.totalSteps = config.totalSteps;
  options.decay = config.decay;
  options.finalLrRatio = config.finalLrRatio;
  options.clipGradNorm = config.clipGradNorm.value_or(0.0);
  options.accumulationSteps = config.accumulationSteps;
  return options;
}

/// Differentiates a gradients or train program's @forward (moma-autodiff),
/// after moving it to modality order first when `permuteFirst` (the
/// permutation must precede the backward pass, which then runs in modality
/// order too), and makes a train program's optimizer step
/// (moma-train-step). Returns whether the permutation was applied.
FailureOr<bool> prepareProgram(mlir::ModuleOp module, bool permuteFirst,
                               const moma::TrainConfig *trainConfig) {
  if (programKind == ProgramKind::Forward)
    return false;
  mlir::PassManager pm(module->getContext());
  if (permuteFirst)
    pm.addNestedPass<mlir::func::FuncOp>(
        moma::createMomaHoistModalityPermutation());
  moma::MomaAutodiffOptions autodiff;
  autodiff.recompute = recompute == Recompute::Layer ? "layer" : "none";
  pm.addNestedPass<mlir::func::FuncOp>(moma::createMomaAutodiff(autodiff));
  if (trainConfig)
    pm.addPass(moma::createMomaTrainStep(trainStepOptions(*trainConfig)));
  if (failed(pm.run(module)))
    return failure();
  return permuteFirst;
}

/// The kernel layer's target model of a --target name: `cpu` is the --cpu
/// level (x86-64-v3 unless given).
std::string kernelTargetOf(StringRef name) {
  return name.empty() || name == "cpu" ? std::string(cpuLevel) : name.str();
}

/// Lowers `module` to linalg on tensors as the pipelines do (fusions
/// included), plans its
/// kernels for `targetName` and prints the plan to `os`.
LogicalResult printKernelPlan(mlir::ModuleOp module, StringRef targetName,
                              bool permuteModality, raw_ostream &os) {
  mlir::DialectRegistry registry;
  moma::registerPipelineDialects(registry);
  module->getContext()->appendDialectRegistry(registry);
  mlir::PassManager pm(module->getContext());
  moma::buildMomaToFusedTensors(pm, kernelTargetOf(targetName), vocabChunk,
                                permuteModality);
  pm.addPass(moma::createMomaKernelPlan(
      moma::MomaKernelPlanOptions{kernelTargetOf(targetName)}));
  if (failed(pm.run(module)))
    return failure();
  return moma::printKernelReport(module, os);
}
} // namespace

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(
      argc, argv,
      "momac: compile a moma model definition\n\n"
      "  momac MODEL.json --emit=moma -o model.mlir\n"
      "  momac MODEL.json --emit=flops\n"
      "  momac MODEL.json --emit=kernels --target=sm_90 --batch=1 "
      "--seq-len=128\n"
      "  momac MODEL.json --init-weights=w.safetensors --seed=1\n"
      "  momac MODEL.json --target=cpu --batch=2 --seq-len=16 -o m.momaprog\n"
      "  momac MODEL.json --target=sm_90 --batch=2 --seq-len=16 -o m.momaprog"
      "\n");

  Expected<moma::ModelConfig> config = moma::loadModelConfig(inputFile);
  if (!config)
    return fail(toString(config.takeError()));

  if (!initWeights.empty()) {
    if (Error err = moma::writeInitialWeights(*config, seed, initWeights))
      return fail(toString(std::move(err)));
    // Weights only, unless an output was asked for too.
    if (emit.getNumOccurrences() == 0 && outputFile.getNumOccurrences() == 0)
      return 0;
  }

  if (vocabChunk < 0 || (vocabChunk > 0 && config->vocabSize % vocabChunk != 0))
    return fail("--vocab-chunk=" + Twine(vocabChunk.getValue()) +
                ": must divide the vocabulary size " +
                Twine(config->vocabSize));

  // A train program's hyper-parameters, read before anything is built.
  std::optional<moma::TrainConfig> trainConfig;
  if (programKind == ProgramKind::Train) {
    if (trainConfigFile.empty())
      return fail("--program=train needs --train-config=C.json (a "
                  "moma-train-config/1 file, examples/Training.md)");
    Expected<moma::TrainConfig> parsed = moma::loadTrainConfig(trainConfigFile);
    if (!parsed)
      return fail(toString(parsed.takeError()));
    trainConfig = *parsed;
  } else if (!trainConfigFile.empty()) {
    return fail("--train-config is for --program=train only");
  }
  if (recompute != Recompute::None && programKind == ProgramKind::Forward)
    return fail("--recompute is for --program=gradients and --program=train "
                "only");

  mlir::MLIRContext context;
  moma::BuildOptions options;
  options.batch = batch;
  options.seqLen = seqLen;
  options.routing = routing;
  // A train program reports losses only: the LM head is fused with the
  // cross-entropy, and no logits are kept.
  options.logitsOutput =
      outputs == Outputs::All && programKind != ProgramKind::Train;
  options.fileName = inputFile == "-" ? "<stdin>" : inputFile.getValue();
  Expected<mlir::OwningOpRef<mlir::ModuleOp>> module =
      moma::buildModelModule(context, *config, options);
  if (!module)
    return fail(options.fileName + ": " + toString(module.takeError()));

  if (!target.empty() && target != "cpu" && !moma::parseGpuTarget(target))
    return fail("--target=" + target +
                ": unknown target (expected cpu, sm_80, sm_90 or sm_90a)");
  if (programKind != ProgramKind::Forward &&
      config->dtype != moma::DType::F32 && config->dtype != moma::DType::F64)
    return fail(
        "--program=" +
        Twine(programKind == ProgramKind::Train ? "train" : "gradients") +
        ": model '" + config->name + "' has dtype " +
        moma::modelDTypeName(config->dtype) +
        "; gradients are compiled for f32 and f64 models only (the "
        "mixed-precision backward pass of bf16/f16 models, with f32 master "
        "weights, is not implemented yet)");
  // A compiled or planned program runs in modality order: for a gradients
  // program the permutation comes before moma-autodiff, here.
  bool permuteModality = permute == Permute::Modality &&
                         (!target.empty() || emit == EmitKind::Kernels);
  FailureOr<bool> permuted = prepareProgram(
      **module, permuteModality, trainConfig ? &*trainConfig : nullptr);
  if (failed(permuted))
    return fail("cannot differentiate '" + config->name + "'");
  if (*permuted)
    permuteModality = false;
  std::string text;
  raw_string_ostream os(text);
  if (combineMode != "deterministic" && combineMode != "fast")
    return fail("--combine=" + combineMode +
                ": unknown mode (expected deterministic or fast)");
  if (cpuLevel != "x86-64-v3" && cpuLevel != "x86-64-v4")
    return fail("--cpu=" + cpuLevel +
                ": unknown CPU level (expected x86-64-v3 or x86-64-v4)");
  if (emit == EmitKind::Kernels) {
    os << "model " << config->name << ": batch " << batch << " x sequence "
       << seqLen << "\n";
    if (failed(printKernelPlan(**module, target, permuteModality, os)))
      return fail("cannot plan the kernels of '" + config->name + "'");
  } else if (!target.empty()) {
    if (target != "cpu" && !moma::parseGpuTarget(target))
      return fail("--target=" + target +
                  ": unknown target (expected cpu, sm_80, sm_90 or sm_90a)");
    Expected<moma::runtime::Program> program =
        target == "cpu"
            ? moma::compileCpuProgram(**module, cpuLevel, combineMode,
                                      vocabChunk, permuteModality)
            : moma::compileGpuProgram(
                  **module, target,
                  moma::GpuProgramOptions{
                      scratchReuse, permuteModality, cubin, ptxas,
                      [&](const std::string &line) {
                        WithColor::warning(errs(), "momac") << line << "\n";
                      },
                      vocabChunk});
    if (!program)
      return fail(options.fileName + ": " + toString(program.takeError()));
    if (outputFile == "-")
      return fail("a compiled program is binary: name it with -o FILE");
    absl::Status written = moma::runtime::writeProgram(*program, outputFile);
    if (!written.ok())
      return fail(std::string(written.message()));
    return 0;
  } else if (emit == EmitKind::Moma) {
    (**module)->print(os);
  } else {
    for (auto func : (**module).getOps<mlir::func::FuncOp>()) {
      mlir::FailureOr<moma::FlopReport> report = moma::countFlops(func);
      if (failed(report))
        return fail("cannot count the FLOPs of '" + config->name + "'");
      os << "model " << config->name << ": batch " << batch << " x sequence "
         << seqLen << "\n";
      report->print(os);
    }
  }

  // Only now open the output: an error above leaves no file behind.
  std::string error;
  std::unique_ptr<ToolOutputFile> out =
      mlir::openOutputFile(outputFile, &error);
  if (!out)
    return fail(error);
  out->os() << text;
  out->keep();
  return 0;
}
