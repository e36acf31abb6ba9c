//===- Program.h - The compiled-program format (.momaprog) ------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The in-memory form of a compiled moma program and its file format.
///
/// A program is everything the runtime needs to execute a compiled model:
/// the target, the kernel modules (PTX, cubin or a CPU shared object), one
/// memory arena with named buffers in it, and a static launch schedule. The
/// on-disk layout (`.momaprog`: magic, version, section table, a JSON
/// manifest, the module bytes and a CRC-32) is documented in
/// lib/Runtime/ProgramFormat.md.
///
/// The reader validates every field before returning a Program, so a Program
/// obtained from parseProgram() or readProgram() satisfies validateProgram():
/// every buffer lies inside the arena, every launch names a kernel its module
/// declares, and every buffer argument points into a buffer. Damaged or
/// foreign input yields an error status naming what was wrong; it never
/// causes an out-of-bounds read or a crash.
///
/// This header is safe to include from code compiled without exceptions.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_RUNTIME_PROGRAM_H
#define MOMA_RUNTIME_PROGRAM_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

/// The newest program format version this library reads and the one it
/// writes. Files with a larger version are rejected as "written by a newer
/// moma"; every older version (1: modules without alternative images) is
/// read too.
inline constexpr uint32_t kProgramFormatVersion = 2;

/// The eight bytes every program file starts with.
inline constexpr char kProgramMagic[8] = {'M', 'O', 'M', 'A',
                                          'P', 'R', 'O', 'G'};

/// The machine a program is compiled for.
enum class Target : uint8_t {
  /// The host CPU; kernels are functions of a shared object.
  Cpu,
  /// NVIDIA Ampere (compute capability 8.0).
  Sm80,
  /// NVIDIA Hopper (compute capability 9.0), portable features only.
  Sm90,
  /// NVIDIA Hopper with the architecture-specific features (wgmma, TMA
  /// multicast, ...); runs on compute capability 9.0 only.
  Sm90a,
};

/// How the bytes of a kernel module are to be loaded.
enum class ModuleFormat : uint8_t {
  /// PTX assembly text, JIT-compiled by the CUDA driver.
  Ptx,
  /// A cubin (ELF) for exactly the program's target.
  Cubin,
  /// An ELF shared object for the host, loaded with dlopen.
  CpuSo,
};

/// What a buffer holds; decides who writes it.
enum class BufferRole : uint8_t {
  /// Set by the caller before a run.
  Input,
  /// Loaded from a weight file (or set by the caller) before a run.
  Weight,
  /// Written by the schedule; read by the caller after a run.
  Output,
  /// Temporary storage of the schedule.
  Scratch,
};

/// Element type of a buffer.
enum class ElementType : uint8_t { F32, F64, BF16, F16, I32, I64 };

/// Type of a scalar kernel argument.
enum class ScalarType : uint8_t { I32, I64, F32, F64 };

/// Returns the manifest spelling of \p target ("cpu", "sm_80", ...).
std::string_view targetName(Target target);
/// Parses a target spelling; std::nullopt when it is not one of the above.
std::optional<Target> parseTarget(std::string_view name);
/// Returns the manifest spelling of \p format ("ptx", "cubin", "cpu-so").
std::string_view moduleFormatName(ModuleFormat format);
/// Parses a module format spelling.
std::optional<ModuleFormat> parseModuleFormat(std::string_view name);
/// Returns the manifest spelling of \p role ("input", "weight", ...).
std::string_view bufferRoleName(BufferRole role);
/// Parses a buffer role spelling.
std::optional<BufferRole> parseBufferRole(std::string_view name);
/// Returns the manifest spelling of \p type ("f32", "bf16", ...).
std::string_view elementTypeName(ElementType type);
/// Parses an element type spelling.
std::optional<ElementType> parseElementType(std::string_view name);
/// Returns the size in bytes of one element of \p type.
uint64_t elementTypeSize(ElementType type);
/// Returns the manifest spelling of \p type ("i32", "i64", "f32", "f64").
std::string_view scalarTypeName(ScalarType type);
/// Parses a scalar type spelling.
std::optional<ScalarType> parseScalarType(std::string_view name);
/// Returns the size in bytes of a scalar of \p type (4 or 8).
uint64_t scalarTypeSize(ScalarType type);

/// The same kernels in another format: for GPU programs, a cubin beside the
/// PTX (or the PTX beside a cubin).
struct ModuleImage {
  /// How `bytes` is loaded: Ptx or Cubin.
  ModuleFormat format = ModuleFormat::Cubin;
  /// The image's contents.
  std::string bytes;
};

/// One kernel module: a PTX text, a cubin or a CPU shared object, and the
/// names of the kernels (entry points) it provides. A GPU module may carry
/// alternative images of the same kernels; the runtime loads the one that
/// suits the GPU it runs on (selectModuleImages()).
struct KernelModule {
  /// A name for messages ("kernels", "attention", ...); may be empty.
  std::string name;
  /// How `bytes` is loaded.
  ModuleFormat format = ModuleFormat::Ptx;
  /// The kernels launches may name, in any order; unique, non-empty.
  std::vector<std::string> functions;
  /// The module's contents.
  std::string bytes;
  /// Other images of the same kernels, each in a format distinct from
  /// `format` and from the others (GPU programs only).
  std::vector<ModuleImage> alternatives;
};

/// A named region of the arena.
struct BufferDesc {
  /// Unique, non-empty name used to set, load and read the buffer.
  std::string name;
  /// Who writes the buffer.
  BufferRole role = BufferRole::Scratch;
  /// Element type of the buffer's contents.
  ElementType type = ElementType::F32;
  /// Dimensions, outermost first; empty for a scalar.
  std::vector<int64_t> shape;
  /// Byte offset of the first element from the arena base; a multiple of the
  /// element size.
  uint64_t offset = 0;
  /// Size in bytes: the product of the shape times the element size.
  uint64_t byteSize = 0;

  /// Returns the number of elements (the product of the shape), saturating
  /// at UINT64_MAX on overflow.
  uint64_t numElements() const;
};

/// A launch grid or block size.
struct Dim3 {
  /// The x extent (>= 1).
  uint32_t x = 1;
  /// The y extent (>= 1).
  uint32_t y = 1;
  /// The z extent (>= 1).
  uint32_t z = 1;
};

/// One kernel argument: the address of an arena location, or a scalar.
struct LaunchArg {
  /// Which of the two an argument is.
  enum class Kind : uint8_t { Buffer, Scalar };
  /// The argument's kind.
  Kind kind = Kind::Buffer;
  /// For Kind::Buffer: the byte offset from the arena base.
  uint64_t offset = 0;
  /// For Kind::Scalar: the scalar's type.
  ScalarType scalarType = ScalarType::I32;
  /// For Kind::Scalar: the value's bit pattern, zero-extended to 64 bits
  /// (two's complement for integers, IEEE-754 for floats).
  uint64_t bits = 0;

  /// Returns a buffer argument pointing \p offset bytes into the arena.
  static LaunchArg buffer(uint64_t offset);
  /// Returns an i32 scalar argument.
  static LaunchArg i32(int32_t value);
  /// Returns an i64 scalar argument.
  static LaunchArg i64(int64_t value);
  /// Returns an f32 scalar argument.
  static LaunchArg f32(float value);
  /// Returns an f64 scalar argument.
  static LaunchArg f64(double value);
};

/// One entry of the launch schedule.
struct Launch {
  /// Index into Program::modules.
  uint32_t module = 0;
  /// Name of a kernel the module declares.
  std::string function;
  /// Grid size in blocks (ignored on the CPU).
  Dim3 grid;
  /// Block size in threads (ignored on the CPU).
  Dim3 block;
  /// Dynamic shared memory per block in bytes (ignored on the CPU).
  uint32_t sharedMemBytes = 0;
  /// The kernel's arguments, in order.
  std::vector<LaunchArg> args;
};

/// A compiled program.
struct Program {
  /// The machine the kernels are compiled for.
  Target target = Target::Cpu;
  /// The kernel modules.
  std::vector<KernelModule> modules;
  /// Size of the arena in bytes.
  uint64_t arenaSize = 0;
  /// Required alignment of the arena base: a power of two in [1, 65536].
  uint64_t arenaAlignment = 256;
  /// The buffers, each inside the arena.
  std::vector<BufferDesc> buffers;
  /// The launches, executed in order on one stream.
  std::vector<Launch> launches;
  /// Free-form string facts about the program for tools (for example
  /// `model`, and `modalities` / `modality_ranges`, which moma-run uses to
  /// read token files); keys and values are UTF-8 strings.
  std::map<std::string, std::string> metadata;

  /// Returns the buffer named \p name, or nullptr.
  const BufferDesc *findBuffer(std::string_view name) const;
};

/// Which image of a GPU module a session loads.
enum class ImagePreference : uint8_t {
  /// A cubin when the GPU can run it, else the PTX (JIT-compiled).
  Auto,
  /// The PTX only.
  Ptx,
  /// A cubin only.
  Cubin,
};

/// One image of a module, as selectModuleImages() returns it.
struct ImageChoice {
  /// The image's format.
  ModuleFormat format;
  /// The image's bytes (owned by the module).
  const std::string *bytes;
};

/// Returns the images of \p module (of a program for GPU \p target) that a
/// GPU of compute capability \p major.\p minor can load under
/// \p preference, best first: a cubin runs on GPUs of its target's major
/// version and at least its minor (sm_90a: on 9.0 only), and PTX on any GPU
/// of at least its target's capability (sm_90a: 9.0 only), compiled by the
/// driver at load time. With Auto, a runnable cubin comes first and the PTX
/// second, so that a driver that rejects the cubin (one older than the
/// toolkit that assembled it) still gets the PTX. Empty when no image fits.
std::vector<ImageChoice> selectModuleImages(const KernelModule &module,
                                            Target target, int major, int minor,
                                            ImagePreference preference);

/// Checks every rule of ProgramFormat.md ("Validation") on \p program:
/// targets and module formats agree, buffers are inside the arena and do not
/// overlap (scratch buffers may share bytes with other scratch buffers),
/// launches name declared kernels with valid grids, and buffer arguments
/// point into buffers. Returns an InvalidArgument error naming the offending
/// entry otherwise.
absl::Status validateProgram(const Program &program);

/// Serializes \p program into the bytes of a .momaprog file after validating
/// it.
absl::StatusOr<std::string> serializeProgram(const Program &program);

/// Parses and validates the bytes of a .momaprog file. \p sourceName (a path,
/// or "<memory>") prefixes every error message. Errors: DataLoss for damaged
/// or foreign bytes (bad magic, truncation, checksum mismatch, bad sections,
/// bad manifest), Unimplemented for a file written by a newer moma.
absl::StatusOr<Program> parseProgram(std::string_view bytes,
                                     std::string_view sourceName = "<memory>");

/// Reads and parses the .momaprog file at \p path (NotFound if it cannot be
/// opened).
absl::StatusOr<Program> readProgram(const std::string &path);

/// Writes \p program to \p path atomically: the bytes go to a temporary file
/// in the same directory, which is then renamed over \p path. On error no
/// file is left behind and an existing \p path is untouched.
absl::Status writeProgram(const Program &program, const std::string &path);

/// Builds a Program from a *program spec*: a manifest (ProgramFormat.md,
/// "Manifest") in which each module names a file ("path", relative to
/// \p baseDir) instead of a section, buffer offsets and sizes and the arena
/// size may be omitted (they are then laid out in order), buffer arguments
/// may name a buffer ("name") instead of an offset, and float scalars may
/// give a "value" instead of "bits". The result is validated.
absl::StatusOr<Program> parseProgramSpec(std::string_view specJson,
                                         const std::string &baseDir);

/// Returns the JSON manifest of \p program (as stored in a file, with
/// section numbers), indented when \p pretty is set.
std::string programManifestJson(const Program &program, bool pretty);

/// Returns the CRC-32 (IEEE 802.3, as zlib's crc32()) of \p data, continuing
/// from \p crc (pass 0 to start).
uint32_t crc32(std::string_view data, uint32_t crc = 0);

/// Incremental construction of a Program; buffers are laid out in order.
class ProgramBuilder {
public:
  /// Starts a program for \p target whose arena base is aligned to
  /// \p arenaAlignment bytes; buffers added with addBuffer() start at
  /// multiples of it.
  explicit ProgramBuilder(Target target, uint64_t arenaAlignment = 256);

  /// Adds a kernel module and returns its index.
  uint32_t addModule(ModuleFormat format, std::string bytes,
                     std::vector<std::string> functions, std::string name = "");

  /// Adds an alternative image (ModuleImage) to module \p module.
  void addModuleAlternative(uint32_t module, ModuleFormat format,
                            std::string bytes);

  /// Adds a buffer after the previous ones, at the next multiple of the arena
  /// alignment, and returns its offset.
  uint64_t addBuffer(std::string name, BufferRole role, ElementType type,
                     std::vector<int64_t> shape);

  /// Adds a buffer at an explicit \p offset (e.g. scratch space shared by
  /// buffers with disjoint lifetimes) and returns \p offset.
  uint64_t addBufferAt(std::string name, BufferRole role, ElementType type,
                       std::vector<int64_t> shape, uint64_t offset);

  /// Returns the end of the buffers added so far rounded up to the arena
  /// alignment: where addBuffer() would place a buffer next.
  uint64_t endOfBuffers() const;

  /// Returns the offset of the buffer named \p name, or std::nullopt.
  std::optional<uint64_t> bufferOffset(std::string_view name) const;

  /// Overrides the arena size; by default it is the end of the last buffer
  /// rounded up to the alignment.
  void setArenaSize(uint64_t size);

  /// Sets a metadata entry (see Program::metadata).
  void setMetadata(std::string key, std::string value);

  /// Appends a launch of \p function of module \p module.
  void addLaunch(uint32_t module, std::string function, Dim3 grid, Dim3 block,
                 std::vector<LaunchArg> args, uint32_t sharedMemBytes = 0);

  /// Returns the validated program.
  absl::StatusOr<Program> build() const;

private:
  Program program;
  uint64_t nextOffset = 0;
  std::optional<uint64_t> explicitArenaSize;
};

} // namespace moma::runtime

#endif // MOMA_RUNTIME_PROGRAM_H
