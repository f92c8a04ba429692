#include "hlip/core/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "hlip/core/error.h"

namespace hlip {

void write_file_atomic(const std::string& path, std::string_view contents) {
  std::string temp = path + ".tmp-XXXXXX";
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  const int fd = mkstemp(name.data());
  if (fd < 0) throw Error(fmt::format("{}: cannot create a temporary file: {}", path, std::strerror(errno)));
  temp = name.data();
  auto fail = [&](const char* what) {
    const std::string reason = std::strerror(errno);
    close(fd);
    unlink(temp.c_str());
    throw Error(fmt::format("{}: {}: {}", path, what, reason));
  };
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    written += static_cast<size_t>(n);
  }
  if (fchmod(fd, 0644) != 0) fail("chmod failed");
  if (fsync(fd) != 0) fail("fsync failed");
  if (close(fd) != 0) {
    unlink(temp.c_str());
    throw Error(fmt::format("{}: close failed: {}", path, std::strerror(errno)));
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    unlink(temp.c_str());
    throw Error(fmt::format("{}: rename failed: {}", path, reason));
  }
  // Make the rename itself durable.
  const std::string folder = std::filesystem::path(path).parent_path().string();
  const int dir = open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    fsync(dir);
    close(dir);
  }
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
