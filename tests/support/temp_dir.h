#pragma once
// A fresh folder under the system's temporary directory for one test, removed with everything in it when the
// object goes away. Names are unique per process and instance, so parallel CTest runs never share one.

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

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

}  // namespace hlip::test
