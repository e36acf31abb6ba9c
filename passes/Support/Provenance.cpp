//===- Provenance.cpp - Which moma op a lowered op came from --------------===//

#include "passes/Support/Provenance.h"

#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace moma;

/// The metadata of a provenance location: the full op name ("moma.norm").
static StringAttr provenanceMetadata(Location loc) {
  auto fused = dyn_cast<FusedLoc>(loc);
  if (!fused)
    return {};
  auto name = dyn_cast_or_null<StringAttr>(fused.getMetadata());
  if (!name || !name.getValue().starts_with("moma."))
    return {};
  return name;
}

Location moma::provenanceLocation(Operation *op) {
  Location loc = op->getLoc();
  if (provenanceMetadata(loc))
    return loc;
  return FusedLoc::get(
      op->getContext(), {loc},
      StringAttr::get(op->getContext(), op->getName().getStringRef()));
}

std::optional<Provenance> moma::provenanceOf(Location loc) {
  // The folder may fuse a provenance location into a larger one (constants
  // merged from several ops): take the first provenance found.
  std::optional<Provenance> found;
  loc->walk([&](Location inner) {
    StringAttr metadata = provenanceMetadata(inner);
    if (!metadata)
      return WalkResult::advance();
    Provenance provenance;
    provenance.op = metadata.getValue().drop_front(strlen("moma."));
    for (Location part : cast<FusedLoc>(inner).getLocations())
      if (auto name = dyn_cast<NameLoc>(part)) {
        provenance.name = name.getName().getValue();
        break;
      }
    found = provenance;
    return WalkResult::interrupt();
  });
  return found;
}

std::string Provenance::label() const {
  if (name.empty())
    return op.str();
  return (op + "(" + name + ")").str();
}
