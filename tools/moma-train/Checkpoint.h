//===- Checkpoint.h - moma-train's checkpoints ------------------*- C++ -*-===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//
///
/// \file
/// The checkpoint directory of moma-train (examples/Training.md,
/// "Checkpoints"): weights.safetensors, optimizer.safetensors and
/// state.json (moma-checkpoint/1), written atomically and checked whole
/// before a resume uses any of it.
///
//===----------------------------------------------------------------------===//

#ifndef MOMA_TOOLS_MOMA_TRAIN_CHECKPOINT_H
#define MOMA_TOOLS_MOMA_TRAIN_CHECKPOINT_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <string_view>

namespace moma::train {

/// A file as a checkpoint names it: its name, size and FNV-1a hash. (Not
/// the CRC-32: a program or corpus ends with its own CRC-32, and the CRC-32
/// of such a file is the same constant for all of them.)
struct FileIdentity {
  /// The file's name (its path's last component), for messages.
  std::string file;
  /// Its size in bytes.
  uint64_t size = 0;
  /// The 64-bit FNV-1a hash of its bytes.
  uint64_t hash = 0;
};

/// Returns the identity of the file at \p path (reading it whole).
absl::StatusOr<FileIdentity> identifyFile(const std::string &path);
/// Returns the 64-bit FNV-1a hash of \p bytes (offset basis
/// 0xcbf29ce484222325, prime 0x100000001b3).
uint64_t fnv1a64(std::string_view bytes);
/// Returns the identity of \p bytes, named \p file.
FileIdentity identifyBytes(const std::string &file, const std::string &bytes);

/// What state.json records.
struct CheckpointState {
  /// The last step done.
  int64_t step = 0;
  /// The data position: rows of the row stream consumed.
  uint64_t rowsConsumed = 0;
  /// The batch order's seed.
  uint64_t seed = 0;
  /// Whether the batch order is shuffled (`seeded`) or not (`none`).
  bool shuffle = true;
  /// Seconds of training up to `step`, across resumes.
  double elapsedSeconds = 0;
  /// The program and the data file trained on.
  FileIdentity program, data;
  /// The two safetensors files of the checkpoint.
  FileIdentity weights, optimizer;
};

/// The names of the files of a checkpoint directory.
inline constexpr const char *kWeightsFile = "weights.safetensors";
inline constexpr const char *kOptimizerFile = "optimizer.safetensors";
inline constexpr const char *kStateFile = "state.json";

/// Writes the checkpoint \p dir / "checkpoint" atomically: the files into a
/// fresh sibling directory, each flushed to disk, then swapped with the
/// previous checkpoint (deleted after the swap). \p state's weights and
/// optimizer identities are filled from the bytes given.
absl::Status writeCheckpoint(const std::string &dir, CheckpointState state,
                             const std::string &weightsBytes,
                             const std::string &optimizerBytes);

/// Reads and checks \p checkpointDir / state.json, and that both
/// safetensors files beside it have the size and hash it records.
absl::StatusOr<CheckpointState>
readCheckpointState(const std::string &checkpointDir);

/// Returns the checkpoint directory that \p path names: \p path itself when
/// it holds a state.json, else \p path / "checkpoint".
std::string checkpointDirectory(const std::string &path);

} // namespace moma::train

#endif // MOMA_TOOLS_MOMA_TRAIN_CHECKPOINT_H
