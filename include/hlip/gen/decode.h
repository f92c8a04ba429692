#pragma once
// Autoregressive decoding for the report decoder (and any next-token model): greedy search and beam search
// with Hugging Face's length penalty, over a function that gives the next token's log-probabilities.
//
//   hlip::gen::DecodeOptions options;
//   options.prompt = {cls_id};  options.eos_id = sep_id;  options.beams = 4;
//   auto best = hlip::gen::decode([&](const auto& prefixes) { return log_probs_of(prefixes); }, options);
//   tokenizer.decode(best.tokens, {.skip_special_tokens = true});

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace hlip::gen {

// Log-probabilities float [n, V] of the next token after each of n prefixes (all of the same length).
using NextTokenLogProbs = std::function<at::Tensor(const std::vector<std::vector<int64_t>>& prefixes)>;

struct DecodeOptions {
  std::vector<int64_t> prompt;  // the fixed start: [CLS], or [CLS] question [SEP] for VQA
  int64_t eos_id = 0;           // ends a hypothesis
  int64_t max_new_tokens = 96;  // generated tokens at most (EOS included)
  int64_t beams = 1;            // 1: greedy
  // Hugging Face's: a finished beam's score is its summed log-probability / (generated length)^penalty
  // (length counts EOS); > 0 favours longer outputs, 0 ranks by log-probability alone.
  double length_penalty = 1.0;
};

struct Decoded {
  std::vector<int64_t> tokens;  // generated, without the prompt and without EOS
  double log_prob = 0;          // summed over the generated tokens (EOS included when finished)
  double score = 0;             // log_prob with the length penalty (beam search), = log_prob for greedy
  bool finished = false;        // ended with EOS (else stopped at max_new_tokens)
};

// Greedy: the most likely token each step (ties: the lowest id), until EOS or max_new_tokens.
Decoded greedy_decode(const NextTokenLogProbs& next, const DecodeOptions& options);
// Beam search as Hugging Face's (early_stopping = false): `beams` live hypotheses, 2·beams candidates per
// step, hypotheses ending in EOS kept by score; stops when `beams` are finished and no live one can still
// beat the worst of them, or at max_new_tokens (live hypotheses then count as finished). Returns the
// highest-scoring one.
Decoded beam_search(const NextTokenLogProbs& next, const DecodeOptions& options);
// greedy_decode when options.beams is 1, else beam_search.
Decoded decode(const NextTokenLogProbs& next, const DecodeOptions& options);

}  // namespace hlip::gen
