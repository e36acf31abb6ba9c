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

#endif // MOMA_DIALECT_MOMAINTERFACES_TD
