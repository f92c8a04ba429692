// The data-parallel pieces on two ranks in one process (one thread each, a real TCP store and Gloo group on
// 127.0.0.1): the environment's variables, the bucketed gradient average and the feature gather's gradient.
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>
#include <thread>

#include "hlip/core/error.h"
#include "hlip/train/distributed.h"
#include "temp_dir.h"

namespace hlip::train {
namespace {

using test::error_message;

// Runs `body(group)` on ranks 0 and 1, each on its own thread with its own process group.
void on_two_ranks(const std::function<void(ProcessGroup&)>& body) {
  const int port = free_local_port();
  std::string errors[2];
  auto rank_main = [&](int rank) {
    try {
      DistEnv env;
      env.rank = rank;
      env.world_size = 2;
      env.master_port = port;
      auto group = ProcessGroup::connect(env, std::chrono::seconds(30));
      body(*group);
    } catch (const std::exception& e) {
      errors[rank] = e.what();
    }
  };
  std::thread other(rank_main, 1);
  rank_main(0);
  other.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}

class Environment : public ::testing::Test {
 protected:
  void SetUp() override { clear(); }
  void TearDown() override { clear(); }
  static void clear() {
    for (const char* name : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_NTASKS",
                             "SLURM_PROCID", "SLURM_LOCALID", "SLURM_JOB_NODELIST"})
      unsetenv(name);
  }
};

TEST_F(Environment, TorchrunThenSlurmThenOneProcess) {
  DistEnv env = dist_env_from_environment();
  EXPECT_FALSE(env.distributed());
  EXPECT_EQ(env.source, "none");

  setenv("SLURM_NTASKS", "8", 1);
  setenv("SLURM_PROCID", "5", 1);
  setenv("SLURM_LOCALID", "1", 1);
  setenv("SLURM_JOB_NODELIST", "gpu[03-05,09],cpu1", 1);
  env = dist_env_from_environment();
  EXPECT_EQ(env.source, "slurm");
  EXPECT_EQ(env.rank, 5);
  EXPECT_EQ(env.world_size, 8);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "gpu03");
  EXPECT_EQ(env.master_port, 29500);

  setenv("RANK", "1", 1);  // torchrun's variables win
  setenv("WORLD_SIZE", "2", 1);
  setenv("MASTER_ADDR", "10.0.0.7", 1);
  setenv("MASTER_PORT", "1234", 1);
  env = dist_env_from_environment();
  EXPECT_EQ(env.source, "torchrun");
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "10.0.0.7");
  EXPECT_EQ(env.master_port, 1234);

  setenv("RANK", "2", 1);
  EXPECT_NE(error_message([] { dist_env_from_environment(); }).find("rank 2 is not below the world size 2"),
            std::string::npos);
  setenv("RANK", "one", 1);
  EXPECT_EQ(error_message([] { dist_env_from_environment(); }),
            "environment variable RANK=\"one\" is not an integer of at least 0");
  setenv("RANK", "0", 1);
  setenv("MASTER_PORT", "70000", 1);
  EXPECT_NE(error_message([] { dist_env_from_environment(); }).find("MASTER_PORT=\"70000\""),
            std::string::npos);
}

TEST(FirstSlurmHost, TakesTheFirstNodeOfAList) {
  EXPECT_EQ(first_slurm_host("node17"), "node17");
  EXPECT_EQ(first_slurm_host("a1,a2"), "a1");
  EXPECT_EQ(first_slurm_host("gpu[003-005,009]"), "gpu003");
  EXPECT_EQ(first_slurm_host("rack[1-2]-n[5-6]"), "rack1-n5");
}

TEST(ProcessGroupTest, CollectivesAgreeAcrossRanks) {
  on_two_ranks([](ProcessGroup& group) {
    const double r = group.rank();
    at::Tensor x = at::full({3}, r + 1);
    group.all_reduce_sum(x);
    EXPECT_TRUE(at::equal(x, at::full({3}, 3.0)));
    const at::Tensor gathered = group.all_gather(at::full({2, 2}, r));
    EXPECT_TRUE(at::equal(gathered, at::cat({at::zeros({2, 2}), at::ones({2, 2})})));
    at::Tensor y = at::full({4}, r + 10);
    group.broadcast({y}, 1);
    EXPECT_TRUE(at::equal(y, at::full({4}, 11.0)));
    group.barrier();
  });
}

TEST(GradReducerTest, AveragesGradientsInBucketsIncludingAccumulatedAndMissingOnes) {
  on_two_ranks([](ProcessGroup& group) {
    const double factor = group.rank() + 1;  // rank 0: 1, rank 1: 2 → mean 1.5
    at::Tensor a = at::arange(12, at::kFloat).view({3, 4}).requires_grad_();
    at::Tensor b = at::full({5}, 2.0f).requires_grad_();
    at::Tensor unused = at::zeros({7}).requires_grad_();
    // 16 bytes per bucket: every tensor its own bucket, so several buckets start in order.
    GradReducer reducer(group, {a, b, unused}, {}, /*bucket_bytes=*/16);
    EXPECT_EQ(reducer.buckets(), 3);
    // Two passes accumulate; only the last is reduced, and it carries the sum of both.
    (a.sum() * factor).backward();
    reducer.prepare();
    ((a * a).sum() * factor + (b * b).sum() * factor).backward();
    reducer.finish();
    const at::Tensor expected_a = (1 + 2 * at::arange(12, at::kFloat).view({3, 4})) * 1.5;
    EXPECT_TRUE(at::allclose(a.grad(), expected_a)) << a.grad();
    EXPECT_TRUE(at::allclose(b.grad(), at::full({5}, 6.0f))) << b.grad();
    EXPECT_TRUE(at::equal(unused.grad(), at::zeros({7})));

    // A second step starts afresh.
    a.mutable_grad() = at::Tensor();
    b.mutable_grad() = at::Tensor();
    reducer.prepare();
    (b.sum() * factor).backward();
    reducer.finish();
    EXPECT_TRUE(at::equal(b.grad(), at::full({5}, 1.5f)));
    EXPECT_TRUE(at::equal(a.grad(), at::zeros({3, 4})));
  });
}

TEST(GradReducerTest, TargetsReceiveTheAverageInTheirOwnType) {
  on_two_ranks([](ProcessGroup& group) {
    at::Tensor compute = at::ones({4}, at::kBFloat16).requires_grad_();
    at::Tensor master = at::ones({4}, at::kFloat).requires_grad_();
    GradReducer reducer(group, {compute}, {master});
    reducer.prepare();
    (compute.to(at::kFloat).sum() * (group.rank() == 0 ? 1.0 : 3.0)).backward();
    reducer.finish();
    EXPECT_EQ(master.grad().scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(master.grad(), at::full({4}, 2.0f)));
  });
}

TEST(GatherFeatures, RowsInRankOrderAndTheGradientOfEveryRanksCopy) {
  for (const bool with_grad : {false, true}) {
    on_two_ranks([with_grad](ProcessGroup& group) {
      const double r = group.rank();
      at::Tensor local = at::full({2, 3}, r + 1).requires_grad_();
      const at::Tensor all = gather_features(group, local, with_grad);
      EXPECT_TRUE(at::equal(all.detach(), at::cat({at::full({2, 3}, 1.0), at::full({2, 3}, 2.0)})));
      const at::Tensor weights = at::arange(12, at::kFloat).view({4, 3});
      (all * weights).sum().backward();
      // Each rank's loss uses every row; with the gradient gathered, a row's gradient is the sum over both
      // ranks' copies (2 × weights), else only this rank's own use of its rows.
      const at::Tensor own = weights.slice(0, group.rank() * 2, group.rank() * 2 + 2);
      EXPECT_TRUE(at::equal(local.grad(), with_grad ? own * 2 : own)) << with_grad << local.grad();
    });
  }
}

TEST(ProcessGroupTest, APeerThatNeverComesIsAOneLineErrorWithinTheTimeout) {
  DistEnv env;
  env.rank = 0;
  env.world_size = 2;
  env.master_port = free_local_port();
  const std::string message =
      error_message([&] { ProcessGroup::connect(env, std::chrono::milliseconds(1500)); });
  EXPECT_NE(message.find("distributed: rank 0 of 2"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

}  // namespace
}  // namespace hlip::train
