#pragma once
// A tiny prepared dataset for end-to-end tests, made by the binary itself: `hlip synth` (brain MRI, `studies`
// studies, `seed`), `hlip prepare` at 8×32×32 (ROOT/small.toml) into ROOT/cache, and a 300-token WordPiece
// vocabulary in ROOT/tokenizer/vocab.txt. Returns "" or what went wrong.

#include <filesystem>
#include <fstream>
#include <string>

#include "cli_runner.h"

namespace hlip::test {

inline std::string make_tiny_dataset(const std::filesystem::path& root, int studies, int seed) {
  const std::string data = (root / "data").string();
  auto result = run_hlip("synth --out " + data + " --studies " + std::to_string(studies) + " --seed " +
                         std::to_string(seed) + " --no-progress");
  if (result.exit_code != 0) return "synth: " + result.err;
  std::ofstream(root / "small.toml") << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 32, 32]\n"
                                        "resize_size = 36\n";
  result = run_hlip("prepare --no-progress --manifest " + data + "/studies.jsonl --out " +
                    (root / "cache").string() + " --preset " + (root / "small.toml").string());
  if (result.exit_code != 0) return "prepare: " + result.err;
  result = run_hlip("vocab --all-splits --manifest " + data + "/studies.jsonl --out " +
                    (root / "tokenizer/vocab.txt").string() + " --size 300");
  if (result.exit_code != 0) return "vocab: " + result.err;
  return "";
}

}  // namespace hlip::test
