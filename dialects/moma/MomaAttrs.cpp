//===- MomaAttrs.cpp - moma attributes and enums --------------------------===//
//
// Verifiers, custom syntax and helpers of the modality and expert-group
// attributes.
//
//===----------------------------------------------------------------------===//

#include "dialects/moma/MomaAttrs.h"
#include "dialects/moma/MomaDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include <cmath>

using namespace mlir;
using namespace moma;

#include "dialects/moma/MomaEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/moma/MomaAttrs.cpp.inc"

void MomaDialect::registerAttributes() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/moma/MomaAttrs.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// ModalityAttr
//===----------------------------------------------------------------------===//

LogicalResult ModalityAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                   int64_t id, StringAttr name,
                                   int64_t tokenBegin, int64_t tokenEnd) {
  if (id < 0)
    return emitError() << "modality id must be >= 0, got " << id;
  if (!name || name.getValue().empty())
    return emitError() << "modality " << id << " must have a non-empty name";
  if (tokenBegin < 0 || tokenBegin >= tokenEnd)
    return emitError() << "modality '" << name.getValue()
                       << "' token range must satisfy 0 <= begin < end, got ["
                       << tokenBegin << ", " << tokenEnd << ")";
  return success();
}

//===----------------------------------------------------------------------===//
// ExpertGroupAttr
//===----------------------------------------------------------------------===//

LogicalResult ExpertGroupAttr::verify(
    function_ref<InFlightDiagnostic()> emitError, ArrayRef<int64_t> modalities,
    int64_t experts, RoutingKind routing, int64_t topK, llvm::APFloat capacity,
    ScoreFunction score, bool renormalize) {
  if (modalities.empty())
    return emitError() << "expert group must serve at least one modality";
  for (auto [index, modality] : llvm::enumerate(modalities)) {
    if (modality < 0)
      return emitError() << "expert group modality must be >= 0, got "
                         << modality;
    if (llvm::is_contained(modalities.take_front(index), modality))
      return emitError() << "expert group lists modality " << modality
                         << " twice";
  }
  if (experts < 1)
    return emitError() << "expert group must have at least 1 expert, got "
                       << experts;
  double cap = capacity.convertToDouble();
  if (routing == RoutingKind::token_choice) {
    if (topK < 1 || topK > experts)
      return emitError() << "token_choice top_k must satisfy 1 <= top_k <= "
                            "experts ("
                         << experts << "), got " << topK;
    if (cap != 0.0)
      return emitError() << "token_choice groups take no capacity";
  } else {
    if (!(cap > 0.0) || cap > static_cast<double>(experts) || std::isnan(cap))
      return emitError() << "expert_choice capacity must satisfy 0 < capacity "
                            "<= experts ("
                         << experts << "), got " << cap;
    if (topK != 0)
      return emitError() << "expert_choice groups take no top_k";
  }
  return success();
}

Attribute ExpertGroupAttr::parse(AsmParser &parser, Type) {
  MLIRContext *ctx = parser.getContext();
  SMLoc loc = parser.getCurrentLocation();
  int64_t experts = 0, topK = 0;
  double capacity = 0.0;
  SmallVector<int64_t> modalities;
  if (parser.parseLess())
    return {};
  if (succeeded(parser.parseOptionalKeyword("modalities"))) {
    if (parser.parseEqual() ||
        parser.parseCommaSeparatedList(AsmParser::Delimiter::Square, [&] {
          return parser.parseInteger(modalities.emplace_back());
        }))
      return {};
  } else if (parser.parseKeyword("modality") || parser.parseEqual() ||
             parser.parseInteger(modalities.emplace_back())) {
    return {};
  }
  if (parser.parseComma() || parser.parseKeyword("experts") ||
      parser.parseEqual() || parser.parseInteger(experts) ||
      parser.parseComma())
    return {};

  SMLoc kindLoc = parser.getCurrentLocation();
  StringRef kindName;
  if (parser.parseKeyword(&kindName))
    return {};
  std::optional<RoutingKind> routing = symbolizeRoutingKind(kindName);
  if (!routing) {
    parser.emitError(kindLoc, "expected 'token_choice' or 'expert_choice', "
                              "got '")
        << kindName << "'";
    return {};
  }
  if (parser.parseLParen())
    return {};
  if (*routing == RoutingKind::token_choice) {
    if (parser.parseKeyword("top_k") || parser.parseEqual() ||
        parser.parseInteger(topK))
      return {};
  } else {
    if (parser.parseKeyword("capacity") || parser.parseEqual() ||
        parser.parseFloat(capacity))
      return {};
  }
  if (parser.parseRParen() || parser.parseComma() ||
      parser.parseKeyword("score") || parser.parseEqual())
    return {};

  SMLoc scoreLoc = parser.getCurrentLocation();
  StringRef scoreName;
  if (parser.parseKeyword(&scoreName))
    return {};
  std::optional<ScoreFunction> score = symbolizeScoreFunction(scoreName);
  if (!score) {
    parser.emitError(scoreLoc, "expected 'softmax' or 'sigmoid', got '")
        << scoreName << "'";
    return {};
  }
  bool renormalize = false;
  if (succeeded(parser.parseOptionalComma())) {
    if (parser.parseKeyword("renormalize"))
      return {};
    renormalize = true;
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<ExpertGroupAttr>(
      loc, ctx, modalities, experts, *routing, topK, llvm::APFloat(capacity),
      *score, renormalize);
}

void ExpertGroupAttr::print(AsmPrinter &printer) const {
  if (getModalities().size() == 1) {
    printer << "<modality = " << getModalities().front();
  } else {
    printer << "<modalities = [";
    llvm::interleaveComma(getModalities(), printer);
    printer << "]";
  }
  printer << ", experts = " << getExperts() << ", "
          << stringifyRoutingKind(getRouting()) << "(";
  if (getRouting() == RoutingKind::token_choice) {
    printer << "top_k = " << getTopK();
  } else {
    printer << "capacity = ";
    printer.printFloat(getCapacity());
  }
  printer << "), score = " << stringifyScoreFunction(getScore());
  if (getRenormalize())
    printer << ", renormalize";
  printer << ">";
}

bool ExpertGroupAttr::servesModality(int64_t id) const {
  return llvm::is_contained(getModalities(), id);
}

double ExpertGroupAttr::getCapacityFactor() const {
  return getCapacity().convertToDouble();
}

double ExpertGroupAttr::getSlotsPerToken() const {
  if (getRouting() == RoutingKind::token_choice)
    return static_cast<double>(getTopK());
  return getCapacityFactor();
}

int64_t ExpertGroupAttr::getExpertCapacity(int64_t groupTokens) const {
  // floor(b * c / E), evaluated left to right in double precision exactly as
  // the PyTorch reference does.
  double perExpert = static_cast<double>(groupTokens) * getCapacityFactor() /
                     static_cast<double>(getExperts());
  return static_cast<int64_t>(std::floor(perExpert));
}
