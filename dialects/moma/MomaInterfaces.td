//===- MomaInterfaces.td - moma op interfaces --------------*- tablegen -*-===//
//
// Interfaces that treat families of moma ops uniformly: the canonicalizer
// (tying untied weights that have a single modality) and moma-flop-count (the
// parameters of untied weights) use them.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMAINTERFACES_TD
#define MOMA_DIALECT_MOMAINTERFACES_TD

include "mlir/IR/OpBase.td"

def Moma_UntiedOpInterface : OpInterface<"UntiedOpInterface"> {
  let cppNamespace = "moma";
  let description = [{
    An op whose weights may be *untied per modality* (Mixture-of-Transformers):
    when its optional `modality` operand is present, every per-modality weight
    carries one extra leading dimension of size `M` (the number of declared
    modalities) and token `t` uses slice `modality[t]`.
  }];
  let methods = [
    InterfaceMethod<[{
        The modality-id operand, or null when weights are tied. By default
        the op's optional `modality` operand.
      }],
      "::mlir::Value", "getModalityIds", (ins), [{}],
      [{ return $_op.getModality(); }]>,
    InterfaceMethod<[{
        The operands that gain a leading modality dimension when untied.
      }],
      "::llvm::SmallVector<::mlir::OpOperand *>", "getPerModalityOperands">,
    InterfaceMethod<[{
        Remove the modality-id operand (weights become tied). By default
        clears the op's optional `modality` operand.
      }],
      "void", "dropModalityIds", (ins), [{}],
      [{ $_op.getModalityMutable().clear(); }]>,
  ];
  let extraSharedClassDeclaration = [{
    /// True when the weights are untied (a modality operand is present).
    bool isUntied() { return static_cast<bool>($_op.getModalityIds()); }
  }];
}

def Moma_GradientOpInterface : OpInterface<"GradientOpInterface"> {
  let cppNamespace = "moma";
  let description = [{
    An op with a gradient rule: moma-autodiff calls it, in reverse program
    order, to build the gradients of the op's operands from those of its
    results. Rules build ordinary moma ops (the backward ops of
    MomaGradientOps.td where the math deserves a kernel of its own, else
    forward moma ops and tensor arithmetic), so the backward pass is
    lowered and optimised like the forward one. Semantics.md ("Gradients")
    states every rule.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds, at the builder's insertion point (after the op), the
        gradients of the operands. `resultGradients` has one entry per
        result: the gradient of the differentiated value with respect to
        that result, or null where it has none (the result does not reach
        the loss). Sets `operandGradients` (resized to the number of
        operands by the caller, all null) to the gradient of every float
        operand that receives one; null means none flows (integer operands,
        discrete choices, stop-gradients). Fails with an op error when the
        rule does not cover the op's form.
      }],
      "::llvm::LogicalResult", "buildGradients",
      (ins "::mlir::OpBuilder &":$builder,
           "::llvm::ArrayRef<::mlir::Value>":$resultGradients,
           "::llvm::MutableArrayRef<::mlir::Value>":$operandGradients)>,
  ];
}

#endif // MOMA_DIALECT_MOMAINTERFACES_TD
