//===- MomaDialect.td - The moma dialect definition --------*- tablegen -*-===//
//
// The moma dialect describes sparse multimodal transformers at tensor level:
// modality-aware expert groups, routing plans, mixture-of-depths regions and
// per-modality (untied) weights.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMADIALECT_TD
#define MOMA_DIALECT_MOMADIALECT_TD

include "mlir/IR/OpBase.td"

def Moma_Dialect : Dialect {
  let name = "moma";
  let cppNamespace = "moma";
  let summary = "Tensor-level ops for sparse multimodal transformers.";
  let description = [{
    The `moma` dialect expresses early-fusion multimodal transformers whose
    sequences interleave tokens of several modalities (text, image, speech):
    modality-aware mixture-of-experts (MoMa), mixture-of-depths (MoD),
    Mixture-of-Transformers (every weight untied per modality) and token-choice
    MoE with LoRA experts (Uni-MoE).

    A module declares its modalities once, in order, with the token-id range
    each one owns:

    ```mlir
    module attributes {moma.modalities = [
        #moma.modality<0, "text", tokens = 0 to 57344>,
        #moma.modality<1, "image", tokens = 57344 to 65536>]} {
      ...
    }
    ```

    Activations are static `tensor<B x L x D>`; modality ids are
    `tensor<B x L x i32>` (`-1` marks padding rows inside a depth region).
    Routing decisions are ordinary SSA values: `moma.route` produces an
    expert-major *routing plan* (`slot_token`, `slot_gate`, `expert_offsets`)
    of static capacity, which `moma.dispatch`, `moma.experts` and
    `moma.combine` consume and which convert-moma-to-linalg lowers to a
    gather, a per-slot expert FFN and an ordered scatter-add. The exact
    numerical semantics of every op is in `dialects/moma/Semantics.md`; the
    PyTorch reference implements it.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasOperationAttrVerify = 1;
  let hasRegionArgAttrVerify = 1;
  let hasRegionResultAttrVerify = 1;
  let hasCanonicalizer = 1;
  let dependentDialects = [
    "::mlir::arith::ArithDialect",
    "::mlir::tensor::TensorDialect"
  ];
  let extraClassDeclaration = [{
    /// Registers the attributes (defined in MomaAttrs.cpp, where their
    /// storage classes are complete).
    void registerAttributes();

    /// Function argument attributes naming a program input (`ids`,
    /// `modality`, `targets`, `target_modality`) or a weight (its name in
    /// the safetensors file), and result attributes naming an output.
    static constexpr ::llvm::StringLiteral getInputAttrName() {
      return ::llvm::StringLiteral("moma.input");
    }
    static constexpr ::llvm::StringLiteral getWeightAttrName() {
      return ::llvm::StringLiteral("moma.weight");
    }
    static constexpr ::llvm::StringLiteral getOutputAttrName() {
      return ::llvm::StringLiteral("moma.output");
    }

    /// The prefix of the output names that carry weight gradients
    /// (`grad:NAME`, moma-autodiff's results).
    static constexpr ::llvm::StringLiteral getGradientOutputPrefix() {
      return ::llvm::StringLiteral("grad:");
    }

    /// A train program's function: the argument attribute naming optimizer
    /// state (`adam.m:NAME`), and the result attribute naming the weight or
    /// state buffer a result replaces in place.
    static constexpr ::llvm::StringLiteral getStateAttrName() {
      return ::llvm::StringLiteral("moma.state");
    }
    static constexpr ::llvm::StringLiteral getUpdatesAttrName() {
      return ::llvm::StringLiteral("moma.updates");
    }

    /// Function argument attribute of the byte buffer that
    /// moma-scratch-arena adds: an i64, the arena's size in bytes.
    static constexpr ::llvm::StringLiteral getScratchAttrName() {
      return ::llvm::StringLiteral("moma.scratch");
    }

    /// Name of the module attribute that declares the modalities.
    static constexpr ::llvm::StringLiteral getModalitiesAttrName() {
      return ::llvm::StringLiteral("moma.modalities");
    }

    /// moma-kernel-plan's attributes (passes/Kernels/KernelLayer.md): a
    /// dictionary on every planned op, and the target's name on the module.
    static constexpr ::llvm::StringLiteral getKernelAttrName() {
      return ::llvm::StringLiteral("moma.kernel");
    }
    static constexpr ::llvm::StringLiteral getKernelTargetAttrName() {
      return ::llvm::StringLiteral("moma.kernel_target");
    }
    /// The chunk width (a positive integer) on the `scf.for` over vocabulary
    /// chunks of the LM head fused with cross-entropy.
    static constexpr ::llvm::StringLiteral getVocabChunkAttrName() {
      return ::llvm::StringLiteral("moma.vocab_chunk");
    }
  }];
}

/// Base class of every moma op.
class Moma_Op<string mnemonic, list<Trait> traits = []>
    : Op<Moma_Dialect, mnemonic, traits>;

#endif // MOMA_DIALECT_MOMADIALECT_TD
