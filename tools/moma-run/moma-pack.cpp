//===- moma-pack.cpp - Package and inspect moma programs ------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// moma-pack SPEC.json -o OUT.momaprog
//   Builds a program from a program spec (a manifest whose modules name files;
//   see lib/Format/ProgramFormat.md, "Program specs") and writes it
//   atomically. Used by tests, and to package hand-written kernels.
//
// moma-pack --manifest PROGRAM.momaprog
//   Validates a program and prints its manifest as indented JSON.
//
// moma-pack --extract DIR PROGRAM.momaprog
//   Validates a program and writes the bytes of each image of each kernel
//   module (a GPU module may carry PTX and a cubin) to
//   DIR/<index>-<name>.<ptx|cubin|so> (one line per file on stdout), e.g. to
//   run ptxas on the PTX of a compiled model.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Files.h"
#include "moma/Format/ProgramFile.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <sys/stat.h>

using namespace moma::runtime;

namespace {

constexpr const char *kUsage =
    "usage: moma-pack SPEC.json -o OUT.momaprog\n"
    "       moma-pack --manifest PROGRAM.momaprog\n"
    "       moma-pack --extract DIR PROGRAM.momaprog\n";

int fail(const std::string &message) {
  std::fprintf(stderr, "moma-pack: error: %s\n", message.c_str());
  return 1;
}

/// Writes every module of \p program into \p dir; returns the exit status.
int extractModules(const Program &program, const std::string &dir) {
  struct stat info;
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    return fail(dir + ": not a directory");
  for (size_t i = 0; i < program.modules.size(); ++i) {
    const KernelModule &module = program.modules[i];
    // Module names are printable ASCII; keep only what is safe in a path.
    std::string name;
    for (char c : module.name)
      name += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' ||
               c == '_' || c == '.')
                  ? c
                  : '_';
    std::vector<ModuleImage> images = {{module.format, module.bytes}};
    images.insert(images.end(), module.alternatives.begin(),
                  module.alternatives.end());
    for (const ModuleImage &image : images) {
      const char *extension = image.format == ModuleFormat::Ptx     ? "ptx"
                              : image.format == ModuleFormat::Cubin ? "cubin"
                                                                    : "so";
      std::string path = dir + "/" + std::to_string(i) +
                         (name.empty() ? "" : "-" + name) + "." + extension;
      FILE *file = std::fopen(path.c_str(), "wb");
      if (!file)
        return fail(path + ": cannot create: " + std::strerror(errno));
      size_t written =
          std::fwrite(image.bytes.data(), 1, image.bytes.size(), file);
      if (std::fclose(file) != 0 || written != image.bytes.size()) {
        std::remove(path.c_str());
        return fail(path + ": cannot write");
      }
      std::printf("%s\t%s\t%zu kernel(s)\t%zu bytes\n", path.c_str(),
                  std::string(moduleFormatName(image.format)).c_str(),
                  module.functions.size(), image.bytes.size());
    }
  }
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  std::string spec, output, manifest, extract;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if ((arg == "-o" || arg == "--manifest") && i + 1 < argc) {
      (arg == "-o" ? output : manifest) = argv[++i];
    } else if (arg == "--extract" && i + 1 < argc && extract.empty()) {
      extract = argv[++i];
    } else if (!arg.empty() && arg[0] != '-' && spec.empty()) {
      spec = arg;
    } else {
      std::fprintf(stderr, "moma-pack: error: unexpected argument '%s'\n%s",
                   arg.c_str(), kUsage);
      return 2;
    }
  }

  if (!extract.empty()) {
    if (spec.empty() || !output.empty() || !manifest.empty()) {
      std::fputs(kUsage, stderr);
      return 2;
    }
    absl::StatusOr<Program> program = readProgram(spec);
    if (!program.ok())
      return fail(std::string(program.status().message()));
    return extractModules(*program, extract);
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
  absl::StatusOr<std::string> text = readFile(spec);
  if (!text.ok())
    return fail(std::string(text.status().message()));
  size_t slash = spec.rfind('/');
  std::string baseDir =
      slash == std::string::npos ? "." : spec.substr(0, slash);
  absl::StatusOr<Program> program = parseProgramSpec(*text, baseDir);
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
