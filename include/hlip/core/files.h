#pragma once
// Files that appear whole or not at all: the bytes go to a temporary file beside the target, which is
// flushed to disk and renamed over it, so a crash never leaves a half-written file behind.
//
//   hlip::write_file_atomic("run/params.json", json.dump(2));
//
//   hlip::PendingFile file("scan.nii.gz");         // for writers that need a path (nifticlib, streams)
//   write_with_some_library(file.path());
//   file.commit();                                  // without commit(), the destructor removes the temporary

#include <string>
#include <string_view>
#include <vector>

namespace hlip {

class PendingFile {
 public:
  explicit PendingFile(std::string destination);
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;
  ~PendingFile();

  // Where to write: `.<name>.tmp-<pid>-<n>` in the destination's folder (the same file system).
  const std::string& path() const { return temp_; }
  const std::string& destination() const { return destination_; }
  // Flushes the temporary file to disk, renames it over the destination and flushes the folder entry.
  void commit();

 private:
  std::string destination_;
  std::string temp_;
  bool committed_ = false;
};

// Writes the concatenation of `parts` to `path` atomically.
void write_file_atomic(const std::string& path, const std::vector<std::string_view>& parts);
inline void write_file_atomic(const std::string& path, std::string_view contents) {
  write_file_atomic(path, std::vector<std::string_view>{contents});
}

// Creates `path` and its missing parents; an existing folder is fine, an existing file is an error.
void create_directories(const std::string& path);

}  // namespace hlip
