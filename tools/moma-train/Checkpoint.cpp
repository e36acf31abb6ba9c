//===- Checkpoint.cpp - moma-train's checkpoints --------------------------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "tools/moma-train/Checkpoint.h"

#include "lib/Format/Json.h"
#include "moma/Format/Files.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace moma::train {
namespace {

std::string baseName(const std::string &path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string hashText(uint64_t hash) { return absl::StrFormat("%016x", hash); }

nlohmann::ordered_json identityJson(const FileIdentity &id) {
  return {{"file", id.file}, {"size", id.size}, {"fnv1a64", hashText(id.hash)}};
}

absl::Status syncDirectory(const std::string &dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": cannot open: ", std::strerror(errno)));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return absl::PermissionDeniedError(
        absl::StrCat(dir, ": fsync failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

/// Removes the directory \p dir and the plain files in it.
void removeDirectory(const std::string &dir) {
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *entry = ::readdir(d))
      if (std::strcmp(entry->d_name, ".") && std::strcmp(entry->d_name, ".."))
        ::unlink((dir + "/" + entry->d_name).c_str());
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

bool exists(const std::string &path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0;
}

} // namespace

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    hash ^= static_cast<uint8_t>(c);
    hash *= 0x100000001b3ull;
  }
  return hash;
}

FileIdentity identifyBytes(const std::string &file, const std::string &bytes) {
  return {file, bytes.size(), fnv1a64(bytes)};
}

absl::StatusOr<FileIdentity> identifyFile(const std::string &path) {
  absl::StatusOr<std::string> bytes = runtime::readFile(path);
  if (!bytes.ok())
    return bytes.status();
  return identifyBytes(baseName(path), *bytes);
}

std::string checkpointDirectory(const std::string &path) {
  if (exists(path + "/" + kStateFile))
    return path;
  return path + "/checkpoint";
}

absl::Status writeCheckpoint(const std::string &dir, CheckpointState state,
                             const std::string &weightsBytes,
                             const std::string &optimizerBytes) {
  state.weights = identifyBytes(kWeightsFile, weightsBytes);
  state.optimizer = identifyBytes(kOptimizerFile, optimizerBytes);
  nlohmann::ordered_json json = {
      {"format", "moma-checkpoint/1"},
      {"step", state.step},
      {"rows_consumed", state.rowsConsumed},
      {"seed", state.seed},
      {"shuffle", state.shuffle ? "seeded" : "none"},
      {"elapsed_s", state.elapsedSeconds},
      {"program", identityJson(state.program)},
      {"data", identityJson(state.data)},
      {"files",
       {{kWeightsFile,
         {{"size", state.weights.size},
          {"fnv1a64", hashText(state.weights.hash)}}},
        {kOptimizerFile,
         {{"size", state.optimizer.size},
          {"fnv1a64", hashText(state.optimizer.hash)}}}}}};

  std::string pattern = dir + "/checkpoint.tmp-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (!::mkdtemp(name.data()))
    return absl::PermissionDeniedError(absl::StrCat(
        pattern, ": cannot create a directory: ", std::strerror(errno)));
  std::string temp = name.data();
  auto fail = [&](const absl::Status &status) {
    removeDirectory(temp);
    return status;
  };
  // writeFileAtomically flushes each file to disk.
  for (const auto &[file, bytes] :
       {std::pair<const char *, const std::string *>{kWeightsFile,
                                                     &weightsBytes},
        {kOptimizerFile, &optimizerBytes}})
    if (absl::Status s =
            runtime::writeFileAtomically(temp + "/" + file, *bytes);
        !s.ok())
      return fail(s);
  if (absl::Status s = runtime::writeFileAtomically(temp + "/" + kStateFile,
                                                    json.dump(1) + "\n");
      !s.ok())
    return fail(s);
  if (absl::Status s = syncDirectory(temp); !s.ok())
    return fail(s);
  ::chmod(temp.c_str(), 0755);

  std::string target = dir + "/checkpoint";
  if (!exists(target)) {
    if (::rename(temp.c_str(), target.c_str()) != 0)
      return fail(absl::PermissionDeniedError(
          absl::StrCat(target, ": rename failed: ", std::strerror(errno))));
    return syncDirectory(dir);
  }
  // Swap the new checkpoint with the previous one in one step, then delete
  // the previous one (now under the temporary name).
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, target.c_str(),
                  RENAME_EXCHANGE) != 0)
    return fail(absl::PermissionDeniedError(absl::StrCat(
        target, ": cannot swap in the new checkpoint (renameat2): ",
        std::strerror(errno))));
  absl::Status synced = syncDirectory(dir);
  removeDirectory(temp);
  return synced;
}

absl::StatusOr<CheckpointState>
readCheckpointState(const std::string &checkpointDir) {
  std::string path = checkpointDir + "/" + kStateFile;
  absl::StatusOr<std::string> text = runtime::readFile(path);
  if (!text.ok())
    return absl::NotFoundError(
        absl::StrCat("not a checkpoint: ", text.status().message()));
  auto fail = [&](const std::string &where, const std::string &rule) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, where.empty() ? "" : ": ", where, ": ", rule));
  };
  absl::StatusOr<nlohmann::json> parsed = runtime::parseJson(*text);
  if (!parsed.ok())
    return fail("", absl::StrCat("invalid JSON: ", parsed.status().message()));
  const nlohmann::json &root = *parsed;
  auto checkKeys = [&](const nlohmann::json &object, const std::string &where,
                       std::vector<std::string> keys) -> absl::Status {
    if (!object.is_object())
      return fail(where.empty() ? "(top level)" : where, "must be an object");
    for (const auto &item : object.items())
      if (std::find(keys.begin(), keys.end(), item.key()) == keys.end())
        return fail(where.empty() ? item.key() : where + "." + item.key(),
                    "unknown key");
    for (const std::string &key : keys)
      if (!object.contains(key))
        return fail(where.empty() ? key : where + "." + key, "required");
    return absl::OkStatus();
  };
  if (absl::Status s =
          checkKeys(root, "",
                    {"format", "step", "rows_consumed", "seed", "shuffle",
                     "elapsed_s", "program", "data", "files"});
      !s.ok())
    return s;
  if (root["format"] != "moma-checkpoint/1")
    return fail("format", "unsupported (this reader knows moma-checkpoint/1)");
  CheckpointState state;
  if (!root["step"].is_number_integer() || root["step"].get<int64_t>() < 1)
    return fail("step", "must be an integer >= 1");
  state.step = root["step"].get<int64_t>();
  if (!root["rows_consumed"].is_number_unsigned())
    return fail("rows_consumed", "must be an integer >= 0");
  state.rowsConsumed = root["rows_consumed"].get<uint64_t>();
  if (!root["seed"].is_number_unsigned())
    return fail("seed", "must be an integer in [0, 2^64)");
  state.seed = root["seed"].get<uint64_t>();
  if (root["shuffle"] != "seeded" && root["shuffle"] != "none")
    return fail("shuffle", "must be \"seeded\" or \"none\"");
  state.shuffle = root["shuffle"] == "seeded";
  if (!root["elapsed_s"].is_number() || !(root["elapsed_s"].get<double>() >= 0))
    return fail("elapsed_s", "must be a number >= 0");
  state.elapsedSeconds = root["elapsed_s"].get<double>();

  auto identity = [&](const nlohmann::json &object, const std::string &where,
                      bool named) -> absl::StatusOr<FileIdentity> {
    std::vector<std::string> keys = {"size", "fnv1a64"};
    if (named)
      keys.insert(keys.begin(), "file");
    if (absl::Status s = checkKeys(object, where, keys); !s.ok())
      return s;
    FileIdentity id;
    if (named) {
      if (!object["file"].is_string())
        return fail(where + ".file", "must be a string");
      id.file = object["file"].get<std::string>();
    }
    if (!object["size"].is_number_unsigned())
      return fail(where + ".size", "must be an integer >= 0");
    id.size = object["size"].get<uint64_t>();
    const nlohmann::json &hash = object["fnv1a64"];
    std::string hex = hash.is_string() ? hash.get<std::string>() : "";
    if (hex.size() != 16 ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      return fail(where + ".fnv1a64", "must be 16 lower-case hex digits");
    id.hash = std::stoull(hex, nullptr, 16);
    return id;
  };
  absl::StatusOr<FileIdentity> program =
      identity(root["program"], "program", true);
  if (!program.ok())
    return program.status();
  absl::StatusOr<FileIdentity> data = identity(root["data"], "data", true);
  if (!data.ok())
    return data.status();
  if (absl::Status s =
          checkKeys(root["files"], "files", {kWeightsFile, kOptimizerFile});
      !s.ok())
    return s;
  absl::StatusOr<FileIdentity> weights = identity(
      root["files"][kWeightsFile], std::string("files.") + kWeightsFile, false);
  if (!weights.ok())
    return weights.status();
  absl::StatusOr<FileIdentity> optimizer =
      identity(root["files"][kOptimizerFile],
               std::string("files.") + kOptimizerFile, false);
  if (!optimizer.ok())
    return optimizer.status();
  state.program = *program;
  state.data = *data;
  state.weights = *weights;
  state.optimizer = *optimizer;

  // The two tensor files must be the ones state.json was written with.
  for (FileIdentity *expected : {&state.weights, &state.optimizer}) {
    std::string file =
        expected == &state.weights ? kWeightsFile : kOptimizerFile;
    absl::StatusOr<FileIdentity> actual =
        identifyFile(checkpointDir + "/" + file);
    if (!actual.ok())
      return absl::NotFoundError(
          absl::StrCat("damaged checkpoint: ", actual.status().message()));
    if (actual->size != expected->size || actual->hash != expected->hash)
      return absl::InvalidArgumentError(absl::StrFormat(
          "damaged checkpoint: %s/%s has %u bytes and hash %s, but %s "
          "records %u bytes and hash %s",
          checkpointDir, file, actual->size, hashText(actual->hash), kStateFile,
          expected->size, hashText(expected->hash)));
    expected->file = file;
  }
  return state;
}

} // namespace moma::train
