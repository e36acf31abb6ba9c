//===- moma-config-check.cpp - Print what the C++ reader reads ------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// A test tool for the C++ model-definition reader (moma/Frontend/
/// ModelConfig.h). It prints its reading of a model file in the text formats
/// of the PyTorch reference, so that lit can compare the two readers:
///
///   moma-config-check MODEL.json                 ok NAME: ... (validate)
///   moma-config-check --expand MODEL.json        validate --expand
///   moma-config-check --list-weights MODEL.json  validate --list-weights
///   moma-config-check --init-seed N -o W.safetensors MODEL.json
///   moma-config-check --batch-json MODEL.json... one JSON object per file
///
/// An invalid file prints `moma-config-check: error: FILE: PATH: RULE` on
/// stderr and exits with status 1 (--batch-json reports it in the object).
///
//===----------------------------------------------------------------------===//

#include "moma/Frontend/ModelConfig.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <string>

using namespace llvm;

static cl::list<std::string> inputFiles(cl::Positional, cl::OneOrMore,
                                        cl::desc("<model.json>..."));
static cl::opt<bool> expand("expand",
                            cl::desc("Print the expanded configuration "
                                     "(like `validate --expand`)"));
static cl::opt<bool>
    listWeightsOpt("list-weights",
                   cl::desc("Print every tensor: name, shape, init rule "
                            "(like `validate --list-weights`)"));
static cl::opt<bool> batchJson(
    "batch-json",
    cl::desc("For each file, print one line of JSON with the summary, the "
             "expanded configuration, the weight list or the error"));
static cl::opt<uint64_t> initSeed("init-seed",
                                  cl::desc("Write seeded initial weights"));
static cl::opt<std::string> outputFile("o", cl::desc("Weights file to write"),
                                       cl::value_desc("file"));

static StringRef initName(moma::WeightInit init) {
  switch (init) {
  case moma::WeightInit::Normal:
    return "normal";
  case moma::WeightInit::Ones:
    return "ones";
  case moma::WeightInit::Zeros:
    return "zeros";
  }
  llvm_unreachable("unknown init");
}

/// The `validate --list-weights` lines: `name [d0, d1] init`.
static std::string weightLines(const moma::ModelConfig &config) {
  std::string text;
  raw_string_ostream os(text);
  for (const moma::WeightSpec &spec : moma::listWeights(config)) {
    os << spec.name << " [";
    interleaveComma(spec.shape, os);
    os << "] " << initName(spec.init) << "\n";
  }
  return text;
}

/// The `validate` line: `ok NAME: L layers (N moe, K mod), T tensors, P
/// parameters`.
static std::string summaryLine(const moma::ModelConfig &config) {
  size_t moe = 0, mod = 0;
  for (const moma::LayerConfig &layer : config.layers) {
    moe += layer.ffn.kind == moma::FfnConfig::Kind::MoE;
    mod += layer.mod;
  }
  std::vector<moma::WeightSpec> specs = moma::listWeights(config);
  // Every tensor has at most 2^63 - 1 elements; the sum may exceed 64 bits.
  unsigned __int128 parameters = 0;
  for (const moma::WeightSpec &spec : specs) {
    unsigned __int128 elements = 1;
    for (int64_t dim : spec.shape)
      elements *= static_cast<uint64_t>(dim);
    parameters += elements;
  }
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + parameters % 10));
    parameters /= 10;
  } while (parameters);
  return formatv("ok {0}: {1} layers ({2} moe, {3} mod), {4} tensors, {5} "
                 "parameters",
                 config.name, config.numLayers, moe, mod, specs.size(), digits)
      .str();
}

/// Makes \p text valid UTF-8 for JSON output: the reader's strings are, but
/// an error names the file as given, in any bytes.
static std::string toUTF8(StringRef text) { return json::fixUTF8(text); }

/// Prints one `--batch-json` line for \p path.
static void printBatchLine(StringRef path) {
  json::Object line{{"file", path}};
  Expected<moma::ModelConfig> config = moma::loadModelConfig(path);
  if (!config) {
    line["error"] = toUTF8(toString(config.takeError()));
  } else {
    line["error"] = nullptr;
    line["summary"] = toUTF8(summaryLine(*config));
    line["expand"] = config->toExpandedJson();
    line["weights"] = toUTF8(weightLines(*config));
  }
  outs() << json::Value(std::move(line)) << "\n";
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  cl::ParseCommandLineOptions(argc, argv,
                              "moma model-definition reader check\n");
  auto fail = [](const Twine &message) {
    errs() << "moma-config-check: error: " << message << "\n";
    return 1;
  };
  if (batchJson) {
    for (const std::string &path : inputFiles)
      printBatchLine(path);
    return 0;
  }
  if (initSeed.getNumOccurrences() && outputFile.empty())
    return fail("--init-seed needs -o FILE");
  for (const std::string &path : inputFiles) {
    Expected<moma::ModelConfig> config = moma::loadModelConfig(path);
    if (!config)
      return fail(toString(config.takeError()));
    if (initSeed.getNumOccurrences()) {
      if (Error err = moma::writeInitialWeights(*config, initSeed, outputFile))
        return fail(toString(std::move(err)));
      continue;
    }
    if (expand)
      outs() << formatv("{0:2}", config->toExpandedJson()) << "\n";
    else if (listWeightsOpt)
      outs() << weightLines(*config);
    else
      outs() << summaryLine(*config) << "\n";
  }
  return 0;
}
