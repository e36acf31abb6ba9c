//===- WeightList.h - The weights of a model --------------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// What the model-definition reader needs of the weight list beyond the
/// public listWeights().
///
//===----------------------------------------------------------------------===//

#ifndef LIB_FRONTEND_WEIGHTLIST_H
#define LIB_FRONTEND_WEIGHTLIST_H

#include "moma/Frontend/ModelConfig.h"

#include <optional>
#include <string>

namespace moma {

/// The name of the first tensor of \p config with a dimension or an element
/// count beyond int64, if any (its listed shape is then meaningless).
std::optional<std::string> findOversizedTensor(const ModelConfig &config);

} // namespace moma

#endif // LIB_FRONTEND_WEIGHTLIST_H
