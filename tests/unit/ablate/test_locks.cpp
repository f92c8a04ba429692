// Run locks of `hlip ablate`: several sweep processes, on one host or on hosts sharing the sweep folder,
// claim each run once; a lock left by a dead process here or by a crashed host (its file no longer touched)
// is taken over.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "hlip/ablate/runner.h"
#include "temp_dir.h"

namespace hlip::ablate {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string this_host() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

constexpr std::chrono::seconds kTenMinutes{600};

TEST(RunLock, OnlyOneClaimHoldsARun) {
  TempDir dir("hlip_locks");
  const fs::path lock = dir.path() / "seed-0.lock";
  EXPECT_TRUE(claim_run_lock(lock, kTenMinutes));
  EXPECT_EQ(read(lock), this_host() + " " + std::to_string(getpid()) + "\n");
  EXPECT_FALSE(claim_run_lock(lock, kTenMinutes));  // this (live) process holds it
}

TEST(RunLock, ADeadProcessOfThisHostIsTakenOver) {
  TempDir dir("hlip_locks");
  const fs::path lock = dir.path() / "seed-0.lock";
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // a pid that no longer runs
  std::ofstream(lock) << this_host() << " " << child << "\n";
  EXPECT_TRUE(claim_run_lock(lock, kTenMinutes));
  EXPECT_EQ(read(lock), this_host() + " " + std::to_string(getpid()) + "\n");
}

TEST(RunLock, AnotherHostsLockIsTakenOverOnlyWhenNoLongerTouched) {
  TempDir dir("hlip_locks");
  const fs::path lock = dir.path() / "seed-0.lock";
  std::ofstream(lock) << "elsewhere.example 4242\n";
  EXPECT_FALSE(claim_run_lock(lock, kTenMinutes));  // touched just now: a live run on that host
  fs::last_write_time(lock, fs::file_time_type::clock::now() - std::chrono::minutes(9));
  EXPECT_FALSE(claim_run_lock(lock, kTenMinutes));
  fs::last_write_time(lock, fs::file_time_type::clock::now() - std::chrono::minutes(11));
  EXPECT_TRUE(claim_run_lock(lock, kTenMinutes));  // its host stopped touching it: crashed
  EXPECT_EQ(read(lock), this_host() + " " + std::to_string(getpid()) + "\n");
  EXPECT_TRUE(fs::exists(lock));
  for (const auto& entry : fs::directory_iterator(dir.path()))  // nothing left of the old lock
    EXPECT_EQ(entry.path().filename(), "seed-0.lock");
}

}  // namespace
}  // namespace hlip::ablate
