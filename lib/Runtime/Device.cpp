//===- Device.cpp - The runtime's device back ends ------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "Device.h"

#include <cstring>

namespace moma::runtime {

Device::~Device() = default;

PackedArgs packArgs(const Launch &launch, uint64_t arenaBase) {
  PackedArgs packed;
  packed.slots.assign(launch.args.size(), 0);
  for (size_t i = 0; i < launch.args.size(); ++i) {
    const LaunchArg &arg = launch.args[i];
    if (arg.kind == LaunchArg::Kind::Buffer) {
      packed.slots[i] = arenaBase + arg.offset;
      continue;
    }
    if (scalarTypeSize(arg.scalarType) == 4) {
      uint32_t value = static_cast<uint32_t>(arg.bits);
      std::memcpy(&packed.slots[i], &value, 4);
    } else {
      packed.slots[i] = arg.bits;
    }
  }
  packed.pointers.resize(launch.args.size());
  for (size_t i = 0; i < launch.args.size(); ++i)
    packed.pointers[i] = &packed.slots[i];
  return packed;
}

} // namespace moma::runtime
