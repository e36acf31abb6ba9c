//===- moma-pack.cpp - Package and inspect moma programs ------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// moma-pack SPEC.json -o OUT.momaprog
//   Builds a program from a program spec (a manifest whose modules name files;
//   see lib/Runtime/ProgramFormat.md, "Program specs") and writes it
//   atomically. Used by tests, and to package hand-written kernels.
//
// moma-pack --manifest PROGRAM.momaprog
//   Validates a program and prints its manifest as indented JSON.
//
//===----------------------------------------------------------------------===//

#include "moma/Runtime/Program.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

using namespace moma::runtime;

namespace {

constexpr const char *kUsage = "usage: moma-pack SPEC.json -o OUT.momaprog\n"
                               "       moma-pack --manifest PROGRAM.momaprog\n";

int fail(const std::string &message) {
  std::fprintf(stderr, "moma-pack: error: %s\n", message.c_str());
  return 1;
}

} // namespace

int main(int argc, char **argv) {
  std::string spec, output, manifest;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "-o" || arg == "--manifest") && i + 1 < argc) {
      (arg == "-o" ? output : manifest) = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && spec.empty()) {
      spec = arg;
    } else {
      std::fprintf(stderr, "moma-pack: error: unexpected argument '%s'\n%s",
                   arg.c_str(), kUsage);
      return 2;
    }
  }

  if (!manifest.empty()) {
    if (!spec.empty() || !output.empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    absl::StatusOr<Program> program = readProgram(manifest);
    if (!program.ok())
      return fail(std::string(program.status().message()));
    std::printf("%s\n", programManifestJson(*program, /*pretty=*/true).c_str());
    return 0;
  }

  if (spec.empty() || output.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  FILE *file = std::fopen(spec.c_str(), "rb");
  if (!file)
    return fail(spec + ": cannot open: " + std::strerror(errno));
  std::string text;
  char chunk[1 << 16];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), file)) > 0)
    text.append(chunk, n);
  std::fclose(file);
  size_t slash = spec.rfind('/');
  std::string baseDir =
      slash == std::string::npos ? "." : spec.substr(0, slash);
  absl::StatusOr<Program> program = parseProgramSpec(text, baseDir);
  if (!program.ok())
    return fail(spec + ": " + std::string(program.status().message()));
  if (absl::Status status = writeProgram(*program, output); !status.ok())
    return fail(std::string(status.message()));
  size_t launches = program->launches.size();
  std::printf("moma-pack: wrote %s (target %s, %zu module(s), %zu buffer(s), "
              "%zu launch(es))\n",
              output.c_str(), std::string(targetName(program->target)).c_str(),
              program->modules.size(), program->buffers.size(), launches);
  return 0;
}
