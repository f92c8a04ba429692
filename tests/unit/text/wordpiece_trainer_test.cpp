// Learning a WordPiece vocabulary: layout, merges, determinism, and that the result tokenizes its own
// training texts without [UNK].

#include "hlip/text/wordpiece_trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "hlip/core/error.h"
#include "hlip/text/tokenizer.h"

namespace hlip::text {
namespace {

const std::vector<std::string> kSpecials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

std::vector<std::string> with_specials(std::vector<std::string> tokens) {
  tokens.insert(tokens.begin(), kSpecials.begin(), kSpecials.end());
  return tokens;
}

// Report-like sentences built from a fixed grammar, so the test needs no data file.
std::vector<std::string> synthetic_reports(int count, uint32_t seed) {
  const std::vector<std::string> findings = {
      "pleural effusion", "pneumothorax", "consolidation", "cardiomegaly", "atelectasis", "nodule",
      "hemorrhage",       "infarct",      "mass effect",   "fracture",     "edema",       "calcification"};
  const std::vector<std::string> sites = {"left lower lobe", "right upper lobe", "frontal lobe",
                                          "basal ganglia",   "T4 vertebra",      "liver segment 7",
                                          "both lungs",      "the mediastinum"};
  const std::vector<std::string> openers = {"There is", "No evidence of", "Interval increase in",
                                            "Findings suggest", "Stable appearance of"};
  std::mt19937 rng(seed);
  auto pick = [&](const std::vector<std::string>& options) { return options[rng() % options.size()]; };
  std::vector<std::string> reports;
  for (int i = 0; i < count; ++i) {
    reports.push_back(pick(openers) + " " + pick(findings) + " in the " + pick(sites) + ", measuring " +
                      std::to_string(rng() % 40 + 1) + " mm. " + pick(openers) + " " + pick(findings) + ".");
  }
  return reports;
}

TEST(WordPieceTrainer, LaysOutSpecialsAlphabetContinuationsThenMerges) {
  // Words: "ab" x3, "abc" x1. Pairs: (a, ##b) = 4, (##b, ##c) = 1. The first merge gives "ab"; "abc" then has
  // (ab, ##c) = 1, below min_frequency 2.
  WordPieceTrainerOptions options;
  const std::vector<std::string> vocab = learn_wordpiece_vocab({"ab ab", "AB abc"}, options);
  EXPECT_EQ(vocab, with_specials({"a", "b", "c", "##b", "##c", "ab"}));

  options.min_frequency = 1;
  EXPECT_EQ(learn_wordpiece_vocab({"ab ab", "AB abc"}, options),
            with_specials({"a", "b", "c", "##b", "##c", "ab", "abc"}));

  // vocab_size stops the merges; it never drops the alphabet.
  options.vocab_size = 11;
  EXPECT_EQ(learn_wordpiece_vocab({"ab ab", "AB abc"}, options),
            with_specials({"a", "b", "c", "##b", "##c", "ab"}));
  options.vocab_size = 3;
  EXPECT_EQ(learn_wordpiece_vocab({"ab ab", "AB abc"}, options).size(), 10u);
}

TEST(WordPieceTrainer, MergesContinuationPiecesWithoutRepeatingThePrefix) {
  WordPieceTrainerOptions options;
  options.min_frequency = 1;
  // "xyz" x2: (x, ##y) and (##y, ##z) both 2; the smaller pair ids merge first: "x" < "##y".
  const std::vector<std::string> vocab = learn_wordpiece_vocab({"xyz xyz"}, options);
  EXPECT_EQ(vocab, with_specials({"x", "y", "z", "##y", "##z", "xy", "xyz"}));
  // "prs", "qrs": (##r, ##s) = 2 wins and becomes "##rs"; then (p, ##rs) and (q, ##rs) in id order.
  const std::vector<std::string> second = learn_wordpiece_vocab({"qrs prs"}, options);
  EXPECT_EQ(second, with_specials({"p", "q", "r", "s", "##r", "##s", "##rs", "prs", "qrs"}));
  // "qrs", "rs" x3: (r, ##s) = 3 first, then (q, ##r) before (##r, ##s), both 1, by id.
  const std::vector<std::string> third = learn_wordpiece_vocab({"qrs rs rs rs"}, options);
  EXPECT_EQ(third, with_specials({"q", "r", "s", "##r", "##s", "rs", "qr", "qrs"}));
}

TEST(WordPieceTrainer, IsDeterministicAndIndependentOfTextOrder) {
  const std::vector<std::string> reports = synthetic_reports(300, 7);
  WordPieceTrainerOptions options;
  options.vocab_size = 220;
  const std::vector<std::string> first = learn_wordpiece_vocab(reports, options);
  EXPECT_EQ(first.size(), 220u);
  EXPECT_EQ(learn_wordpiece_vocab(reports, options), first);
  std::vector<std::string> shuffled = reports;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(3));
  EXPECT_EQ(learn_wordpiece_vocab(shuffled, options), first);
  // No duplicates, and the specials come first.
  std::vector<std::string> sorted = first;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());
  EXPECT_TRUE(std::equal(kSpecials.begin(), kSpecials.end(), first.begin()));
}

TEST(WordPieceTrainer, LearnedVocabularyTokenizesItsTrainingTextsWithoutUnk) {
  const std::vector<std::string> reports = synthetic_reports(200, 11);
  std::vector<std::size_t> pieces;
  for (int64_t size : {120, 400}) {
    WordPieceTrainerOptions options;
    options.vocab_size = size;
    const Tokenizer tokenizer(Vocab(learn_wordpiece_vocab(reports, options)));
    EXPECT_EQ(tokenizer.unk_id(), 1);
    EXPECT_EQ(tokenizer.pad_id(), 0);
    pieces.push_back(0);
    for (const std::string& report : reports) {
      const std::vector<int64_t> ids = tokenizer.tokenize_to_ids(report);
      EXPECT_EQ(std::count(ids.begin(), ids.end(), tokenizer.unk_id()), 0) << report;
      pieces.back() += ids.size();
    }
  }
  // A larger vocabulary covers the same texts with fewer pieces.
  EXPECT_LT(pieces[1], pieces[0]);
}

TEST(WordPieceTrainer, LimitAlphabetKeepsTheMostFrequentCharacters) {
  WordPieceTrainerOptions options;
  options.limit_alphabet = 2;
  options.min_frequency = 100;
  // a: 3, b: 2, c: 1 (tie-free); c is dropped and never appears, not even as "##c".
  EXPECT_EQ(learn_wordpiece_vocab({"aab", "ab c"}, options), with_specials({"a", "b", "##a", "##b"}));
}

TEST(WordPieceTrainer, InvalidUtf8NamesTheText) {
  WordPieceTrainer trainer;
  trainer.add_text("fine");
  try {
    trainer.add_text("bad \xc3");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "text 2: invalid UTF-8 at byte offset 4 (byte 0xc3)");
  }
}

}  // namespace
}  // namespace hlip::text
