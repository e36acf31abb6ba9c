//===- moma-opt.cpp - The moma optimizer driver ---------------------------===//
//
// mlir-opt for moma: parses moma IR, runs passes and pipelines, prints the
// result. Registers only the dialects and passes moma uses.
//
//===----------------------------------------------------------------------===//

#include "moma/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  moma::registerAllPasses();
  mlir::DialectRegistry registry;
  moma::registerAllDialects(registry);
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "moma optimizer driver: moma dialect passes and pipelines\n",
      registry));
}
