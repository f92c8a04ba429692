#pragma once
// Files that appear whole or not at all: the bytes go to a temporary file beside the target, which is
// flushed to disk and renamed over it, so a crash never leaves a half-written file behind.
//
//   hlip::write_file_atomic("run/params.json", json.dump(2));

#include <string>
#include <string_view>

namespace hlip {

void write_file_atomic(const std::string& path, std::string_view contents);

// Creates `path` and its missing parents; an existing folder is fine, an existing file is an error.
void create_directories(const std::string& path);

}  // namespace hlip
