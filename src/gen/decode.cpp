#include "hlip/gen/decode.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "hlip/core/error.h"

namespace hlip::gen {
namespace {

std::vector<int64_t> with_prompt(const DecodeOptions& options, const std::vector<int64_t>& tokens) {
  std::vector<int64_t> out = options.prompt;
  out.insert(out.end(), tokens.begin(), tokens.end());
  return out;
}

double penalised(double log_prob, int64_t length, double penalty) {
  return log_prob / std::pow(static_cast<double>(std::max<int64_t>(length, 1)), penalty);
}

void check(const DecodeOptions& options) {
  if (options.prompt.empty()) throw Error("decode: the prompt is empty (it needs at least the start token)");
  if (options.beams < 1) throw Error(fmt::format("decode: beams {} must be at least 1", options.beams));
  if (options.max_new_tokens < 1)
    throw Error(fmt::format("decode: max_new_tokens {} must be at least 1", options.max_new_tokens));
}

}  // namespace

Decoded greedy_decode(const NextTokenLogProbs& next, const DecodeOptions& options) {
  check(options);
  Decoded out;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const at::Tensor log_probs = next({with_prompt(options, out.tokens)}).to(at::kDouble)[0];
    const int64_t token = log_probs.argmax().item<int64_t>();
    out.log_prob += log_probs[token].item<double>();
    if (token == options.eos_id) {
      out.finished = true;
      break;
    }
    out.tokens.push_back(token);
  }
  out.score = out.log_prob;
  return out;
}

Decoded beam_search(const NextTokenLogProbs& next, const DecodeOptions& options) {
  check(options);
  const auto beams = static_cast<size_t>(options.beams);
  struct Live {
    std::vector<int64_t> tokens;
    double log_prob;
  };
  std::vector<Live> live{{{}, 0.0}};
  std::vector<Decoded> finished;  // the best `beams`, by score
  const auto add_finished = [&](Decoded hypothesis) {
    finished.push_back(std::move(hypothesis));
    std::stable_sort(finished.begin(), finished.end(),
                     [](const Decoded& a, const Decoded& b) { return a.score > b.score; });
    if (finished.size() > beams) finished.pop_back();
  };
  for (int64_t step = 0; step < options.max_new_tokens && !live.empty(); ++step) {
    std::vector<std::vector<int64_t>> prefixes;
    for (const auto& hypothesis : live)
      prefixes.push_back(with_prompt(options, hypothesis.tokens));
    const at::Tensor log_probs = next(prefixes).to(at::kDouble).contiguous();
    const int64_t vocab = log_probs.size(1);
    // Every continuation's total, the best 2·beams of them in order (ties: earlier beam, lower id).
    std::vector<double> so_far;
    for (const auto& hypothesis : live)
      so_far.push_back(hypothesis.log_prob);
    const at::Tensor totals = (log_probs + at::tensor(so_far, at::kDouble).unsqueeze(1)).reshape({-1});
    const int64_t k = std::min<int64_t>(2 * options.beams, totals.numel());
    const auto [values, indices] = totals.topk(k, 0, /*largest=*/true, /*sorted=*/true);
    std::vector<Live> next_live;
    const int64_t generated = step + 1;
    for (int64_t c = 0; c < k && next_live.size() < beams; ++c) {
      const int64_t index = indices[c].item<int64_t>();
      const double total = values[c].item<double>();
      if (!std::isfinite(total)) break;
      const Live& parent = live[static_cast<size_t>(index / vocab)];
      const int64_t token = index % vocab;
      if (token == options.eos_id) {
        add_finished({parent.tokens, total, penalised(total, generated, options.length_penalty), true});
        continue;
      }
      Live child{parent.tokens, total};
      child.tokens.push_back(token);
      next_live.push_back(std::move(child));
    }
    live = std::move(next_live);
    // Done when `beams` hypotheses are finished and the best live one, scored at this length, cannot beat
    // the worst of them (Hugging Face's heuristic).
    if (finished.size() >= beams && !live.empty() &&
        penalised(live.front().log_prob, generated, options.length_penalty) <= finished.back().score) {
      live.clear();
    }
  }
  for (const auto& hypothesis : live) {
    const auto length = static_cast<int64_t>(hypothesis.tokens.size());
    add_finished({hypothesis.tokens, hypothesis.log_prob,
                  penalised(hypothesis.log_prob, length, options.length_penalty), false});
  }
  if (finished.empty()) throw Error("beam search: no hypothesis (every continuation had probability 0)");
  return finished.front();
}

Decoded decode(const NextTokenLogProbs& next, const DecodeOptions& options) {
  return options.beams == 1 ? greedy_decode(next, options) : beam_search(next, options);
}

}  // namespace hlip::gen
