#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace hlip::test {
namespace {

const char* const kSubcommands[] = {"version", "doctor",   "inspect", "synth", "manifest",
                                    "prepare", "info",     "convert", "vocab", "tokenize",
                                    "forward", "zeroshot", "embed",   "train", "report"};

TEST(Cli, HelpListsEverySubcommand) {
  const auto result = run_hlip("--help");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  for (const char* name : kSubcommands)
    EXPECT_NE(result.out.find(name), std::string::npos) << name;
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* name : kSubcommands) {
    const auto result = run_hlip(std::string(name) + " --help");
    EXPECT_EQ(result.exit_code, 0) << name << ": " << result.err;
    EXPECT_NE(result.out.find("Usage"), std::string::npos) << name;
  }
}

TEST(Cli, UnknownSubcommandIsAUsageError) {
  const auto result = run_hlip("frobnicate");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("hlip: error:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("frobnicate"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("usage:"), std::string::npos) << result.err;
  EXPECT_EQ(count_lines(result.err), 2) << result.err;
}

TEST(Cli, BadFlagIsAUsageError) {
  const auto result = run_hlip("doctor --no-such-flag");
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_NE(result.err.find("--no-such-flag"), std::string::npos) << result.err;
}

TEST(Cli, BadFlagValueIsAUsageError) {
  const auto result = run_hlip("--threads -3 version");
  EXPECT_EQ(result.exit_code, 2) << result.out;
  EXPECT_NE(result.err.find("hlip: error:"), std::string::npos) << result.err;
}

TEST(Cli, NoSubcommandIsAUsageError) {
  const auto result = run_hlip("");
  EXPECT_EQ(result.exit_code, 2);
}

TEST(Cli, VersionNamesLibTorchAndBlas) {
  const auto result = run_hlip("version");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("LibTorch"), std::string::npos);
  EXPECT_NE(result.out.find("BLAS"), std::string::npos);
}

TEST(Cli, ThreadsFlagReachesLibTorch) {
  const auto result = run_hlip("--threads 1 version --json");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out).at("threads").get<int>(), 1);
  const auto after = run_hlip("version --json --threads 1");
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(nlohmann::json::parse(after.out).at("threads").get<int>(), 1);
}

// Sets (or, with nullptr, unsets) an environment variable for the child processes of one test, and restores
// it.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    const char* before = std::getenv(name);
    had_ = before != nullptr;
    if (had_) saved_ = before;
    set(value);
  }
  ~ScopedEnv() { set(had_ ? saved_.c_str() : nullptr); }
  void set(const char* value) const {
    if (value != nullptr) {
      setenv(name_.c_str(), value, 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_, saved_;
  bool had_ = false;
};

// hlip's start-up code makes idle OpenMP threads sleep instead of spin unless the user chose otherwise.
TEST(Cli, OpenmpWaitPolicyDefaultsToPassiveAndKeepsTheUsersChoice) {
  ScopedEnv policy("OMP_WAIT_POLICY", nullptr);
  const auto defaulted = run_hlip("version --json");
  policy.set("active");
  const auto chosen = run_hlip("version --json");
  ASSERT_EQ(defaulted.exit_code, 0) << defaulted.err;
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  const auto json = nlohmann::json::parse(defaulted.out);
  EXPECT_EQ(json.at("openmp_wait_policy"), "PASSIVE");
  EXPECT_TRUE(json.at("openmp_wait_policy_defaulted").get<bool>());
  const auto user = nlohmann::json::parse(chosen.out);
  EXPECT_EQ(user.at("openmp_wait_policy"), "active");
  EXPECT_FALSE(user.at("openmp_wait_policy_defaulted").get<bool>());
}

// The OpenBLAS core type hlip's start-up code chooses, from the kernel's view of the CPU (/proc/cpuinfo): the
// start-up code reads cpuid itself, so this is an independent check of the same rule.
std::string expected_openblas_coretype() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::set<std::string> flags;
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string flag; words >> flag;)
      flags.insert(flag);
    break;
  }
  const auto has = [&](const char* flag) { return flags.count(flag) > 0; };
  if (has("avx512f") && has("avx512dq") && has("avx512bw") && has("avx512vl") && has("fma"))
    return "SKYLAKEX";
  if (has("avx2") && has("fma")) return "HASWELL";
  return "";
}

TEST(Cli, OpenblasCoretypeFollowsTheCpuAndKeepsTheUsersChoice) {
  ScopedEnv coretype("OPENBLAS_CORETYPE", nullptr);
  const auto defaulted = run_hlip("version --json");
  coretype.set("Prescott");
  const auto chosen = run_hlip("version --json");
  ASSERT_EQ(defaulted.exit_code, 0) << defaulted.err;
  ASSERT_EQ(chosen.exit_code, 0) << chosen.err;
  const std::string expected = expected_openblas_coretype();
  const auto json = nlohmann::json::parse(defaulted.out);
  EXPECT_EQ(json.at("openblas_coretype"), expected);
  EXPECT_EQ(json.at("openblas_coretype_defaulted").get<bool>(), !expected.empty());
  const auto user = nlohmann::json::parse(chosen.out);
  EXPECT_EQ(user.at("openblas_coretype"), "Prescott");
  EXPECT_FALSE(user.at("openblas_coretype_defaulted").get<bool>());
}

TEST(Cli, DoctorJsonHasTheDocumentedKeys) {
  const auto result = run_hlip("doctor --json --gemm-size 256 --seconds 0.05");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto json = nlohmann::json::parse(result.out);
  for (const char* key :
       {"torch_version", "blas", "threads", "cuda", "gemm_fp32_gflops", "gemm_bf16_gflops", "gloo"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
  EXPECT_GT(json["gemm_fp32_gflops"].get<double>(), 0.0);
  EXPECT_GT(json["gemm_bf16_gflops"].get<double>(), 0.0);
}

}  // namespace
}  // namespace hlip::test
