#pragma once
// Scratch files for tests. TempDir: a fresh folder under the system's temporary directory for one test,
// removed with everything in it when the object goes away. Names are unique per process and instance, so
// parallel CTest runs never share one.

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "hlip/core/error.h"

namespace hlip::test {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "hlip_test") {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The message of the hlip::Error that `action` throws; a test failure when it throws none.
inline std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const hlip::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no hlip::Error was thrown";
  return "";
}

}  // namespace hlip::test
