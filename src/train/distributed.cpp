#include "hlip/train/distributed.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include <ATen/Parallel.h>

#ifdef HLIP_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif

#include "hlip/core/error.h"
#include "hlip/core/runtime.h"

namespace hlip::train {
namespace {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

std::optional<std::string> env_text(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

std::optional<int> env_int(const char* name, int min_value) {
  const auto text = env_text(name);
  if (!text) return std::nullopt;
  size_t used = 0;
  int value = 0;
  try {
    value = std::stoi(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text->size() || value < min_value) {
    throw Error(fmt::format("environment variable {}=\"{}\" is not an integer of at least {}", name, *text,
                            min_value));
  }
  return value;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets; a bracket range contributes its first number.
  std::string out;
  bool in_brackets = false;
  for (size_t i = 0; i < nodelist.size(); ++i) {
    const char c = nodelist[i];
    if (c == '[') {
      in_brackets = true;
      for (size_t j = i + 1; j < nodelist.size() && std::isdigit(static_cast<unsigned char>(nodelist[j]));
           ++j)
        out += nodelist[j];
      continue;
    }
    if (c == ']') {
      in_brackets = false;
      continue;
    }
    if (in_brackets) continue;
    if (c == ',') break;
    out += c;
  }
  return out;
}

DistEnv dist_env_from_environment() {
  DistEnv env;
  if (env_text("WORLD_SIZE") || env_text("RANK")) {
    const auto world = env_int("WORLD_SIZE", 1);
    const auto rank = env_int("RANK", 0);
    if (!world || !rank)
      throw Error("environment: RANK and WORLD_SIZE must be set together (torchrun's variables)");
    env.world_size = *world;
    env.rank = *rank;
    env.local_rank = env_int("LOCAL_RANK", 0).value_or(env.rank);
    env.source = "torchrun";
  } else if (env_text("SLURM_NTASKS") && env_text("SLURM_PROCID")) {
    env.world_size = *env_int("SLURM_NTASKS", 1);
    env.rank = *env_int("SLURM_PROCID", 0);
    env.local_rank = env_int("SLURM_LOCALID", 0).value_or(0);
    if (const auto nodes = env_text("SLURM_JOB_NODELIST"); nodes && !env_text("MASTER_ADDR")) {
      env.master_addr = first_slurm_host(*nodes);
    }
    env.source = "slurm";
  } else {
    return env;
  }
  if (env.rank >= env.world_size) {
    throw Error(fmt::format("environment: rank {} is not below the world size {}", env.rank, env.world_size));
  }
  if (const auto address = env_text("MASTER_ADDR")) env.master_addr = *address;
  if (const auto port = env_int("MASTER_PORT", 1)) {
    if (*port > 65535)
      throw Error(fmt::format("environment variable MASTER_PORT=\"{}\" is not a port", *port));
    env.master_port = *port;
  }
  return env;
}

#ifdef HLIP_HAVE_GLOO

struct ProcessGroup::Impl {
  c10::intrusive_ptr<::c10d::Store> store;
  c10::intrusive_ptr<::c10d::ProcessGroupGloo> gloo;
};

namespace {

// Runs one collective and waits for it; c10d's errors (a closed connection, a timeout) become one line that
// names the rank and the operation.
template <typename Start>
void run_collective(int rank, std::chrono::milliseconds timeout, const char* what, Start&& start) {
  try {
    auto work = start();
    if (!work->wait(timeout)) throw std::runtime_error("timed out");
  } catch (const std::exception& e) {
    throw Error(
        fmt::format("distributed: rank {}: {} failed after a peer died or did not answer within {} s: {}",
                    rank, what, timeout.count() / 1000, first_line(e.what())));
  }
}

class GlooPending : public ProcessGroup::Pending {
 public:
  GlooPending(c10::intrusive_ptr<::c10d::Work> work, int rank, std::chrono::milliseconds timeout)
      : work_(std::move(work)), rank_(rank), timeout_(timeout) {}
  void wait() override {
    run_collective(rank_, timeout_, "gradient all-reduce", [&] { return work_; });
  }

 private:
  c10::intrusive_ptr<::c10d::Work> work_;
  int rank_;
  std::chrono::milliseconds timeout_;
};

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

}  // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, std::chrono::milliseconds timeout) {
  auto impl = std::make_unique<Impl>();
  try {
    ::c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(env.master_port);
    store_options.isServer = env.rank == 0;
    store_options.numWorkers = static_cast<size_t>(env.world_size);
    store_options.waitWorkers = true;
    store_options.timeout = timeout;
    impl->store = c10::make_intrusive<::c10d::TCPStore>(env.master_addr, store_options);
  } catch (const std::exception& e) {
    throw Error(
        fmt::format("distributed: rank {} of {}: no rendezvous at {}:{} within {} s (MASTER_ADDR, "
                    "MASTER_PORT; are all {} "
                    "workers started?): {}",
                    env.rank, env.world_size, env.master_addr, env.master_port, timeout.count() / 1000,
                    env.world_size, first_line(e.what())));
  }
  try {
    auto options = ::c10d::ProcessGroupGloo::Options::create(timeout);
    if (const auto interface = env_text("GLOO_SOCKET_IFNAME")) {
      options->devices.push_back(::c10d::ProcessGroupGloo::createDeviceForInterface(*interface));
    } else if (is_loopback(env.master_addr)) {
      options->devices.push_back(::c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
    } else {
      options->devices.push_back(::c10d::ProcessGroupGloo::createDefaultDevice());
    }
    impl->gloo =
        c10::make_intrusive<::c10d::ProcessGroupGloo>(impl->store, env.rank, env.world_size, options);
  } catch (const std::exception& e) {
    throw Error(fmt::format(
        "distributed: rank {} of {}: the Gloo process group did not form within {} s (are all {} workers "
        "started?): {}",
        env.rank, env.world_size, timeout.count() / 1000, env.world_size, first_line(e.what())));
  }
  return std::unique_ptr<ProcessGroup>(new ProcessGroup(env.rank, env.world_size, timeout, std::move(impl)));
}

void ProcessGroup::broadcast(std::vector<at::Tensor> tensors, int root) {
  ::c10d::BroadcastOptions options;
  options.rootRank = root;
  for (auto& tensor : tensors) {
    std::vector<at::Tensor> one{tensor};
    run_collective(rank_, timeout_, "broadcast", [&] { return impl_->gloo->broadcast(one, options); });
  }
}

void ProcessGroup::all_reduce_sum(at::Tensor tensor) {
  std::vector<at::Tensor> one{std::move(tensor)};
  run_collective(rank_, timeout_, "all-reduce", [&] { return impl_->gloo->allreduce(one); });
}

std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_sum_async(at::Tensor tensor) {
  std::vector<at::Tensor> one{std::move(tensor)};
  try {
    return std::make_unique<GlooPending>(impl_->gloo->allreduce(one), rank_, timeout_);
  } catch (const std::exception& e) {
    throw Error(
        fmt::format("distributed: rank {}: gradient all-reduce failed: {}", rank_, first_line(e.what())));
  }
}

at::Tensor ProcessGroup::all_gather(const at::Tensor& tensor) {
  std::vector<at::Tensor> input{tensor.contiguous()};
  std::vector<std::vector<at::Tensor>> output(1);
  for (int r = 0; r < world_size_; ++r)
    output[0].push_back(at::empty_like(input[0]));
  run_collective(rank_, timeout_, "all-gather", [&] { return impl_->gloo->allgather(output, input); });
  return at::cat(output[0]);
}

void ProcessGroup::barrier() {
  run_collective(rank_, timeout_, "barrier", [&] { return impl_->gloo->barrier(); });
}

#else  // no c10d Gloo in this LibTorch

struct ProcessGroup::Impl {};

std::unique_ptr<ProcessGroup> ProcessGroup::connect(const DistEnv& env, std::chrono::milliseconds) {
  throw Error(fmt::format(
      "distributed: rank {} of {}: this hlip was built without c10d Gloo (libgloo-dev headers), so it "
      "cannot train on several processes",
      env.rank, env.world_size));
}
void ProcessGroup::broadcast(std::vector<at::Tensor>, int) {}
void ProcessGroup::all_reduce_sum(at::Tensor) {}
std::unique_ptr<ProcessGroup::Pending> ProcessGroup::all_reduce_sum_async(at::Tensor) {
  return nullptr;
}
at::Tensor ProcessGroup::all_gather(const at::Tensor& tensor) {
  return tensor;
}
void ProcessGroup::barrier() {}

#endif

ProcessGroup::ProcessGroup(int rank, int world_size, std::chrono::milliseconds timeout,
                           std::unique_ptr<Impl> impl)
    : rank_(rank), world_size_(world_size), timeout_(timeout), impl_(std::move(impl)) {}

ProcessGroup::~ProcessGroup() = default;

at::Tensor gather_features(ProcessGroup& group, const at::Tensor& local, bool with_grad) {
  const int64_t rows = local.size(0);
  const int64_t offset = group.rank() * rows;
  // Gloo carries CPU tensors: features on a GPU travel through host memory.
  const at::Tensor gathered =
      group.all_gather(local.detach().to(at::kCPU, at::kFloat)).to(local.device(), local.scalar_type());
  std::vector<at::Tensor> parts;
  if (offset > 0) parts.push_back(gathered.slice(0, 0, offset));
  parts.push_back(local);
  if (offset + rows < gathered.size(0)) parts.push_back(gathered.slice(0, offset + rows));
  at::Tensor out = at::cat(parts);
  if (with_grad && local.requires_grad()) {
    // The backward of an all-gather: every rank's gradient for these rows, summed; the slicing in cat's
    // backward then hands this rank its own rows.
    ProcessGroup* group_pointer = &group;
    out.register_hook([group_pointer](const at::Tensor& grad) {
      at::Tensor summed = grad.to(at::kCPU, at::kFloat).contiguous().clone();
      group_pointer->all_reduce_sum(summed);
      return summed.to(grad.device(), grad.scalar_type());
    });
  }
  return out;
}

GradReducer::GradReducer(ProcessGroup& group, std::vector<at::Tensor> parameters,
                         std::vector<at::Tensor> targets, int64_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)), targets_(std::move(targets)) {
  if (targets_.empty()) targets_ = parameters_;
  if (targets_.size() != parameters_.size())
    throw Error("GradReducer: parameters and targets differ in number");
  bucket_of_.assign(parameters_.size(), 0);
  slot_of_.assign(parameters_.size(), 0);
  seen_.assign(parameters_.size(), false);
  int64_t bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const int64_t size = parameters_[k].numel() * 4;
    if (buckets_.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
      buckets_.emplace_back();
      bytes = 0;
    }
    Bucket& bucket = buckets_.back();
    bucket.offsets.push_back(bytes / 4);
    bucket.members.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    slot_of_[k] = bucket.members.size() - 1;
    bytes += size;
  }
  for (auto& bucket : buckets_) {
    const int64_t elements = bucket.offsets.back() + parameters_[bucket.members.back()].numel();
    bucket.flat = at::zeros({elements}, at::kFloat);  // host memory: Gloo reduces CPU tensors
  }
  for (size_t k = 0; k < parameters_.size(); ++k) {
    hooks_.push_back(
        parameters_[k].register_hook([this, k](const at::Tensor& grad) { on_gradient(k, grad); }));
  }
}

GradReducer::~GradReducer() {
  for (size_t k = 0; k < hooks_.size(); ++k)
    parameters_[k].remove_hook(hooks_[k]);
}

void GradReducer::prepare() {
  armed_ = true;
}

void GradReducer::on_gradient(size_t index, const at::Tensor& grad) {
  if (!armed_) return;
  if (seen_[index])
    throw Error(fmt::format("GradReducer: parameter {} got two gradients in one pass", index));
  seen_[index] = true;
  Bucket& bucket = buckets_[bucket_of_[index]];
  at::Tensor view = bucket.flat.narrow(0, bucket.offsets[slot_of_[index]], grad.numel());
  view.copy_(grad.reshape(-1));
  // The hook runs before this pass's gradient is added to .grad: what earlier passes accumulated is there.
  const at::Tensor& accumulated = parameters_[index].grad();
  if (accumulated.defined()) view.add_(accumulated.reshape(-1).to(at::kCPU, at::kFloat));
  if (++bucket.ready == bucket.members.size()) launch_ready();
}

void GradReducer::launch_ready() {
  while (next_launch_ < buckets_.size() &&
         buckets_[next_launch_].ready == buckets_[next_launch_].members.size()) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.pending = group_.all_reduce_sum_async(bucket.flat);
  }
}

void GradReducer::finish() {
  for (size_t b = next_launch_; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      const size_t k = bucket.members[slot];
      if (seen_[k]) continue;
      // No gradient in this pass: what earlier passes accumulated, or zeros.
      at::Tensor view = bucket.flat.narrow(0, bucket.offsets[slot], parameters_[k].numel());
      const at::Tensor& accumulated = parameters_[k].grad();
      if (accumulated.defined()) {
        view.copy_(accumulated.reshape(-1));
      } else {
        view.zero_();
      }
      seen_[k] = true;
      ++bucket.ready;
    }
  }
  launch_ready();
  const double scale = 1.0 / static_cast<double>(group_.world_size());
  for (auto& bucket : buckets_) {
    if (bucket.pending) bucket.pending->wait();
    bucket.pending.reset();
    bucket.flat.mul_(scale);
    for (size_t slot = 0; slot < bucket.members.size(); ++slot) {
      at::Tensor& target = targets_[bucket.members[slot]];
      target.mutable_grad() = bucket.flat.narrow(0, bucket.offsets[slot], target.numel())
                                  .view(target.sizes())
                                  .to(target.device(), target.scalar_type(), /*non_blocking=*/false,
                                      /*copy=*/true);
    }
    bucket.ready = 0;
  }
  std::fill(seen_.begin(), seen_.end(), false);
  next_launch_ = 0;
  armed_ = false;
}

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("distributed: cannot open a socket to find a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    throw Error("distributed: cannot find a free port on 127.0.0.1");
  }
  close(fd);
  return ntohs(address.sin_port);
}

namespace {

std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  size_t start = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\0') {
      args.push_back(raw.substr(start, i - start));
      start = i + 1;
    }
  }
  if (args.empty())
    throw Error("--nproc-per-node: cannot read this process's command line (/proc/self/cmdline)");
  return args;
}

int exit_status(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

int spawn_local_workers(int nproc, int threads, std::chrono::milliseconds grace) {
  const std::vector<std::string> args = own_command_line();
  const int port = free_local_port();
  const int per_worker = std::max(1, threads / nproc);
  std::vector<pid_t> workers;
  for (int rank = 0; rank < nproc; ++rank) {
    const pid_t pid = fork();
    if (pid < 0) {
      for (const pid_t started : workers)
        kill(started, SIGTERM);
      throw Error(fmt::format("--nproc-per-node {}: cannot start worker {}: fork failed", nproc, rank));
    }
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv("HLIP_WORKER_THREADS", std::to_string(per_worker).c_str(), 1);
      std::vector<char*> argv;
      for (const auto& arg : args)
        argv.push_back(const_cast<char*>(arg.c_str()));
      argv.push_back(nullptr);
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    workers.push_back(pid);
  }
  int result = 0;
  size_t running = workers.size();
  std::optional<std::chrono::steady_clock::time_point> failed_at;
  bool terminated = false;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;
    if (pid > 0) {
      for (size_t rank = 0; rank < workers.size(); ++rank) {
        if (workers[rank] != pid) continue;
        workers[rank] = -1;
        --running;
        const int code = exit_status(status);
        if (code != 0 && result == 0) {
          result = code;
          failed_at = std::chrono::steady_clock::now();
          const std::string how = WIFSIGNALED(status)
                                      ? fmt::format("was killed by signal {}", WTERMSIG(status))
                                      : fmt::format("exited with status {}", code);
          std::fprintf(stderr, "hlip: worker of rank %zu %s; the other workers stop\n", rank, how.c_str());
        }
      }
      continue;
    }
    if (failed_at && !terminated && std::chrono::steady_clock::now() - *failed_at > grace) {
      for (const pid_t worker : workers)
        if (worker > 0) kill(worker, SIGTERM);
      terminated = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return result;
}

std::optional<int> launch_workers_if_asked(int64_t nproc_per_node, double timeout_seconds) {
  if (nproc_per_node > 1 && std::getenv("RANK") == nullptr) {
    // A failed worker's peers notice at their next collective; give them up to a minute to say so.
    const double grace = std::min(timeout_seconds, 60.0);
    return spawn_local_workers(static_cast<int>(nproc_per_node), at::get_num_threads(),
                               std::chrono::milliseconds(static_cast<int64_t>(grace * 1000)));
  }
  if (const auto threads = env_int("HLIP_WORKER_THREADS", 1)) configure_threads(*threads);
  return std::nullopt;
}

}  // namespace hlip::train
