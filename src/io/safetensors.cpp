#include "hlip/io/safetensors.h"

#include "hlip/core/error.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <tuple>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors stores little-endian data; hlip copies bytes without swapping");

namespace hlip::io {
namespace {

// The reference implementation refuses headers above 100 MB; so do we, before allocating for one.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr const char* kMetadataKey = "__metadata__";

struct DtypeSpec {
  const char* name;
  at::ScalarType type;
  size_t item_bytes;
  // Position in the reference's `Dtype` enum, which is in increasing alignment; the writer sorts on it.
  int alignment_rank;
};

constexpr DtypeSpec kDtypes[] = {
    {"BOOL", at::kBool, 1, 0}, {"U8", at::kByte, 1, 1},    {"I8", at::kChar, 1, 2},
    {"I16", at::kShort, 2, 5}, {"F16", at::kHalf, 2, 7},   {"BF16", at::kBFloat16, 2, 8},
    {"I32", at::kInt, 4, 9},   {"F32", at::kFloat, 4, 11}, {"F64", at::kDouble, 8, 12},
    {"I64", at::kLong, 8, 13},
};

std::string supported_dtype_names() {
  std::vector<std::string> names;
  for (const auto& spec : kDtypes)
    names.emplace_back(spec.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

const DtypeSpec* dtype_by_name(const std::string& name) {
  for (const auto& spec : kDtypes) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

const DtypeSpec* dtype_by_type(at::ScalarType type) {
  for (const auto& spec : kDtypes) {
    if (type == spec.type) return &spec;
  }
  return nullptr;
}

std::string errno_text() {
  return std::strerror(errno);
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd = -1) : fd_(fd) {}
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  FileDescriptor(FileDescriptor&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error, which for a written file can be the first sign of a failed write.
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

struct TensorEntry {
  std::string name;
  const DtypeSpec* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct Header {
  uint64_t header_bytes = 0;  // N, the JSON length; tensor data starts at byte 8 + N
  std::map<std::string, std::string> metadata;
  std::vector<TensorEntry> tensors;  // in data-offset order
};

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Length prefix checks shared by the header-only and the whole-file readers.
uint64_t check_header_length(const std::string& path, const unsigned char* prefix, uint64_t file_bytes) {
  uint64_t n = 0;
  std::memcpy(&n, prefix, sizeof(n));
  if (n > kMaxHeaderBytes) {
    throw Error(fmt::format("{}: header length {} is larger than the {}-byte limit (not a safetensors file?)",
                            path, n, kMaxHeaderBytes));
  }
  if (n > file_bytes - 8) {
    throw Error(fmt::format("{}: header length {} exceeds the {} bytes that follow it in the {}-byte file",
                            path, n, file_bytes - 8, file_bytes));
  }
  if (n == 0) throw Error(fmt::format("{}: header length is 0", path));
  return n;
}

uint64_t json_unsigned(const std::string& path, const std::string& name, const char* field,
                       const nlohmann::json& value) {
  if (!value.is_number_unsigned()) {
    throw Error(fmt::format("{}: tensor \"{}\": {} holds {}, not a non-negative integer", path, name, field,
                            value.dump()));
  }
  return value.get<uint64_t>();
}

TensorEntry parse_tensor_entry(const std::string& path, const std::string& name, const nlohmann::json& info) {
  if (!info.is_object()) {
    throw Error(fmt::format("{}: tensor \"{}\": header entry is {}, not an object", path, name, info.dump()));
  }
  for (const auto& [field, value] : info.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      throw Error(fmt::format("{}: tensor \"{}\": unknown field \"{}\"", path, name, field));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!info.contains(field))
      throw Error(fmt::format("{}: tensor \"{}\": no \"{}\" field", path, name, field));
  }
  TensorEntry entry;
  entry.name = name;

  const auto& dtype = info["dtype"];
  if (!dtype.is_string()) {
    throw Error(fmt::format("{}: tensor \"{}\": dtype {} is not a string", path, name, dtype.dump()));
  }
  entry.dtype = dtype_by_name(dtype.get<std::string>());
  if (entry.dtype == nullptr) {
    throw Error(fmt::format("{}: tensor \"{}\": dtype \"{}\" is not supported (hlip reads {})", path, name,
                            dtype.get<std::string>(), supported_dtype_names()));
  }

  const auto& shape = info["shape"];
  if (!shape.is_array()) {
    throw Error(fmt::format("{}: tensor \"{}\": shape {} is not an array", path, name, shape.dump()));
  }
  uint64_t elements = 1;
  for (const auto& dim_json : shape) {
    uint64_t dim = json_unsigned(path, name, "shape", dim_json);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(elements, dim, &elements)) {
      throw Error(fmt::format("{}: tensor \"{}\": shape {} has more elements than fit in 64 bits", path, name,
                              shape.dump()));
    }
    entry.shape.push_back(static_cast<int64_t>(dim));
  }
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(elements, entry.dtype->item_bytes, &expected_bytes)) {
    throw Error(fmt::format("{}: tensor \"{}\": shape {} of {} overflows 64-bit byte counts", path, name,
                            shape.dump(), entry.dtype->name));
  }

  const auto& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) {
    throw Error(fmt::format("{}: tensor \"{}\": data_offsets {} is not a [begin, end] pair", path, name,
                            offsets.dump()));
  }
  entry.begin = json_unsigned(path, name, "data_offsets", offsets[0]);
  entry.end = json_unsigned(path, name, "data_offsets", offsets[1]);
  if (entry.end < entry.begin) {
    throw Error(fmt::format("{}: tensor \"{}\": data_offsets [{}, {}] end before they begin", path, name,
                            entry.begin, entry.end));
  }
  if (entry.end - entry.begin != expected_bytes) {
    throw Error(fmt::format(
        "{}: tensor \"{}\": shape {} of {} needs {} bytes but data_offsets [{}, {}] span {} bytes", path,
        name, shape_text(entry.shape), entry.dtype->name, expected_bytes, entry.begin, entry.end,
        entry.end - entry.begin));
  }
  return entry;
}

// Parses the JSON header and checks it against the file: every byte of the data buffer belongs to exactly
// one tensor, in order, as the reference reader requires.
Header parse_header(const std::string& path, const char* text, uint64_t n, uint64_t file_bytes) {
  if (text[0] != '{') {
    throw Error(fmt::format("{}: header does not start with '{{' (first byte is 0x{:02x})", path,
                            static_cast<unsigned char>(text[0])));
  }
  // nlohmann keeps the last of duplicate keys silently; a parse callback sees every key of every object.
  std::vector<std::set<std::string>> keys_per_object;
  std::string duplicate;
  int duplicate_depth = 0;
  auto on_event = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      keys_per_object.emplace_back();
    } else if (event == Event::object_end) {
      keys_per_object.pop_back();
    } else if (event == Event::key && !keys_per_object.back().insert(parsed.get<std::string>()).second &&
               duplicate.empty()) {
      duplicate = parsed.get<std::string>();
      duplicate_depth = depth;
    }
    return true;
  };
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(text, text + n, on_event);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", path, e.what()));
  }
  if (!duplicate.empty()) {
    if (duplicate_depth == 1)
      throw Error(fmt::format("{}: tensor \"{}\" appears twice in the header", path, duplicate));
    throw Error(fmt::format("{}: key \"{}\" appears twice in one header object", path, duplicate));
  }
  if (!root.is_object()) throw Error(fmt::format("{}: header is not a JSON object", path));

  Header header;
  header.header_bytes = n;
  for (const auto& [name, value] : root.items()) {
    if (name == kMetadataKey) {
      if (value.is_null()) continue;
      if (!value.is_object()) {
        throw Error(fmt::format("{}: __metadata__ is {}, not a string-to-string object", path, value.dump()));
      }
      for (const auto& [key, text_value] : value.items()) {
        if (!text_value.is_string()) {
          throw Error(
              fmt::format("{}: __metadata__ \"{}\" is {}, not a string", path, key, text_value.dump()));
        }
        header.metadata.emplace(key, text_value.get<std::string>());
      }
      continue;
    }
    header.tensors.push_back(parse_tensor_entry(path, name, value));
  }

  const uint64_t data_bytes = file_bytes - 8 - n;
  for (const auto& entry : header.tensors) {
    if (entry.end > data_bytes) {
      throw Error(fmt::format(
          "{}: tensor \"{}\": data_offsets [{}, {}] run past the {}-byte data buffer (file truncated?)", path,
          entry.name, entry.begin, entry.end, data_bytes));
    }
  }
  std::stable_sort(header.tensors.begin(), header.tensors.end(),
                   [](const TensorEntry& a, const TensorEntry& b) {
                     return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
                   });
  uint64_t covered = 0;
  const TensorEntry* previous = nullptr;
  for (const auto& entry : header.tensors) {
    if (entry.begin < covered) {
      throw Error(fmt::format("{}: tensor \"{}\": data_offsets [{}, {}] overlap tensor \"{}\" at [{}, {}]",
                              path, entry.name, entry.begin, entry.end, previous->name, previous->begin,
                              previous->end));
    }
    if (entry.begin > covered) {
      throw Error(fmt::format("{}: tensor \"{}\": data_offsets [{}, {}] leave bytes [{}, {}) unused", path,
                              entry.name, entry.begin, entry.end, covered, entry.begin));
    }
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_bytes) {
    throw Error(fmt::format("{}: the tensors cover {} of the {} data bytes; the last {} bytes belong to none",
                            path, covered, data_bytes, data_bytes - covered));
  }
  return header;
}

FileDescriptor open_for_reading(const std::string& path, uint64_t& file_bytes) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error(fmt::format("{}: cannot open: {}", path, errno_text()));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(fmt::format("{}: cannot stat: {}", path, errno_text()));
  if (!S_ISREG(st.st_mode)) throw Error(fmt::format("{}: not a regular file", path));
  file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < 8) {
    throw Error(fmt::format("{}: file is {} bytes, shorter than the 8-byte header length", path, file_bytes));
  }
  return fd;
}

void read_exactly(const std::string& path, int fd, char* out, size_t bytes, uint64_t offset) {
  while (bytes > 0) {
    ssize_t got = ::pread(fd, out, bytes, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Error(fmt::format("{}: read failed at byte {}: {}", path, offset, errno_text()));
    if (got == 0)
      throw Error(fmt::format("{}: file ended at byte {} while reading the header", path, offset));
    out += got;
    bytes -= static_cast<size_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

Header read_header_only(const std::string& path) {
  uint64_t file_bytes = 0;
  FileDescriptor fd = open_for_reading(path, file_bytes);
  unsigned char prefix[8];
  read_exactly(path, fd.get(), reinterpret_cast<char*>(prefix), 8, 0);
  uint64_t n = check_header_length(path, prefix, file_bytes);
  std::string text(n, '\0');
  read_exactly(path, fd.get(), text.data(), n, 8);
  return parse_header(path, text.data(), n, file_bytes);
}

class ReadOnlyMapping {
 public:
  ReadOnlyMapping(const std::string& path, int fd, size_t bytes) : bytes_(bytes) {
    data_ = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data_ == MAP_FAILED)
      throw Error(fmt::format("{}: cannot map {} bytes: {}", path, bytes, errno_text()));
    ::madvise(data_, bytes, MADV_SEQUENTIAL);
  }
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;
  ~ReadOnlyMapping() { ::munmap(data_, bytes_); }
  const unsigned char* data() const { return static_cast<const unsigned char*>(data_); }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

void write_all(const std::string& path, int fd, const void* data, size_t bytes) {
  const char* cursor = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t written = ::write(fd, cursor, bytes);
    if (written < 0 && errno == EINTR) continue;
    if (written < 0) throw Error(fmt::format("{}: write failed: {}", path, errno_text()));
    cursor += written;
    bytes -= static_cast<size_t>(written);
  }
}

std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  std::random_device device;
  uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device() ^ (counter++ * 0x9e3779b97f4a7c15ULL) ^
                  static_cast<uint64_t>(::getpid());
  return fmt::format("{:06x}", bits & 0xffffff);
}

// A temporary file next to the destination, removed unless committed by a rename.
class TemporaryFile {
 public:
  explicit TemporaryFile(const std::string& destination) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      path_ = destination + ".tmp-" + random_suffix();
      // 0666 so the final file gets the same permissions as any other file under the caller's umask.
      int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd >= 0) {
        fd_ = std::make_unique<FileDescriptor>(fd);
        return;
      }
      if (errno != EEXIST) throw Error(fmt::format("{}: cannot create: {}", path_, errno_text()));
    }
    throw Error(fmt::format("{}: cannot find a free temporary name next to it", destination));
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  ~TemporaryFile() {
    if (!committed_) {
      fd_.reset();
      ::unlink(path_.c_str());
    }
  }
  int fd() const { return fd_->get(); }
  const std::string& path() const { return path_; }

  void commit(const std::string& destination) {
    if (::fsync(fd_->get()) != 0) throw Error(fmt::format("{}: fsync failed: {}", path_, errno_text()));
    if (fd_->close() != 0) throw Error(fmt::format("{}: close failed: {}", path_, errno_text()));
    if (::rename(path_.c_str(), destination.c_str()) != 0) {
      throw Error(fmt::format("{}: cannot rename to {}: {}", path_, destination, errno_text()));
    }
    committed_ = true;
    // The rename is durable only once the directory entry is on disk.
    std::string directory = std::filesystem::path(destination).parent_path().string();
    if (directory.empty()) directory = ".";
    FileDescriptor dir(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0 || ::fsync(dir.get()) != 0) {
      throw Error(fmt::format("{}: written, but syncing directory {} failed: {}", destination, directory,
                              errno_text()));
    }
  }

 private:
  std::string path_;
  std::unique_ptr<FileDescriptor> fd_;
  bool committed_ = false;
};

struct PreparedTensor {
  std::string name;
  const DtypeSpec* dtype = nullptr;
  at::Tensor data;  // contiguous, CPU
};

std::string json_string_or_throw(const std::string& path, const std::string& what, const std::string& text) {
  try {
    return nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: {} is not valid UTF-8: {}", path, what, e.what()));
  }
}

}  // namespace

SafetensorsFile read_safetensors(const std::string& path) {
  uint64_t file_bytes = 0;
  FileDescriptor fd = open_for_reading(path, file_bytes);
  ReadOnlyMapping mapping(path, fd.get(), file_bytes);
  const unsigned char* bytes = mapping.data();
  uint64_t n = check_header_length(path, bytes, file_bytes);
  Header header = parse_header(path, reinterpret_cast<const char*>(bytes) + 8, n, file_bytes);

  // Copying out (rather than handing out views of the mapping) keeps every tensor aligned and writable, and
  // means a checkpoint that is replaced or truncated later cannot crash the process with SIGBUS.
  const unsigned char* data = bytes + 8 + n;
  SafetensorsFile file;
  file.metadata = std::move(header.metadata);
  for (const auto& entry : header.tensors) {
    const bool is_bool = entry.dtype->type == at::kBool;
    at::Tensor tensor =
        at::empty(entry.shape, at::TensorOptions().dtype(is_bool ? at::kByte : entry.dtype->type));
    if (entry.end > entry.begin) std::memcpy(tensor.data_ptr(), data + entry.begin, entry.end - entry.begin);
    // A bool byte other than 0 or 1 is undefined behaviour for at::kBool; normalise as numpy does (!= 0).
    if (is_bool) tensor = tensor.ne(0);
    file.tensors.emplace(entry.name, std::move(tensor));
  }
  return file;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  return read_header_only(path).metadata;
}

std::map<std::string, SafetensorsTensorInfo> read_safetensors_index(const std::string& path) {
  std::map<std::string, SafetensorsTensorInfo> index;
  for (auto& entry : read_header_only(path).tensors) {
    index.emplace(entry.name, SafetensorsTensorInfo{entry.dtype->name, entry.shape, entry.begin, entry.end});
  }
  return index;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<PreparedTensor> prepared;
  prepared.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) {
      throw Error(fmt::format("{}: \"{}\" is reserved for metadata and cannot name a tensor", path, name));
    }
    if (!tensor.defined()) throw Error(fmt::format("{}: tensor \"{}\" is undefined", path, name));
    const DtypeSpec* dtype = dtype_by_type(tensor.scalar_type());
    if (dtype == nullptr) {
      throw Error(
          fmt::format("{}: tensor \"{}\": dtype {} cannot be stored (safetensors in hlip supports {})", path,
                      name, c10::toString(tensor.scalar_type()), supported_dtype_names()));
    }
    prepared.push_back({name, dtype, tensor.detach().to(at::kCPU).contiguous()});
  }
  // The reference writer's order: descending dtype alignment, then name (byte-wise), so that every tensor
  // in a file whose header is 8-byte padded starts at an offset aligned for its dtype.
  std::sort(prepared.begin(), prepared.end(), [](const PreparedTensor& a, const PreparedTensor& b) {
    if (a.dtype->alignment_rank != b.dtype->alignment_rank)
      return a.dtype->alignment_rank > b.dtype->alignment_rank;
    return a.name < b.name;
  });

  // Written by hand rather than through a JSON object so the key order is exactly the one above.
  std::string header = "{";
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    bool first = true;
    for (const auto& [key, value] : metadata) {
      if (!first) header += ',';
      first = false;
      header += json_string_or_throw(path, fmt::format("metadata key \"{}\"", key), key);
      header += ':';
      header += json_string_or_throw(path, fmt::format("metadata value of \"{}\"", key), value);
    }
    header += '}';
  }
  uint64_t offset = 0;
  for (const auto& tensor : prepared) {
    if (header.size() > 1) header += ',';
    const uint64_t bytes = static_cast<uint64_t>(tensor.data.numel()) * tensor.dtype->item_bytes;
    header += json_string_or_throw(path, "tensor name", tensor.name);
    header += fmt::format(":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}", tensor.dtype->name,
                          fmt::join(tensor.data.sizes(), ","), offset, offset + bytes);
    offset += bytes;
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  if (header.size() > kMaxHeaderBytes) {
    throw Error(fmt::format("{}: header of {} bytes exceeds the {}-byte limit readers enforce", path,
                            header.size(), kMaxHeaderBytes));
  }

  TemporaryFile temporary(path);
  const uint64_t header_bytes = header.size();
  write_all(temporary.path(), temporary.fd(), &header_bytes, sizeof(header_bytes));
  write_all(temporary.path(), temporary.fd(), header.data(), header.size());
  for (const auto& tensor : prepared) {
    write_all(temporary.path(), temporary.fd(), tensor.data.data_ptr(),
              static_cast<size_t>(tensor.data.numel()) * tensor.dtype->item_bytes);
  }
  temporary.commit(path);
}

}  // namespace hlip::io
