#include "hlip/eval/text_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <utility>

#include "hlip/core/error.h"

namespace hlip::eval {

namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

char ascii_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_rouge_token_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Tokenisation

Tokens whitespace_tokenize(std::string_view text) {
  Tokens tokens;
  std::string current;
  for (char c : text) {
    if (is_ascii_space(c)) {
      if (!current.empty()) tokens.push_back(std::move(current));
      current.clear();
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

Tokens rouge_tokenize(std::string_view text) {
  Tokens tokens;
  std::string current;
  for (char raw : text) {
    const char c = ascii_lower(raw);
    if (is_rouge_token_char(c)) {
      current.push_back(c);
    } else if (!current.empty()) {
      tokens.push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) tokens.push_back(std::move(current));
  return tokens;
}

std::string normalize_answer(std::string_view text) {
  std::string out;
  for (const std::string& token : whitespace_tokenize(text)) {
    if (!out.empty()) out.push_back(' ');
    for (char c : token)
      out.push_back(ascii_lower(c));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// BLEU

BleuOptions bleu_options(int max_order, BleuSmoothing smoothing) {
  if (max_order < 1) throw Error(fmt::format("BLEU max_order is {}, must be >= 1", max_order));
  BleuOptions options;
  options.weights.assign(static_cast<std::size_t>(max_order), 1.0 / max_order);
  options.smoothing = smoothing;
  return options;
}

namespace {

using NgramCounts = std::map<std::vector<std::string>, std::int64_t>;

NgramCounts count_ngrams(const Tokens& tokens, std::size_t n) {
  NgramCounts counts;
  if (tokens.size() < n) return counts;
  for (std::size_t i = 0; i + n <= tokens.size(); ++i) {
    counts[std::vector<std::string>(tokens.begin() + static_cast<std::ptrdiff_t>(i),
                                    tokens.begin() + static_cast<std::ptrdiff_t>(i + n))] += 1;
  }
  return counts;
}

// nltk's modified_precision: hypothesis n-grams clipped by their largest count in any single reference;
// the denominator is at least 1.
std::pair<std::int64_t, std::int64_t> modified_precision(const std::vector<Tokens>& references,
                                                         const Tokens& hypothesis, std::size_t n) {
  const NgramCounts counts = count_ngrams(hypothesis, n);
  std::map<std::vector<std::string>, std::int64_t> max_counts;
  for (const Tokens& reference : references) {
    const NgramCounts reference_counts = count_ngrams(reference, n);
    for (const auto& [ngram, count] : counts) {
      const auto it = reference_counts.find(ngram);
      const std::int64_t in_reference = it == reference_counts.end() ? 0 : it->second;
      std::int64_t& best = max_counts[ngram];
      best = std::max(best, in_reference);
    }
  }
  std::int64_t clipped = 0, total = 0;
  for (const auto& [ngram, count] : counts) {
    clipped += std::min(count, max_counts[ngram]);
    total += count;
  }
  return {clipped, std::max<std::int64_t>(1, total)};
}

// The reference length closest to the hypothesis length, the shorter one on ties.
std::int64_t closest_reference_length(const std::vector<Tokens>& references, std::int64_t hypothesis_length) {
  std::int64_t best = static_cast<std::int64_t>(references.front().size());
  for (const Tokens& reference : references) {
    const std::int64_t length = static_cast<std::int64_t>(reference.size());
    const std::int64_t distance = std::abs(length - hypothesis_length);
    const std::int64_t best_distance = std::abs(best - hypothesis_length);
    if (distance < best_distance || (distance == best_distance && length < best)) best = length;
  }
  return best;
}

double brevity_penalty(std::int64_t reference_length, std::int64_t hypothesis_length) {
  if (hypothesis_length > reference_length) return 1.0;
  if (hypothesis_length == 0) return 0.0;
  return std::exp(1.0 - static_cast<double>(reference_length) / static_cast<double>(hypothesis_length));
}

// Compensated (Neumaier) summation, close to Python's math.fsum for the few terms BLEU adds.
double accurate_sum(const std::vector<double>& terms) {
  double sum = 0.0, compensation = 0.0;
  for (double term : terms) {
    const double t = sum + term;
    if (std::abs(sum) >= std::abs(term)) {
      compensation += (sum - t) + term;
    } else {
      compensation += (term - t) + sum;
    }
    sum = t;
  }
  return sum + compensation;
}

void check_options(const BleuOptions& options) {
  if (options.weights.empty()) throw Error("BLEU weights are empty");
  for (std::size_t i = 0; i < options.weights.size(); ++i) {
    if (!std::isfinite(options.weights[i]) || options.weights[i] < 0) {
      throw Error(fmt::format("BLEU weights[{}] is {}, must be finite and >= 0", i, options.weights[i]));
    }
  }
}

}  // namespace

BleuResult corpus_bleu(const std::vector<std::vector<Tokens>>& list_of_references,
                       const std::vector<Tokens>& hypotheses, const BleuOptions& options) {
  check_options(options);
  if (list_of_references.size() != hypotheses.size()) {
    throw Error(fmt::format("hypotheses has {} entries but list_of_references has {}", hypotheses.size(),
                            list_of_references.size()));
  }
  if (hypotheses.empty()) throw Error("BLEU of an empty corpus");
  const std::size_t max_order = options.weights.size();
  BleuResult result;
  result.matches.assign(max_order, 0);
  result.totals.assign(max_order, 0);
  for (std::size_t s = 0; s < hypotheses.size(); ++s) {
    const std::vector<Tokens>& references = list_of_references[s];
    if (references.empty()) throw Error(fmt::format("list_of_references[{}] has no reference", s));
    for (std::size_t n = 1; n <= max_order; ++n) {
      const auto [clipped, total] = modified_precision(references, hypotheses[s], n);
      result.matches[n - 1] += clipped;
      result.totals[n - 1] += total;
    }
    const std::int64_t length = static_cast<std::int64_t>(hypotheses[s].size());
    result.hypothesis_length += length;
    result.reference_length += closest_reference_length(references, length);
  }
  result.brevity_penalty = brevity_penalty(result.reference_length, result.hypothesis_length);
  for (std::size_t n = 1; n <= max_order; ++n) {
    if (result.matches[n - 1] == 0) result.zero_match_orders.push_back(static_cast<int>(n));
  }
  // nltk returns 0 outright when not even a unigram matches, whatever the smoothing.
  if (result.matches[0] == 0) {
    result.score = 0.0;
    return result;
  }

  // The smoothed precisions; a value <= 0 is left out of the geometric mean, as nltk does.
  std::vector<double> precisions(max_order);
  int geometric_step = 1;  // methods 3 and 4: the k-th zero-match order is divided by 2^k
  for (std::size_t i = 0; i < max_order; ++i) {
    const double matches = static_cast<double>(result.matches[i]);
    const double totals = static_cast<double>(result.totals[i]);
    const bool zero = result.matches[i] == 0;
    switch (options.smoothing) {
      case BleuSmoothing::kNone:
        precisions[i] = zero ? DBL_MIN : matches / totals;
        break;
      case BleuSmoothing::kMethod1:
        precisions[i] = zero ? (matches + options.epsilon) / totals : matches / totals;
        break;
      case BleuSmoothing::kMethod2:
        precisions[i] = i == 0 ? matches / totals : (matches + 1.0) / (totals + 1.0);
        break;
      case BleuSmoothing::kMethod3:
        precisions[i] = zero ? 1.0 / (std::ldexp(1.0, geometric_step++) * totals) : matches / totals;
        break;
      case BleuSmoothing::kMethod4:
        if (zero && result.hypothesis_length > 1) {
          const double numerator = 1.0 / (std::ldexp(1.0, geometric_step++) * options.k /
                                          std::log(static_cast<double>(result.hypothesis_length)));
          precisions[i] = numerator / totals;
        } else {
          precisions[i] = matches / totals;
        }
        break;
    }
  }
  std::vector<double> terms;
  for (std::size_t i = 0; i < max_order; ++i) {
    if (precisions[i] > 0) terms.push_back(options.weights[i] * std::log(precisions[i]));
  }
  result.score = result.brevity_penalty * std::exp(accurate_sum(terms));
  return result;
}

BleuResult sentence_bleu(const std::vector<Tokens>& references, const Tokens& hypothesis,
                         const BleuOptions& options) {
  if (references.empty()) throw Error("sentence_bleu: references is empty");
  return corpus_bleu({references}, {hypothesis}, options);
}

// ---------------------------------------------------------------------------------------------------------
// ROUGE-L

std::int64_t lcs_length(const Tokens& a, const Tokens& b) {
  std::vector<std::int64_t> previous(b.size() + 1, 0), current(b.size() + 1, 0);
  for (const std::string& x : a) {
    current[0] = 0;
    for (std::size_t j = 0; j < b.size(); ++j) {
      current[j + 1] = x == b[j] ? previous[j] + 1 : std::max(previous[j + 1], current[j]);
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

RougeL rouge_l_tokens(const Tokens& reference, const Tokens& prediction) {
  RougeL out;
  if (reference.empty() || prediction.empty()) return out;
  out.lcs = lcs_length(reference, prediction);
  out.precision = static_cast<double>(out.lcs) / static_cast<double>(prediction.size());
  out.recall = static_cast<double>(out.lcs) / static_cast<double>(reference.size());
  const double sum = out.precision + out.recall;
  out.fmeasure = sum == 0 ? 0.0 : 2 * out.precision * out.recall / sum;
  return out;
}

RougeL rouge_l(std::string_view reference, std::string_view prediction) {
  return rouge_l_tokens(rouge_tokenize(reference), rouge_tokenize(prediction));
}

RougeL mean_rouge_l(const std::vector<std::string>& references, const std::vector<std::string>& predictions) {
  if (references.size() != predictions.size()) {
    throw Error(fmt::format("predictions has {} entries but references has {}", predictions.size(),
                            references.size()));
  }
  if (references.empty()) throw Error("mean ROUGE-L of no pairs");
  RougeL mean;
  for (std::size_t i = 0; i < references.size(); ++i) {
    const RougeL one = rouge_l(references[i], predictions[i]);
    mean.precision += one.precision;
    mean.recall += one.recall;
    mean.fmeasure += one.fmeasure;
    mean.lcs += one.lcs;
  }
  const double n = static_cast<double>(references.size());
  mean.precision /= n;
  mean.recall /= n;
  mean.fmeasure /= n;
  return mean;
}

// ---------------------------------------------------------------------------------------------------------
// Exact match

double exact_match_accuracy(const std::vector<std::string>& predictions,
                            const std::vector<std::string>& references, bool normalize) {
  if (references.size() != predictions.size()) {
    throw Error(fmt::format("predictions has {} entries but references has {}", predictions.size(),
                            references.size()));
  }
  if (references.empty()) throw Error("exact match of no pairs");
  std::size_t matches = 0;
  for (std::size_t i = 0; i < references.size(); ++i) {
    const bool equal = normalize ? normalize_answer(predictions[i]) == normalize_answer(references[i])
                                 : predictions[i] == references[i];
    matches += equal ? 1 : 0;
  }
  return static_cast<double>(matches) / static_cast<double>(references.size());
}

}  // namespace hlip::eval
