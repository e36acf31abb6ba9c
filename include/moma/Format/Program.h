//===- Program.h - The compiled-program data model -------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The in-memory form of a compiled moma program: plain data, with no
/// dependency but the C++ standard library, so that compiler headers may
/// include it. Reading, writing and validating programs is in
/// moma/Format/ProgramFile.h, building them in moma/Format/ProgramBuilder.h
/// (both report errors as absl statuses).
///
/// A program is everything the runtime needs to execute a compiled model:
/// the target, the kernel modules (PTX, cubin or a CPU shared object), one
/// memory arena with named buffers in it, and a static launch schedule. The
/// on-disk layout (`.momaprog`: magic, version, section table, a JSON
/// manifest, the module bytes and a CRC-32) is documented in
/// lib/Format/ProgramFormat.md.
///
/// This header is safe to include from code compiled without exceptions.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_FORMAT_PROGRAM_H
#define MOMA_FORMAT_PROGRAM_H

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moma::runtime {

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

/// An x86-64 microarchitecture level (the x86-64 psABI's): the instructions
/// the kernels of a CPU program may use, and so the CPUs that can run it.
enum class CpuLevel : uint8_t {
  /// Any x86-64 CPU (SSE2).
  X86_64,
  /// x86-64 + CMPXCHG16B, LAHF/SAHF, POPCNT, SSE3, SSSE3, SSE4.1, SSE4.2.
  X86_64_V2,
  /// x86-64-v2 + AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE, OSXSAVE.
  X86_64_V3,
  /// x86-64-v3 + AVX-512F, AVX-512BW, AVX-512CD, AVX-512DQ, AVX-512VL.
  X86_64_V4,
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
  /// Persistent state of the program (an optimizer's moments): zero-filled
  /// when a session starts, read and written by the schedule, kept between
  /// runs; the caller may read it (to save it) or set it (to restore it).
  /// Program format version 4.
  State,
};

/// Element type of a buffer.
enum class ElementType : uint8_t { F32, F64, BF16, F16, I32, I64 };

/// Type of a scalar kernel argument.
enum class ScalarType : uint8_t { I32, I64, F32, F64 };

/// Returns the manifest spelling of \p target ("cpu", "sm_80", ...).
std::string_view targetName(Target target);
/// Parses a target spelling; std::nullopt when it is not one of the above.
std::optional<Target> parseTarget(std::string_view name);
/// Returns the manifest spelling of \p level ("x86-64", "x86-64-v2", ...).
std::string_view cpuLevelName(CpuLevel level);
/// Parses a CPU level spelling; std::nullopt when it is not one of the above.
std::optional<CpuLevel> parseCpuLevel(std::string_view name);
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
  /// For `cpu` programs: the CPU level (a cpuLevelName() spelling) the
  /// kernels are compiled for, which the runtime checks the host CPU against
  /// before loading them; empty when the program records none, which means
  /// "x86-64". GPU programs leave it empty.
  std::string cpuLevel;
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
  /// Returns the CPU level of a `cpu` program: cpuLevel parsed, X86_64 when
  /// it is empty, std::nullopt when it is not a level's spelling.
  std::optional<CpuLevel> requiredCpuLevel() const;
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

} // namespace moma::runtime

#endif // MOMA_FORMAT_PROGRAM_H
