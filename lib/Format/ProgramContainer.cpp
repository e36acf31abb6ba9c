//===- ProgramContainer.cpp - The .momaprog container ---------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
//
// The byte layout of a program file (ProgramFormat.md, "Container"): header,
// section table, manifest and module sections, CRC-32; and whole-file reads
// and atomic writes of programs.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/Files.h"
#include "moma/Format/ProgramFile.h"

#include "lib/Format/Json.h"
#include "lib/Format/ProgramManifest.h"
#include "lib/Format/Strings.h"

#include "absl/strings/str_format.h"

#include <array>
#include <cstring>
#include <vector>

namespace moma::runtime {

//===----------------------------------------------------------------------===//
// CRC-32
//===----------------------------------------------------------------------===//

namespace {

std::array<uint32_t, 256> makeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

} // namespace

uint32_t crc32(std::string_view data, uint32_t crc) {
  static const std::array<uint32_t, 256> table = makeCrcTable();
  crc = ~crc;
  for (unsigned char byte : data)
    crc = table[(crc ^ byte) & 0xff] ^ (crc >> 8);
  return ~crc;
}

//===----------------------------------------------------------------------===//
// Container
//===----------------------------------------------------------------------===//

namespace {

constexpr uint64_t kHeaderSize = 32;
constexpr uint64_t kSectionEntrySize = 24;
constexpr uint64_t kChecksumSize = 4;
constexpr uint64_t kSectionAlignment = 16;
constexpr uint32_t kMaxSections = 1u << 20;
constexpr uint32_t kSectionManifest = 1;
constexpr uint32_t kSectionModule = 2;

void putU32(std::string &out, uint32_t v) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void putU64(std::string &out, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void setU64(std::string &out, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
/// Reads a little-endian u32 at \p at; the caller checks bounds.
uint32_t getU32(std::string_view in, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}
uint64_t getU64(std::string_view in, size_t at) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | static_cast<unsigned char>(in[at + i]);
  return v;
}

} // namespace

absl::StatusOr<std::string> serializeProgram(const Program &program) {
  if (absl::Status status = validateProgram(program); !status.ok())
    return absl::InvalidArgumentError(
        cat("cannot write an invalid program: ", status.message()));
  std::string manifest = programManifestJson(program, /*pretty=*/false);
  std::vector<std::pair<uint32_t, std::string_view>> sections;
  sections.emplace_back(kSectionManifest, manifest);
  for (const KernelModule &module : program.modules) {
    sections.emplace_back(kSectionModule, module.bytes);
    for (const ModuleImage &image : module.alternatives)
      sections.emplace_back(kSectionModule, image.bytes);
  }

  std::string out(kProgramMagic, sizeof(kProgramMagic));
  putU32(out, kProgramFormatVersion);
  putU32(out, 0); // flags
  putU64(out, 0); // file size, patched below
  putU32(out, static_cast<uint32_t>(sections.size()));
  putU32(out, 0); // reserved
  size_t tableAt = out.size();
  out.resize(out.size() + sections.size() * kSectionEntrySize, '\0');
  for (size_t i = 0; i < sections.size(); ++i) {
    out.resize((out.size() + kSectionAlignment - 1) / kSectionAlignment *
                   kSectionAlignment,
               '\0');
    std::string entry;
    putU32(entry, sections[i].first);
    putU32(entry, 0);
    putU64(entry, out.size());
    putU64(entry, sections[i].second.size());
    out.replace(tableAt + i * kSectionEntrySize, kSectionEntrySize, entry);
    out.append(sections[i].second);
  }
  setU64(out, 16, out.size() + kChecksumSize);
  putU32(out, crc32(out));
  return out;
}

absl::StatusOr<Program> parseProgram(std::string_view bytes,
                                     std::string_view sourceName) {
  auto damaged = [&](const std::string &message) {
    return absl::DataLossError(cat(sourceName, ": ", message));
  };
  uint64_t size = bytes.size();
  if (size < sizeof(kProgramMagic) ||
      std::memcmp(bytes.data(), kProgramMagic, sizeof(kProgramMagic)) != 0)
    return damaged("not a moma program (the file does not start with "
                   "\"MOMAPROG\")");
  if (size < 12)
    return damaged(
        cat("truncated: ", size, " bytes is too short for the header"));
  uint32_t version = getU32(bytes, 8);
  if (version > kProgramFormatVersion)
    return absl::UnimplementedError(
        cat(sourceName, ": written by a newer moma (program format version ",
            version, "; this runtime reads versions up to ",
            kProgramFormatVersion, ")"));
  if (version == 0)
    return damaged("invalid program format version 0");
  if (size < kHeaderSize + kChecksumSize)
    return damaged(
        cat("truncated: ", size, " bytes is too short for the header"));
  uint64_t declaredSize = getU64(bytes, 16);
  if (declaredSize != size)
    return damaged(declaredSize > size
                       ? cat("truncated: the header says ", declaredSize,
                             " bytes, the file has ", size)
                       : cat("the header says ", declaredSize,
                             " bytes, but the file has ", size,
                             " (trailing data)"));
  uint32_t stored = getU32(bytes, size - kChecksumSize);
  uint32_t computed = crc32(bytes.substr(0, size - kChecksumSize));
  if (stored != computed)
    return damaged(absl::StrFormat("checksum mismatch (stored 0x%08x, "
                                   "computed 0x%08x): the file is damaged",
                                   stored, computed));
  if (uint32_t flags = getU32(bytes, 12); flags != 0)
    return damaged(absl::StrFormat("unknown header flags 0x%08x", flags));
  if (uint32_t reserved = getU32(bytes, 28); reserved != 0)
    return damaged("the reserved header field is not zero");
  uint32_t count = getU32(bytes, 24);
  if (count == 0 || count > kMaxSections)
    return damaged(cat("invalid section count ", count));
  uint64_t payloadEnd = size - kChecksumSize;
  uint64_t tableEnd = kHeaderSize + uint64_t(count) * kSectionEntrySize;
  if (tableEnd > payloadEnd)
    return damaged(cat("the section table (", count,
                       " entries) extends past the end of the file"));

  struct Section {
    uint32_t kind;
    uint64_t offset, size;
  };
  std::vector<Section> sections;
  for (uint32_t i = 0; i < count; ++i) {
    size_t at = kHeaderSize + size_t(i) * kSectionEntrySize;
    Section section{getU32(bytes, at), getU64(bytes, at + 8),
                    getU64(bytes, at + 16)};
    if (section.kind != kSectionManifest && section.kind != kSectionModule)
      return damaged(cat("section ", i, " has unknown kind ", section.kind));
    if (getU32(bytes, at + 4) != 0)
      return damaged(cat("section ", i, ": the reserved field is not zero"));
    if (section.offset < tableEnd || section.offset > payloadEnd ||
        section.size > payloadEnd - section.offset)
      return damaged(cat("section ", i, " (bytes [", section.offset, ", ",
                         section.offset + section.size,
                         ")) lies outside the data area [", tableEnd, ", ",
                         payloadEnd, ")"));
    if (i == 0 && section.kind != kSectionManifest)
      return damaged("section 0 is not the manifest");
    if (i != 0 && section.kind == kSectionManifest)
      return damaged(cat("section ", i, " is a second manifest"));
    sections.push_back(section);
  }
  {
    std::vector<Section> sorted = sections;
    std::sort(
        sorted.begin(), sorted.end(),
        [](const Section &a, const Section &b) { return a.offset < b.offset; });
    for (size_t i = 1; i < sorted.size(); ++i)
      if (sorted[i - 1].offset + sorted[i - 1].size > sorted[i].offset)
        return damaged("two sections overlap");
  }

  std::string_view manifestText =
      bytes.substr(sections[0].offset, sections[0].size);
  absl::StatusOr<OrderedJson> manifest = parseOrderedJson(manifestText);
  if (!manifest.ok())
    return damaged(cat("the manifest is ", manifest.status().message()));

  std::vector<bool> used(sections.size(), false);
  used[0] = true;
  absl::StatusOr<Program> program = readManifest(
      *manifest, /*spec=*/false,
      [&](const OrderedJson &entry,
          const std::string &where) -> absl::StatusOr<std::string> {
        auto it = entry.find("section");
        if (it == entry.end())
          return absl::InvalidArgumentError(
              cat(where, ": missing key \"section\""));
        if (!it->is_number_unsigned())
          return absl::InvalidArgumentError(
              cat(where, ".section: expected a non-negative integer"));
        uint64_t index = it->get<uint64_t>();
        if (index == 0 || index >= sections.size())
          return absl::InvalidArgumentError(
              cat(where, ".section: ", index,
                  " is not a module section (the file has ", sections.size(),
                  " sections)"));
        if (used[index])
          return absl::InvalidArgumentError(
              cat(where, ".section: section ", index, " is used twice"));
        used[index] = true;
        return std::string(
            bytes.substr(sections[index].offset, sections[index].size));
      });
  if (!program.ok())
    return damaged(std::string(program.status().message()));
  for (size_t i = 0; i < used.size(); ++i)
    if (!used[i])
      return damaged(cat("section ", i, " is not used by any module"));
  for (size_t i = 0; i < program->modules.size(); ++i)
    if (version < 2 && !program->modules[i].alternatives.empty())
      return damaged(cat("module ", i,
                         " has alternative images, which program format "
                         "version ",
                         version, " does not have (they came with version 2)"));
  if (version < 3 && !program->cpuLevel.empty())
    return damaged(cat("the manifest records a CPU level (\"cpu\"), which "
                       "program format version ",
                       version, " does not have (it came with version 3)"));
  if (version < 4)
    for (const BufferDesc &buffer : program->buffers)
      if (buffer.role == BufferRole::State)
        return damaged(cat("buffer '", buffer.name,
                           "' has role \"state\", which program format "
                           "version ",
                           version, " does not have (it came with version 4)"));
  if (absl::Status status = validateProgram(*program); !status.ok())
    return damaged(cat("invalid program: ", status.message()));
  return program;
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

absl::StatusOr<Program> readProgram(const std::string &path) {
  absl::StatusOr<std::string> bytes = readFile(path);
  if (!bytes.ok())
    return bytes.status();
  return parseProgram(*bytes, path);
}

absl::Status writeProgram(const Program &program, const std::string &path) {
  absl::StatusOr<std::string> bytes = serializeProgram(program);
  if (!bytes.ok())
    return bytes.status();
  return writeFileAtomically(path, *bytes);
}

} // namespace moma::runtime
