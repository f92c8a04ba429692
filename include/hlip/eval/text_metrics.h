#pragma once
// Metrics for generated text (report generation, generative VQA): BLEU as nltk.translate.bleu_score defines
// it, ROUGE-L as Google's rouge-score computes `rougeL`, and exact match. Plain C++: no LibTorch.
//
//   using namespace hlip::eval;
//   Tokens hypothesis = whitespace_tokenize("no acute intracranial hemorrhage .");
//   BleuResult b = sentence_bleu({whitespace_tokenize(reference)}, hypothesis);       // BLEU-4, no smoothing
//   BleuResult b1 = sentence_bleu({ref_tokens}, hypothesis, bleu_options(1, BleuSmoothing::kMethod1));
//   RougeL r = rouge_l(reference_text, generated_text);                                // r.fmeasure
//
// BLEU takes tokens (tokenise first); ROUGE-L takes raw text and tokenises it the rouge-score way.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hlip::eval {

using Tokens = std::vector<std::string>;

// ---------------------------------------------------------------------------------------------------------
// Tokenisation

// Splits on ASCII whitespace; no other change.
Tokens whitespace_tokenize(std::string_view text);
// rouge-score's tokeniser without stemming: ASCII-lowercase, then every run of characters outside [a-z0-9]
// separates tokens (non-ASCII bytes are separators).
Tokens rouge_tokenize(std::string_view text);
// Normalisation for exact match: ASCII-lowercase, trim, collapse runs of whitespace to one space.
std::string normalize_answer(std::string_view text);

// ---------------------------------------------------------------------------------------------------------
// BLEU (nltk 3.8 definitions, scale 0..1)

// nltk's SmoothingFunction methods 0-4 (epsilon 0.1, k 5 as nltk's defaults).
enum class BleuSmoothing { kNone, kMethod1, kMethod2, kMethod3, kMethod4 };

struct BleuOptions {
  std::vector<double> weights = {0.25, 0.25, 0.25, 0.25};  // one per n-gram order, from 1
  BleuSmoothing smoothing = BleuSmoothing::kNone;
  double epsilon = 0.1;  // method1's added count
  double k = 5.0;        // method4's constant
};
// BLEU-n: uniform weights 1/n over orders 1..n.
BleuOptions bleu_options(int max_order, BleuSmoothing smoothing = BleuSmoothing::kNone);

struct BleuResult {
  double score = 0.0;
  // Per order n (index n-1): clipped matches and hypothesis n-gram counts, summed over the corpus; each
  // sentence counts at least 1 in `totals` (nltk's max(1, count)).
  std::vector<std::int64_t> matches;
  std::vector<std::int64_t> totals;
  double brevity_penalty = 0.0;
  std::int64_t hypothesis_length = 0;
  std::int64_t reference_length = 0;  // sum of the closest reference lengths (shorter on ties)
  // Orders with no match. Without smoothing nltk then substitutes DBL_MIN for that precision (and warns), so
  // the score is a tiny positive number such as 1e-155 rather than 0; this reproduces it.
  std::vector<int> zero_match_orders;
};

// One hypothesis against one or more references.
BleuResult sentence_bleu(const std::vector<Tokens>& references, const Tokens& hypothesis,
                         const BleuOptions& options = {});
// Pools clipped matches, counts and lengths over the corpus before dividing: not the mean of sentence BLEUs.
// As in nltk, smoothing method4 uses the corpus hypothesis length.
BleuResult corpus_bleu(const std::vector<std::vector<Tokens>>& list_of_references,
                       const std::vector<Tokens>& hypotheses, const BleuOptions& options = {});

// ---------------------------------------------------------------------------------------------------------
// ROUGE-L (sentence level, LCS F-measure with alpha 0.5)

struct RougeL {
  double precision = 0.0;  // LCS / prediction tokens
  double recall = 0.0;     // LCS / reference tokens
  double fmeasure = 0.0;   // 2PR / (P + R); all three are 0 when either side has no tokens
  std::int64_t lcs = 0;
};
RougeL rouge_l(std::string_view reference, std::string_view prediction);
RougeL rouge_l_tokens(const Tokens& reference, const Tokens& prediction);
// Mean precision, recall and F-measure over pairs (rouge-score's aggregate is the mean of sentence scores);
// `lcs` is the total over pairs.
RougeL mean_rouge_l(const std::vector<std::string>& references, const std::vector<std::string>& predictions);

std::int64_t lcs_length(const Tokens& a, const Tokens& b);

// ---------------------------------------------------------------------------------------------------------
// Exact match

// Share of predictions equal to their reference, after normalize_answer when `normalize` is true.
double exact_match_accuracy(const std::vector<std::string>& predictions,
                            const std::vector<std::string>& references, bool normalize = true);

}  // namespace hlip::eval
