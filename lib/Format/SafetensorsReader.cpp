//===- SafetensorsReader.cpp - Bounds-checked safetensors reader ----------===//
//
// Part of the moma project.
//
//===----------------------------------------------------------------------===//

#include "moma/Format/SafetensorsReader.h"

#include "lib/Format/Errors.h"
#include "lib/Format/Json.h"
#include "lib/Format/Strings.h"
#include "moma/Format/FloatConversion.h"

#include "absl/strings/str_join.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace moma::runtime {
namespace {

/// Largest JSON header accepted (the reference implementation's limit).
constexpr uint64_t kMaxHeaderSize = 100u << 20;

std::string formatShape(const std::vector<int64_t> &shape) {
  return cat("[", absl::StrJoin(shape, ", "), "]");
}

absl::Status damaged(const std::string &file, const std::string &message) {
  return makeError(MOMA_STATUS_INVALID_WEIGHTS, cat(file, ": ", message));
}

bool isFloatStorage(DType type) {
  return type == DType::F32 || type == DType::F64 || type == DType::F16 ||
         type == DType::BF16;
}

bool isFloatBuffer(ElementType type) {
  return type == ElementType::F32 || type == ElementType::F64 ||
         type == ElementType::F16 || type == ElementType::BF16;
}

template <typename T> T load(const char *p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T> void store(char *p, T value) {
  std::memcpy(p, &value, sizeof(T));
}

double loadFloat(DType type, const char *p) {
  switch (type) {
  case DType::F64:
    return load<double>(p);
  case DType::F32:
    return load<float>(p);
  case DType::F16:
    return halfToDouble(load<uint16_t>(p));
  case DType::BF16:
    return bfloat16ToDouble(load<uint16_t>(p));
  default:
    return 0;
  }
}

void storeFloat(ElementType type, char *p, double value) {
  switch (type) {
  case ElementType::F64:
    store<double>(p, value);
    break;
  case ElementType::F32:
    store<float>(p, static_cast<float>(value));
    break;
  case ElementType::F16:
    store<uint16_t>(p, doubleToHalf(value));
    break;
  case ElementType::BF16:
    store<uint16_t>(p, doubleToBFloat16(value));
    break;
  default:
    break;
  }
}

} // namespace

uint64_t SafetensorsTensor::numElements() const {
  uint64_t count = 1;
  for (int64_t dim : shape)
    count *= static_cast<uint64_t>(dim); // the reader checked the product
  return count;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::open(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT
               ? absl::NotFoundError(cat(path, ": no such file"))
               : makeError(MOMA_STATUS_IO_ERROR,
                           cat(path, ": cannot open: ", std::strerror(errno)));
  struct stat info;
  if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    ::close(fd);
    return makeError(MOMA_STATUS_IO_ERROR, cat(path, ": not a regular file"));
  }
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->fileName = path;
  size_t size = static_cast<size_t>(info.st_size);
  if (size > 0) {
    void *map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      int saved = errno;
      ::close(fd);
      return makeError(MOMA_STATUS_IO_ERROR,
                       cat(path, ": cannot map: ", std::strerror(saved)));
    }
    file->mapped = static_cast<const char *>(map);
    file->mappedSize = size;
    file->contents = std::string_view(file->mapped, size);
  }
  ::close(fd);
  if (absl::Status status = file->parse(); !status.ok())
    return status;
  return file;
}

absl::StatusOr<std::unique_ptr<SafetensorsFile>>
SafetensorsFile::fromBytes(std::string bytes, std::string name) {
  std::unique_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->fileName = std::move(name);
  file->owned = std::move(bytes);
  file->contents = file->owned;
  if (absl::Status status = file->parse(); !status.ok())
    return status;
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapped)
    ::munmap(const_cast<char *>(mapped), mappedSize);
}

absl::Status SafetensorsFile::parse() {
  if (contents.size() < 8)
    return damaged(fileName, cat("not a safetensors file: ", contents.size(),
                                 " bytes is too short for the header length"));
  uint64_t headerSize = 0;
  for (int i = 7; i >= 0; --i)
    headerSize = (headerSize << 8) | static_cast<unsigned char>(contents[i]);
  if (headerSize > kMaxHeaderSize)
    return damaged(fileName,
                   cat("header length ", headerSize, " exceeds the limit of ",
                       kMaxHeaderSize, " bytes"));
  if (headerSize > contents.size() - 8)
    return damaged(fileName,
                   cat("truncated: the header length is ", headerSize,
                       " bytes, but only ", contents.size() - 8, " follow"));
  std::string_view header = contents.substr(8, headerSize);
  dataBytes = contents.substr(8 + headerSize);

  absl::StatusOr<nlohmann::json> root = parseJson(header);
  if (!root.ok())
    return damaged(fileName, cat("the header is ", root.status().message()));
  if (!root->is_object())
    return damaged(fileName, "the header is not a JSON object");

  for (const auto &[name, entry] : root->items()) {
    std::string where = cat("tensor '", name, "'");
    if (name == "__metadata__") {
      if (!entry.is_object())
        return damaged(fileName, "__metadata__ is not an object");
      for (const auto &item : entry.items()) {
        if (!item.value().is_string())
          return damaged(fileName, cat("__metadata__ entry '", item.key(),
                                       "' is not a string"));
        metadataMap[item.key()] = item.value().get<std::string>();
      }
      continue;
    }
    if (name.empty())
      return damaged(fileName, "a tensor has an empty name");
    if (!entry.is_object())
      return damaged(fileName, where + ": expected an object");
    for (const auto &item : entry.items())
      if (item.key() != "dtype" && item.key() != "shape" &&
          item.key() != "data_offsets")
        return damaged(fileName,
                       cat(where, ": unknown key \"", item.key(), "\""));
    SafetensorsTensor tensor;
    tensor.name = name;

    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string())
      return damaged(fileName, where + ": missing string \"dtype\"");
    const std::string &spelling = dtype->get_ref<const std::string &>();
    std::optional<DType> parsed = parseDType(spelling);
    if (!parsed)
      return damaged(fileName,
                     cat(where, ": unknown dtype \"", spelling, "\""));
    tensor.dtype = *parsed;
    uint64_t elementSize = dtypeSize(*parsed);

    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array())
      return damaged(fileName, where + ": missing array \"shape\"");
    uint64_t count = 1;
    bool overflow = false;
    for (const auto &dim : *shape) {
      if (!dim.is_number_unsigned() ||
          dim.get<uint64_t>() >
              static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return damaged(fileName, where +
                                     ": the shape holds a value that is not a "
                                     "non-negative integer");
      uint64_t d = dim.get<uint64_t>();
      if (d != 0 && count > std::numeric_limits<uint64_t>::max() / d)
        overflow = true;
      else
        count *= d;
      tensor.shape.push_back(static_cast<int64_t>(d));
    }
    if (std::find(tensor.shape.begin(), tensor.shape.end(), 0) !=
        tensor.shape.end())
      overflow = false, count = 0;
    if (overflow || count > std::numeric_limits<uint64_t>::max() / elementSize)
      return damaged(fileName, where + ": the shape is too large");

    auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() ||
        offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned())
      return damaged(fileName, where + ": \"data_offsets\" is not a pair of "
                                       "non-negative integers");
    tensor.begin = (*offsets)[0].get<uint64_t>();
    tensor.end = (*offsets)[1].get<uint64_t>();
    if (tensor.begin > tensor.end || tensor.end > dataBytes.size())
      return damaged(fileName,
                     cat(where, ": data_offsets [", tensor.begin, ", ",
                         tensor.end, "] lie outside the data buffer of ",
                         dataBytes.size(), " bytes"));
    if (tensor.end - tensor.begin != count * elementSize)
      return damaged(fileName, cat(where, ": ", tensor.end - tensor.begin,
                                   " bytes do not match ", spelling, " ",
                                   formatShape(tensor.shape), " (",
                                   count * elementSize, " bytes)"));
    entries.push_back(std::move(tensor));
  }

  std::vector<const SafetensorsTensor *> byOffset;
  for (const SafetensorsTensor &tensor : entries)
    if (tensor.end > tensor.begin)
      byOffset.push_back(&tensor);
  // Of two tensors at one offset, the first by name comes first.
  std::sort(byOffset.begin(), byOffset.end(),
            [](const SafetensorsTensor *a, const SafetensorsTensor *b) {
              return a->begin != b->begin ? a->begin < b->begin
                                          : a->name < b->name;
            });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i - 1]->end > byOffset[i]->begin)
      return damaged(fileName, cat("tensors '", byOffset[i - 1]->name,
                                   "' and '", byOffset[i]->name, "' overlap"));
  std::sort(entries.begin(), entries.end(),
            [](const SafetensorsTensor &a, const SafetensorsTensor &b) {
              return a.name < b.name;
            });
  return absl::OkStatus();
}

const SafetensorsTensor *SafetensorsFile::find(std::string_view name) const {
  auto it = std::lower_bound(entries.begin(), entries.end(), name,
                             [](const SafetensorsTensor &t,
                                std::string_view n) { return t.name < n; });
  if (it == entries.end() || it->name != name)
    return nullptr;
  return &*it;
}

std::string_view SafetensorsFile::data(const SafetensorsTensor &tensor) const {
  if (tensor.begin > tensor.end || tensor.end > dataBytes.size())
    return {};
  return dataBytes.substr(tensor.begin, tensor.end - tensor.begin);
}

absl::Status SafetensorsFile::convertInto(const SafetensorsTensor &tensor,
                                          const BufferDesc &buffer,
                                          void *dst) const {
  std::string where = cat(fileName, ": tensor '", tensor.name, "'");
  if (tensor.shape != buffer.shape)
    return makeError(MOMA_STATUS_INVALID_WEIGHTS,
                     cat(where, " has shape ", formatShape(tensor.shape),
                         ", but buffer '", buffer.name, "' expects ",
                         formatShape(buffer.shape)));
  std::string_view bytes = data(tensor);
  uint64_t count = buffer.numElements();
  uint64_t inSize = dtypeSize(tensor.dtype);
  uint64_t outSize = elementTypeSize(buffer.type);
  if (bytes.size() != count * inSize || buffer.byteSize != count * outSize)
    return makeError(MOMA_STATUS_INTERNAL,
                     where + ": inconsistent sizes after validation");
  char *out = static_cast<char *>(dst);
  const char *in = bytes.data();

  bool sameType =
      (tensor.dtype == DType::F32 && buffer.type == ElementType::F32) ||
      (tensor.dtype == DType::F64 && buffer.type == ElementType::F64) ||
      (tensor.dtype == DType::F16 && buffer.type == ElementType::F16) ||
      (tensor.dtype == DType::BF16 && buffer.type == ElementType::BF16) ||
      (tensor.dtype == DType::I32 && buffer.type == ElementType::I32) ||
      (tensor.dtype == DType::I64 && buffer.type == ElementType::I64);
  if (sameType) {
    if (!bytes.empty())
      std::memcpy(out, in, bytes.size());
    return absl::OkStatus();
  }
  if (isFloatStorage(tensor.dtype) && isFloatBuffer(buffer.type)) {
    for (uint64_t i = 0; i < count; ++i)
      storeFloat(buffer.type, out + i * outSize,
                 loadFloat(tensor.dtype, in + i * inSize));
    return absl::OkStatus();
  }
  if (tensor.dtype == DType::I64 && buffer.type == ElementType::I32) {
    for (uint64_t i = 0; i < count; ++i) {
      int64_t v = load<int64_t>(in + i * 8);
      if (v < std::numeric_limits<int32_t>::min() ||
          v > std::numeric_limits<int32_t>::max())
        return makeError(MOMA_STATUS_INVALID_WEIGHTS,
                         cat(where, ": element ", i, " (", v,
                             ") does not fit in buffer '", buffer.name,
                             "' of type i32"));
      store<int32_t>(out + i * 4, static_cast<int32_t>(v));
    }
    return absl::OkStatus();
  }
  if (tensor.dtype == DType::I32 && buffer.type == ElementType::I64) {
    for (uint64_t i = 0; i < count; ++i)
      store<int64_t>(out + i * 8, load<int32_t>(in + i * 4));
    return absl::OkStatus();
  }
  return makeError(MOMA_STATUS_INVALID_WEIGHTS,
                   cat(where, " has dtype ", dtypeName(tensor.dtype),
                       ", which cannot be loaded into buffer '", buffer.name,
                       "' of type ", elementTypeName(buffer.type),
                       " (float buffers take F32, F64, F16 or BF16; integer "
                       "buffers take I32 or I64)"));
}

} // namespace moma::runtime
