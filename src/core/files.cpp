#include "hlip/core/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "hlip/core/error.h"

namespace hlip {
namespace {

std::string errno_text() {
  return std::strerror(errno);
}

void fsync_path(const std::string& path, int flags, const std::string& what) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error(fmt::format("{}: cannot open to flush: {}", what, errno_text()));
  const int status = ::fsync(fd);
  const std::string reason = errno_text();
  ::close(fd);
  if (status != 0) throw Error(fmt::format("{}: fsync failed: {}", what, reason));
}

}  // namespace

PendingFile::PendingFile(std::string destination) : destination_(std::move(destination)) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path target(destination_);
  temp_ = (target.parent_path() /
           fmt::format(".{}.tmp-{}-{}", target.filename().string(), ::getpid(), counter.fetch_add(1)))
              .string();
}

PendingFile::~PendingFile() {
  if (!committed_) std::remove(temp_.c_str());
}

void PendingFile::commit() {
  fsync_path(temp_, O_RDONLY, destination_);
  if (std::rename(temp_.c_str(), destination_.c_str()) != 0) {
    throw Error(fmt::format("{}: cannot rename {} into place: {}", destination_, temp_, errno_text()));
  }
  committed_ = true;
  // The rename is durable only once the folder entry is on disk.
  const std::string folder = std::filesystem::path(destination_).parent_path().string();
  fsync_path(folder.empty() ? "." : folder, O_RDONLY | O_DIRECTORY, destination_);
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts) {
  PendingFile file(path);
  const int fd = ::open(file.path().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    throw Error(fmt::format("{}: cannot create temporary file {}: {}", path, file.path(), errno_text()));
  for (const auto& part : parts) {
    for (size_t written = 0; written < part.size();) {
      const ssize_t n = ::write(fd, part.data() + written, part.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string reason = errno_text();
        ::close(fd);
        throw Error(fmt::format("{}: write failed: {}", path, reason));
      }
      written += static_cast<size_t>(n);
    }
  }
  if (::close(fd) != 0) throw Error(fmt::format("{}: close failed: {}", path, errno_text()));
  file.commit();
}

void create_directories(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error || !std::filesystem::is_directory(path)) {
    throw Error(
        fmt::format("{}: cannot create folder: {}", path, error ? error.message() : "a file is in the way"));
  }
}

}  // namespace hlip
