#include "hlip/data/cache.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "hlip/core/error.h"
#include "hlip/io/npy.h"

namespace hlip::data {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

// An open file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw Error(fmt::format("{}: cannot open cached scan: {}", path, errno_text()));
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { ::close(fd_); }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Reads exactly `size` bytes at `offset`; a short file is an error naming it.
void read_exact(int fd, void* out, size_t size, off_t offset, const std::string& path) {
  auto* bytes = static_cast<char*>(out);
  size_t done = 0;
  while (done < size) {
    const ssize_t got = ::pread(fd, bytes + done, size - done, offset + static_cast<off_t>(done));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("{}: read failed: {}", path, errno_text()));
    }
    if (got == 0) {
      throw Error(fmt::format("{}: truncated: {} of {} data bytes present", path, done, size));
    }
    done += static_cast<size_t>(got);
  }
}

// The header of a cached scan, checked: a C-ordered 3D uint8 or float16 array.
io::NpyHeader read_header(int fd, const std::string& path) {
  // numpy pads headers to 64-byte multiples; hlip's are 128 bytes. 4 KiB covers any header numpy writes for
  // a 3D array.
  std::array<char, 4096> head{};
  ssize_t got = 0;
  do {
    got = ::pread(fd, head.data(), head.size(), 0);
  } while (got < 0 && errno == EINTR);
  if (got < 0) throw Error(fmt::format("{}: read failed: {}", path, errno_text()));
  io::NpyHeader header = io::decode_npy_header(head.data(), static_cast<size_t>(got), path);
  if (header.shape.size() != 3) {
    throw Error(
        fmt::format("{}: shape has {} axes, a cached scan has 3 ([D, H, W])", path, header.shape.size()));
  }
  if (header.dtype != at::kByte && header.dtype != at::kHalf) {
    throw Error(fmt::format("{}: descr '{}': a cached scan is uint8 or float16", path, header.descr));
  }
  if (header.fortran_order) throw Error(fmt::format("{}: fortran_order is True, expected C order", path));
  return header;
}

}  // namespace

CacheDtype parse_cache_dtype(const std::string& name) {
  if (name == "uint8" || name == "u8") return CacheDtype::kUint8;
  if (name == "float16" || name == "f16") return CacheDtype::kFloat16;
  throw Error(fmt::format("cache dtype \"{}\" is unknown, expected \"uint8\" or \"float16\"", name));
}

std::string to_string(CacheDtype dtype) {
  return dtype == CacheDtype::kUint8 ? "uint8" : "float16";
}

void write_cached_scan(const std::string& path, const at::Tensor& scan, CacheDtype dtype) {
  if (scan.dim() != 3) {
    throw Error(fmt::format("{}: a cached scan is [D, H, W], got {} axes", path, scan.dim()));
  }
  const at::Tensor unit = scan.to(at::kFloat).clamp(0.0, 1.0);
  const at::Tensor stored =
      dtype == CacheDtype::kUint8 ? unit.mul(255.0).round_().to(at::kByte) : unit.to(at::kHalf);
  io::write_npy(path, stored);
}

at::Tensor read_cached_scan(const std::string& path) {
  const Fd fd(path);
  const io::NpyHeader header = read_header(fd.get(), path);
  at::Tensor out = at::empty(header.shape, at::TensorOptions().dtype(header.dtype));
  read_exact(fd.get(), out.data_ptr(), out.nbytes(), static_cast<off_t>(header.data_offset), path);
  return out;
}

void read_cached_scan_into(const std::string& path, at::Tensor& out) {
  const Fd fd(path);
  const io::NpyHeader header = read_header(fd.get(), path);
  if (out.scalar_type() != header.dtype || out.sizes() != at::IntArrayRef(header.shape) ||
      !out.is_contiguous()) {
    throw Error(fmt::format("{}: shape {} {} does not match the batch slot {} {}", path,
                            c10::str(at::IntArrayRef(header.shape)), c10::toString(header.dtype),
                            c10::str(out.sizes()), c10::toString(out.scalar_type())));
  }
  read_exact(fd.get(), out.data_ptr(), out.nbytes(), static_cast<off_t>(header.data_offset), path);
}

std::vector<int64_t> cached_scan_shape(const std::string& path) {
  const Fd fd(path);
  return read_header(fd.get(), path).shape;
}

at::ScalarType cached_scan_dtype(const std::string& path) {
  const Fd fd(path);
  return read_header(fd.get(), path).dtype;
}

at::Tensor cached_to_unit_float(const at::Tensor& stored) {
  if (stored.scalar_type() == at::kByte) return stored.to(at::kFloat).div_(255.0);
  return stored.to(at::kFloat);
}

std::string sidecar_path(const std::string& scan_path) {
  const std::string suffix = ".npy";
  if (scan_path.size() > suffix.size() &&
      scan_path.compare(scan_path.size() - suffix.size(), suffix.size(), suffix) == 0) {
    return scan_path.substr(0, scan_path.size() - suffix.size()) + ".json";
  }
  return scan_path + ".json";
}

}  // namespace hlip::data
