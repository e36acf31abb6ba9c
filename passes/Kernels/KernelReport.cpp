//===- KernelReport.cpp - Kernel classes and the kernel plan report -------===//

#include "passes/Kernels/KernelReport.h"
#include "passes/Kernels/CostModel.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/Support/Format.h"

#include <map>

using namespace mlir;
using namespace moma;
using llvm::format;
using llvm::raw_string_ostream;

StringRef moma::kernelClassName(KernelClass kind) {
  switch (kind) {
  case KernelClass::Matmul:
    return "matmul";
  case KernelClass::Attention:
    return "attention";
  case KernelClass::RowReduction:
    return "row_reduction";
  case KernelClass::Selection:
    return "selection";
  case KernelClass::Elementwise:
    return "elementwise";
  }
  llvm_unreachable("unknown kernel class");
}

namespace {

/// `value` with an SI suffix and three significant digits ("1.23M").
std::string si(double value) {
  static const char *suffixes[] = {"", "K", "M", "G", "T", "P"};
  unsigned i = 0;
  while (value >= 999.5 && i + 1 < std::size(suffixes)) {
    value /= 1000;
    ++i;
  }
  std::string text;
  raw_string_ostream os(text);
  if (i == 0)
    os << format("%.0f", value);
  else
    os << format(value < 9.995   ? "%.2f%s"
                 : value < 99.95 ? "%.1f%s"
                                 : "%.0f%s",
                 value, suffixes[i]);
  return text;
}

/// Seconds in s, ms, us or ns with three significant digits.
std::string duration(double seconds) {
  static const std::pair<double, const char *> units[] = {
      {1, "s"}, {1e-3, "ms"}, {1e-6, "us"}, {1e-9, "ns"}};
  for (auto [scale, unit] : units)
    if (seconds >= scale || scale == 1e-9) {
      double value = seconds / scale;
      std::string text;
      raw_string_ostream os(text);
      os << format(value < 9.995   ? "%.2f %s"
                   : value < 99.95 ? "%.1f %s"
                                   : "%.0f %s",
                   value, unit);
      return text;
    }
  return "";
}

int64_t field(DictionaryAttr plan, StringRef name) {
  auto attr = plan.getAs<IntegerAttr>(name);
  return attr ? attr.getInt() : 0;
}

double floatField(DictionaryAttr plan, StringRef name) {
  if (auto attr = plan.getAs<IntegerAttr>(name))
    return double(attr.getInt());
  auto attr = plan.getAs<FloatAttr>(name);
  return attr ? attr.getValueAsDouble() : 0;
}

std::string tiles(DictionaryAttr plan, bool gpu) {
  auto tiling = plan.getAs<DictionaryAttr>("tiles");
  if (!tiling)
    return "-";
  if (gpu)
    return "1 output/thread";
  return ("mr" + Twine(field(tiling, "mr")) + " nr" +
          Twine(field(tiling, "nr")) + " kc" + Twine(field(tiling, "kc")) +
          " mc" + Twine(field(tiling, "mc")))
      .str();
}

std::string launch(DictionaryAttr plan, bool gpu) {
  auto shape = plan.getAs<DenseI64ArrayAttr>("launch");
  if (!shape || shape.empty())
    return "-";
  ArrayRef<int64_t> dims = shape.asArrayRef();
  if (gpu && dims.size() == 2)
    return (Twine(dims[0]) + " x " + Twine(dims[1])).str();
  // What a CPU work item is: a panel of nr columns, a row, or the one
  // thread sequential code runs on.
  auto work = plan.getAs<StringAttr>("work");
  StringRef unit = work ? work.getValue() : "items";
  std::string text = (Twine(dims[0]) + " " + unit).str();
  if (dims[0] == 1 && text.back() == 's')
    text.pop_back();
  return text;
}

std::string momaOps(DictionaryAttr plan) {
  auto ops = plan.getAs<ArrayAttr>("moma_ops");
  if (!ops || ops.empty())
    return "-";
  std::string text;
  for (auto [i, op] : llvm::enumerate(ops.getAsRange<StringAttr>()))
    text += (i ? " + " : "") + op.getValue().str();
  return text;
}

} // namespace

LogicalResult moma::printKernelReport(ModuleOp module, raw_ostream &os) {
  auto targetName = module->getAttrOfType<StringAttr>(kKernelTargetAttrName);
  std::optional<TargetModel> target =
      targetName ? TargetModel::get(targetName.getValue()) : std::nullopt;
  if (!target)
    return module.emitError("no kernel plan: run moma-kernel-plan first");

  for (auto func : module.getOps<func::FuncOp>()) {
    if (func.isExternal())
      continue;
    std::vector<SmallVector<std::string, 8>> rows;
    rows.push_back({"id", "class", "tiles", "launch", "FLOPs", "bytes", "time",
                    "moma ops"});
    double flops = 0, bytes = 0, seconds = 0;
    std::map<std::string, int> byClass;
    func.walk([&](Operation *op) {
      auto plan = op->getAttrOfType<DictionaryAttr>(kKernelAttrName);
      if (!plan || plan.getAs<StringAttr>("role").getValue() != "root")
        return;
      std::string kind = plan.getAs<StringAttr>("class").getValue().str();
      ++byClass[kind];
      flops += floatField(plan, "flops");
      bytes += floatField(plan, "bytes");
      seconds += floatField(plan, "seconds");
      rows.push_back({std::to_string(field(plan, "id")), kind,
                      tiles(plan, target->isGpu), launch(plan, target->isGpu),
                      si(floatField(plan, "flops")),
                      si(floatField(plan, "bytes")),
                      duration(floatField(plan, "seconds")), momaOps(plan)});
    });

    os << "kernels of @" << func.getSymName() << " on " << target->name
       << " (peak " << si(target->peakFlops) << "FLOP/s, "
       << si(target->bytesPerSecond) << "B/s"
       << (target->isGpu ? "; launch: grid x block" : "; launch: work items")
       << ")\n";
    // Columns padded to their widest cell; numbers right-aligned.
    SmallVector<size_t> widths(rows.front().size(), 0);
    for (const auto &row : rows)
      for (auto [i, cell] : llvm::enumerate(row))
        widths[i] = std::max(widths[i], cell.size());
    for (const auto &row : rows) {
      for (auto [i, cell] : llvm::enumerate(row)) {
        bool last = i + 1 == row.size();
        bool number = i == 0 || (i >= 4 && i <= 6);
        if (number)
          os.indent(widths[i] - cell.size()) << cell;
        else
          os << cell << (last ? "" : std::string(widths[i] - cell.size(), ' '));
        if (!last)
          os << "  ";
      }
      os << "\n";
    }
    os << "total: " << rows.size() - 1 << " kernels (";
    bool first = true;
    for (auto &[kind, count] : byClass) {
      os << (first ? "" : ", ") << count << " " << kind;
      first = false;
    }
    os << "), " << si(flops) << " FLOPs, " << si(bytes) << " bytes, "
       << duration(seconds) << " at peak\n";
  }
  return success();
}
