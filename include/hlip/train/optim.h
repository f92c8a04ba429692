#pragma once
// AdamW with open_clip's parameter groups, and the learning-rate schedules of open_clip's trainer.
//
//   auto params = hlip::train::named_trainable_parameters(*model);
//   hlip::train::AdamW optimizer(params, {.lr = 5e-4, .weight_decay = 0.2, .beta2 = 0.98, .eps = 1e-6});
//   optimizer.set_lr(hlip::train::learning_rate(schedule, step));
//   loss.backward();
//   optimizer.step();
//
// The optimizer is hlip's own rather than torch::optim::AdamW: its state is a plain name → tensor map that
// goes into safetensors checkpoints under the parameters' open_clip names (LibTorch keeps the state keyed by
// tensor addresses, in a form that changed between 1.13 and 2.x), and it can step fp32 master weights whose
// gradients come from a bf16 copy of the model. The update is exactly torch.optim.AdamW's (tested against
// it).

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

namespace hlip::train {

// open_clip's rule (main.py): no weight decay for parameters with fewer than 2 dimensions (gains, biases,
// the logit scale and bias) or whose name contains "bn", "ln", "bias" or "logit_scale".
bool excluded_from_weight_decay(const std::string& name, const at::Tensor& parameter);

struct NamedParameter {
  std::string name;
  at::Tensor tensor;  // the parameter itself (its .grad() is read)
  bool decay = true;
};

// The module's parameters that require gradients, in registration order, with their decay group.
std::vector<NamedParameter> named_trainable_parameters(torch::nn::Module& module);

struct AdamWOptions {
  double lr = 5e-4;
  double weight_decay = 0.2;
  double beta1 = 0.9;
  double beta2 = 0.98;
  double eps = 1e-6;
};

class AdamW {
 public:
  AdamW(std::vector<NamedParameter> parameters, AdamWOptions options);

  void set_lr(double lr) { options_.lr = lr; }
  double lr() const { return options_.lr; }
  const AdamWOptions& options() const { return options_; }
  const std::vector<NamedParameter>& parameters() const { return parameters_; }

  // One update from the parameters' .grad() (parameters without a gradient are skipped, as torch does).
  void step();
  void zero_grad();

  // The state as tensors: "<name>.exp_avg", "<name>.exp_avg_sq" and a 0-dim int64 "<name>.step" for every
  // parameter that has been updated. load_state checks every name and shape.
  std::map<std::string, at::Tensor> state() const;
  void load_state(const std::map<std::string, at::Tensor>& state);

 private:
  struct Slot {
    at::Tensor exp_avg;
    at::Tensor exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<NamedParameter> parameters_;
  std::vector<Slot> slots_;
  AdamWOptions options_;
};

// Global L2 norm of the gradients, clipped to `max_norm` in place (torch.nn.utils.clip_grad_norm_); returns
// the norm before clipping.
double clip_grad_norm(const std::vector<NamedParameter>& parameters, double max_norm);

enum class Schedule { kCosine, kConstant, kConstantCooldown };
Schedule parse_schedule(const std::string& name);  // "cosine" | "const" | "const-cooldown"
std::string to_string(Schedule schedule);

struct ScheduleOptions {
  Schedule schedule = Schedule::kCosine;
  double base_lr = 5e-4;
  int64_t warmup_steps = 10000;
  int64_t total_steps = 0;
  int64_t cooldown_steps = 0;  // const-cooldown: the last steps that decay to lr_cooldown_end
  double lr_cooldown_end = 0.0;
  double cooldown_power = 1.0;  // 1 = linear
};

// The learning rate of step `step` (0-based), as open_clip's scheduler.py: linear warm-up
// base_lr·(step + 1)/warmup, then cosine 0.5·(1 + cos(π·e/es))·base_lr over the remaining steps, or constant,
// or constant with a polynomial cooldown.
double learning_rate(const ScheduleOptions& options, int64_t step);

}  // namespace hlip::train
