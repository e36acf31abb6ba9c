//===- ScratchPlanner.cpp - Placing buffers by lifetime -------------------===//

#include "passes/Support/ScratchPlanner.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

uint64_t moma::elementStorageBytes(Type type) {
  if (type.isIndex())
    return 8;
  if (type.isIntOrFloat())
    return (type.getIntOrFloatBitWidth() + 7) / 8;
  return 0;
}

uint64_t moma::planLiveIntervals(llvm::MutableArrayRef<LiveInterval> intervals,
                                 uint64_t base, uint64_t alignment,
                                 bool reuse) {
  auto alignUp = [&](uint64_t v) {
    return (v + alignment - 1) / alignment * alignment;
  };
  std::vector<size_t> order;
  for (size_t i = 0; i < intervals.size(); ++i)
    if (intervals[i].first <= intervals[i].last)
      order.push_back(i);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_pair(intervals[a].first, a) <
           std::make_pair(intervals[b].first, b);
  });
  base = alignUp(base);
  uint64_t end = base;
  // Live buffers by offset: offset -> (end, last use).
  std::multimap<uint64_t, std::pair<uint64_t, size_t>> live;
  for (size_t i : order) {
    LiveInterval &interval = intervals[i];
    uint64_t size = alignUp(std::max<uint64_t>(interval.bytes, 1));
    if (!reuse) {
      interval.offset = alignUp(end);
      end = interval.offset + size;
      continue;
    }
    for (auto it = live.begin(); it != live.end();)
      it = it->second.second < interval.first ? live.erase(it) : std::next(it);
    uint64_t candidate = base;
    for (const auto &[offset, entry] : live) {
      if (candidate + size <= offset)
        break;
      candidate = std::max(candidate, alignUp(entry.first));
    }
    interval.offset = candidate;
    live.insert({candidate, {candidate + size, interval.last}});
    end = std::max(end, candidate + size);
  }
  return alignUp(end);
}
