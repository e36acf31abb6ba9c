//===- MomaAttrs.td - moma attributes and enums ------------*- tablegen -*-===//
//
// Modalities, expert groups and the enums the ops use.
//
//===----------------------------------------------------------------------===//

#ifndef MOMA_DIALECT_MOMAATTRS_TD
#define MOMA_DIALECT_MOMAATTRS_TD

include "dialects/moma/MomaDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

def Moma_RoutingKind : I32EnumAttr<"RoutingKind",
    "how tokens and experts choose each other inside an expert group", [
      I32EnumAttrCase<"token_choice", 0>,
      I32EnumAttrCase<"expert_choice", 1>
    ]> {
  let cppNamespace = "moma";
}

def Moma_ScoreFunction : I32EnumAttr<"ScoreFunction",
    "how router logits become expert scores", [
      I32EnumAttrCase<"softmax", 0>,
      I32EnumAttrCase<"sigmoid", 1>
    ]> {
  let cppNamespace = "moma";
}

def Moma_NormKind : I32EnumAttr<"NormKind", "normalisation kind", [
      I32EnumAttrCase<"rms", 0>,
      I32EnumAttrCase<"layer", 1>
    ]> {
  let cppNamespace = "moma";
}

def Moma_Activation : I32EnumAttr<"Activation",
    "feed-forward activation", [
      I32EnumAttrCase<"swiglu", 0>,
      I32EnumAttrCase<"gelu", 1>
    ]> {
  let cppNamespace = "moma";
}

//===----------------------------------------------------------------------===//
// Attributes
//===----------------------------------------------------------------------===//

class Moma_Attr<string name, string attrMnemonic, list<Trait> traits = []>
    : AttrDef<Moma_Dialect, name, traits> {
  let mnemonic = attrMnemonic;
}

def Moma_ModalityAttr : Moma_Attr<"Modality", "modality"> {
  let summary = "A modality of the sequence and the token ids it owns";
  let description = [{
    Declares modality number `id`, its name and the half-open range of token
    ids `[begin, end)` (written `tokens = begin to end`, half-open like
    `scf.for`) that belong to it. A module lists its modalities in
    the `moma.modalities` attribute, with ids `0, 1, ...` in order, unique
    names and disjoint ranges.

    ```mlir
    #moma.modality<1, "image", tokens = 57344 to 65536>
    ```
  }];
  let parameters = (ins "int64_t":$id, "::mlir::StringAttr":$name,
                        "int64_t":$tokenBegin, "int64_t":$tokenEnd);
  let assemblyFormat = [{
    `<` $id `,` $name `,` `tokens` `=` $tokenBegin `to` $tokenEnd `>`
  }];
  let genVerifyDecl = 1;
}

def Moma_ExpertGroupAttr : Moma_Attr<"ExpertGroup", "expert_group"> {
  let summary = "The experts of one modality and how they are routed";
  let description = [{
    An expert group holds the experts of one modality (hierarchical routing:
    stage 1 sends a token to its modality's group deterministically; stage 2
    is this group's learned router).

    - `modality = m`: the declared modality this group serves; or
      `modalities = [m, ...]` for a group that several modalities share
      (Uni-MoE: every token uses the same experts). A modality belongs to at
      most one group of an op.
    - `experts`: the number of experts, at least 1.
    - `token_choice(top_k = k)`: every token picks its `k` best experts
      (`1 <= k <= experts`), Mixtral / Uni-MoE style, no drops.
    - `expert_choice(capacity = c)`: every expert picks the
      `floor(b * c / experts)` best tokens of the `b` group tokens in the
      batch (`0 < c <= experts`; `c` is the average number of experts per
      token, MoMa uses `c = 1`).
    - `score = softmax | sigmoid`: how logits become gate scores.
    - `renormalize`: divide each token's gates by their sum.

    ```mlir
    #moma.expert_group<modality = 0, experts = 4, expert_choice(capacity = 1.0), score = sigmoid>
    #moma.expert_group<modality = 0, experts = 8, token_choice(top_k = 2), score = softmax, renormalize>
    #moma.expert_group<modalities = [0, 1, 2], experts = 4, token_choice(top_k = 2), score = softmax, renormalize>
    ```
  }];
  let parameters = (ins ArrayRefParameter<"int64_t", "modalities">:$modalities,
                        "int64_t":$experts,
                        "moma::RoutingKind":$routing,
                        "int64_t":$topK,
                        APFloatParameter<"expert-choice capacity factor">:$capacity,
                        "moma::ScoreFunction":$score,
                        "bool":$renormalize);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// True when tokens of modality `id` belong to this group.
    bool servesModality(int64_t id) const;
    /// The capacity factor as a double (0 for token-choice groups).
    double getCapacityFactor() const;
    /// Upper bound, per group token, of the slots this group fills in a
    /// routing plan: `top_k` (token choice) or `capacity` (expert choice).
    double getSlotsPerToken() const;
    /// Number of tokens each expert of an expert-choice group takes when the
    /// group has `groupTokens` tokens in the batch.
    int64_t getExpertCapacity(int64_t groupTokens) const;
  }];
}

def Moma_ExpertGroupArrayAttr
    : TypedArrayAttrBase<Moma_ExpertGroupAttr, "array of expert groups">;

#endif // MOMA_DIALECT_MOMAATTRS_TD
