#include "hlip/train/optim.h"

#include <fmt/format.h>

#include <cmath>

#include "hlip/core/error.h"

namespace hlip::train {

bool excluded_from_weight_decay(const std::string& name, const at::Tensor& parameter) {
  return parameter.dim() < 2 || name.find("bn") != std::string::npos ||
         name.find("ln") != std::string::npos || name.find("bias") != std::string::npos ||
         name.find("logit_scale") != std::string::npos;
}

std::vector<NamedParameter> named_trainable_parameters(torch::nn::Module& module) {
  std::vector<NamedParameter> out;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    out.push_back({item.key(), item.value(), !excluded_from_weight_decay(item.key(), item.value())});
  }
  return out;
}

AdamW::AdamW(std::vector<NamedParameter> parameters, AdamWOptions options)
    : parameters_(std::move(parameters)), slots_(parameters_.size()), options_(options) {
  if (!(options_.lr >= 0)) throw UsageError(fmt::format("lr {} must be non-negative", options_.lr));
  if (!(options_.beta1 >= 0 && options_.beta1 < 1)) {
    throw UsageError(fmt::format("beta1 {} must be in [0, 1)", options_.beta1));
  }
  if (!(options_.beta2 >= 0 && options_.beta2 < 1)) {
    throw UsageError(fmt::format("beta2 {} must be in [0, 1)", options_.beta2));
  }
  if (!(options_.eps >= 0)) throw UsageError(fmt::format("eps {} must be non-negative", options_.eps));
  if (!(options_.weight_decay >= 0)) {
    throw UsageError(fmt::format("weight decay {} must be non-negative", options_.weight_decay));
  }
}

void AdamW::step() {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    at::Tensor& param = parameters_[i].tensor;
    const at::Tensor& grad = param.grad();
    if (!grad.defined()) continue;
    Slot& slot = slots_[i];
    if (!slot.exp_avg.defined()) {
      slot.exp_avg = at::zeros_like(param, at::MemoryFormat::Preserve);
      slot.exp_avg_sq = at::zeros_like(param, at::MemoryFormat::Preserve);
    }
    ++slot.step;
    const double decay = parameters_[i].decay ? options_.weight_decay : 0.0;
    // torch.optim.AdamW (single-tensor path), operation for operation.
    param.mul_(1.0 - options_.lr * decay);
    slot.exp_avg.lerp_(grad, 1.0 - options_.beta1);
    slot.exp_avg_sq.mul_(options_.beta2).addcmul_(grad, grad, 1.0 - options_.beta2);
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(slot.step));
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(slot.step));
    const double step_size = options_.lr / bias_correction1;
    const at::Tensor denom = (slot.exp_avg_sq.sqrt() / std::sqrt(bias_correction2)).add_(options_.eps);
    param.addcdiv_(slot.exp_avg, denom, -step_size);
  }
}

void AdamW::zero_grad() {
  for (auto& parameter : parameters_) {
    if (parameter.tensor.grad().defined()) parameter.tensor.mutable_grad() = at::Tensor();
  }
}

std::map<std::string, at::Tensor> AdamW::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const Slot& slot = slots_[i];
    if (!slot.exp_avg.defined()) continue;
    const std::string& name = parameters_[i].name;
    out.emplace(name + ".exp_avg", slot.exp_avg);
    out.emplace(name + ".exp_avg_sq", slot.exp_avg_sq);
    out.emplace(name + ".step", at::scalar_tensor(slot.step, at::kLong));
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, at::Tensor>& state) {
  size_t used = 0;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const std::string& name = parameters_[i].name;
    const auto avg = state.find(name + ".exp_avg");
    const auto avg_sq = state.find(name + ".exp_avg_sq");
    const auto step = state.find(name + ".step");
    if (avg == state.end() && avg_sq == state.end() && step == state.end()) {
      slots_[i] = Slot{};  // never updated
      continue;
    }
    if (avg == state.end() || avg_sq == state.end() || step == state.end()) {
      throw Error(fmt::format(
          "optimizer state of \"{}\" is incomplete (exp_avg, exp_avg_sq and step are needed)", name));
    }
    const at::Tensor& param = parameters_[i].tensor;
    for (const auto* entry : {&*avg, &*avg_sq}) {
      if (entry->second.sizes() != param.sizes()) {
        throw Error(fmt::format("optimizer state \"{}\" has shape {}, the parameter has {}", entry->first,
                                c10::str(entry->second.sizes()), c10::str(param.sizes())));
      }
    }
    slots_[i].exp_avg = avg->second.to(param.options()).clone();
    slots_[i].exp_avg_sq = avg_sq->second.to(param.options()).clone();
    slots_[i].step = step->second.item<int64_t>();
    used += 3;
  }
  if (used != state.size()) {
    for (const auto& [key, value] : state) {
      bool known = false;
      for (const auto& parameter : parameters_) {
        known |= key.rfind(parameter.name + ".", 0) == 0 && key.size() > parameter.name.size() + 1 &&
                 key.find('.', parameter.name.size() + 1) == std::string::npos;
      }
      if (!known) throw Error(fmt::format("optimizer state \"{}\" belongs to no trainable parameter", key));
    }
  }
}

double clip_grad_norm(const std::vector<NamedParameter>& parameters, double max_norm) {
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (const auto& parameter : parameters) {
    if (parameter.tensor.grad().defined()) norms.push_back(parameter.tensor.grad().to(at::kFloat).norm());
  }
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm().item<double>();
  const double scale = max_norm / (total + 1e-6);
  if (max_norm > 0 && scale < 1.0) {
    for (const auto& parameter : parameters) {
      if (parameter.tensor.grad().defined()) parameter.tensor.grad().mul_(scale);
    }
  }
  return total;
}

Schedule parse_schedule(const std::string& name) {
  if (name == "cosine") return Schedule::kCosine;
  if (name == "const") return Schedule::kConstant;
  if (name == "const-cooldown") return Schedule::kConstantCooldown;
  throw UsageError(
      fmt::format("lr scheduler \"{}\" is unknown, expected cosine, const or const-cooldown", name));
}

std::string to_string(Schedule schedule) {
  switch (schedule) {
    case Schedule::kCosine:
      return "cosine";
    case Schedule::kConstant:
      return "const";
    case Schedule::kConstantCooldown:
      return "const-cooldown";
  }
  return "cosine";
}

double learning_rate(const ScheduleOptions& options, int64_t step) {
  if (step < options.warmup_steps) {
    return options.base_lr * static_cast<double>(step + 1) / static_cast<double>(options.warmup_steps);
  }
  switch (options.schedule) {
    case Schedule::kConstant:
      return options.base_lr;
    case Schedule::kConstantCooldown: {
      const int64_t start = options.total_steps - options.cooldown_steps;
      if (step < start) return options.base_lr;
      const double e = static_cast<double>(step - start);
      const double es = static_cast<double>(std::max<int64_t>(options.cooldown_steps, 1));
      const double decay = std::pow(1.0 - e / es, options.cooldown_power);
      return decay * (options.base_lr - options.lr_cooldown_end) + options.lr_cooldown_end;
    }
    case Schedule::kCosine: {
      const double e = static_cast<double>(step - options.warmup_steps);
      const double es = static_cast<double>(std::max<int64_t>(options.total_steps - options.warmup_steps, 1));
      return 0.5 * (1.0 + std::cos(M_PI * e / es)) * options.base_lr;
    }
  }
  return options.base_lr;
}

}  // namespace hlip::train
