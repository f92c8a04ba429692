#include "hlip/model/state_dict.h"

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

namespace hlip::model {
namespace {

// Long key lists (a wrong source_prefix misses every key) are cut in messages; the report keeps them all.
constexpr size_t kKeysShownInMessages = 20;

std::string key_list(const std::vector<std::string>& keys) {
  if (keys.size() <= kKeysShownInMessages) return fmt::format("{}", fmt::join(keys, ", "));
  return fmt::format("{}, ... and {} more",
                     fmt::join(keys.begin(), keys.begin() + kKeysShownInMessages, ", "),
                     keys.size() - kKeysShownInMessages);
}

std::string shape_text(at::IntArrayRef shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Glob match where '*' stands for any run of characters (dots included) and everything else is literal.
bool matches(const std::string& pattern, const std::string& key) {
  size_t p = 0, k = 0, star = std::string::npos, resume = 0;
  while (k < key.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = k;
    } else if (p < pattern.size() && pattern[p] == key[k]) {
      ++p;
      ++k;
    } else if (star != std::string::npos) {
      p = star + 1;
      k = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*')
    ++p;
  return p == pattern.size();
}

bool is_ignored(const LoadOptions& options, const std::string& key) {
  for (const auto& pattern : options.ignore) {
    if (matches(pattern, key)) return true;
  }
  return false;
}

// The live parameters and buffers (not detached): loading writes through them.
std::map<std::string, at::Tensor> live_state(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (item.value().defined()) state.emplace(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    if (!item.value().defined()) continue;
    if (!state.emplace(item.key(), item.value()).second) {
      throw Error(
          fmt::format("module {}: \"{}\" names both a parameter and a buffer", module.name(), item.key()));
    }
  }
  return state;
}

}  // namespace

std::string LoadReport::summary() const {
  std::string text = fmt::format("loaded {} tensors", loaded.size());
  if (!converted.empty()) text += fmt::format(" ({} converted to the module's dtype)", converted.size());
  text += fmt::format("; {} missing", missing.size());
  if (!missing.empty()) text += fmt::format(" ({})", key_list(missing));
  text += fmt::format("; {} unexpected", unexpected.size());
  if (!unexpected.empty()) text += fmt::format(" ({})", key_list(unexpected));
  if (!ignored.empty()) text += fmt::format("; {} ignored", ignored.size());
  return text;
}

std::map<std::string, at::Tensor> named_state(const torch::nn::Module& module) {
  std::map<std::string, at::Tensor> state = live_state(module);
  for (auto& [name, tensor] : state)
    tensor = tensor.detach();
  return state;
}

LoadReport load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                           const LoadOptions& options) {
  std::map<std::string, at::Tensor> targets = live_state(module);
  LoadReport report;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;  // (target, source), copied only after all checks
  std::vector<std::string> shape_errors;
  std::set<std::string> provided;

  for (const auto& [checkpoint_key, source] : state) {
    if (checkpoint_key.compare(0, options.source_prefix.size(), options.source_prefix) != 0) continue;
    const std::string key = checkpoint_key.substr(options.source_prefix.size());
    provided.insert(key);
    auto target = targets.find(key);
    if (target == targets.end()) {
      (is_ignored(options, key) ? report.ignored : report.unexpected).push_back(key);
      continue;
    }
    if (!source.defined())
      throw Error(fmt::format("checkpoint key \"{}\" holds an undefined tensor", checkpoint_key));
    if (source.sizes() != target->second.sizes()) {
      shape_errors.push_back(fmt::format("\"{}\": checkpoint shape {} vs module shape {}", checkpoint_key,
                                         shape_text(source.sizes()), shape_text(target->second.sizes())));
      continue;
    }
    copies.emplace_back(target->second, source);
    report.loaded.push_back(key);
    if (source.scalar_type() != target->second.scalar_type()) report.converted.push_back(key);
  }
  for (const auto& [key, tensor] : targets) {
    if (provided.count(key) == 0) (is_ignored(options, key) ? report.ignored : report.missing).push_back(key);
  }

  if (!shape_errors.empty()) {
    throw Error(fmt::format("{} shape mismatch{}: {}", shape_errors.size(),
                            shape_errors.size() == 1 ? "" : "es", fmt::join(shape_errors, "; ")));
  }
  if (options.strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::vector<std::string> parts;
    if (!report.missing.empty()) {
      parts.push_back(fmt::format("{} missing key(s) (in the module, not in the checkpoint): {}",
                                  report.missing.size(), key_list(report.missing)));
    }
    if (!report.unexpected.empty()) {
      parts.push_back(fmt::format("{} unexpected key(s) (in the checkpoint, not in the module): {}",
                                  report.unexpected.size(), key_list(report.unexpected)));
    }
    throw Error(fmt::format(
        "strict load{}: {}",
        options.source_prefix.empty() ? "" : fmt::format(" (source prefix \"{}\")", options.source_prefix),
        fmt::join(parts, "; ")));
  }

  at::NoGradGuard no_grad;
  for (auto& [target, source] : copies)
    target.copy_(source);
  return report;
}

void save_module(const torch::nn::Module& module, const std::string& path,
                 const std::map<std::string, std::string>& metadata) {
  io::write_safetensors(path, named_state(module), metadata);
}

LoadReport load_module(torch::nn::Module& module, const std::string& path, const LoadOptions& options) {
  io::SafetensorsFile file = io::read_safetensors(path);
  try {
    return load_state_dict(module, file.tensors, options);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace hlip::model
