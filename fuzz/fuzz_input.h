#pragma once
// Helpers shared by the fuzz targets in fuzz/: the bytes under test as a scratch file, for readers that take
// a path.
//
//   const std::string path = hlip::fuzz::scratch_file(data, size, ".nii");
//   try { hlip::io::read_nifti(path); } catch (const hlip::Error&) {}   // any other exception is a finding

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace hlip::fuzz {

// Writes `data` to one file per process and suffix (overwritten on every call, removed by nobody: the
// operating system's temporary folder is the place for it) and returns its path.
inline std::string scratch_file(const uint8_t* data, size_t size, const std::string& suffix) {
  static const std::string stem =
      (std::filesystem::temp_directory_path() / ("hlip_fuzz_" + std::to_string(::getpid()))).string();
  const std::string path = stem + suffix;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) throw std::runtime_error("cannot write the fuzz scratch file " + path);
  return path;
}

}  // namespace hlip::fuzz
