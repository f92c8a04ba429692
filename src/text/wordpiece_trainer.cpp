#include "hlip/text/wordpiece_trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <queue>

#include "hlip/core/error.h"
#include "unicode.h"

namespace hlip::text {
namespace {

using Pair = uint64_t;  // (left id << 32) | right id, so pairs order by left id, then right id

Pair make_pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
int32_t left_of(Pair pair) {
  return static_cast<int32_t>(pair >> 32);
}
int32_t right_of(Pair pair) {
  return static_cast<int32_t>(pair & 0xFFFFFFFFu);
}

struct Candidate {
  int64_t count;
  Pair pair;
};
// Max-heap order: the higher count first; for equal counts the smaller pair.
struct CandidateOrder {
  bool operator()(const Candidate& x, const Candidate& y) const {
    return x.count != y.count ? x.count < y.count : x.pair > y.pair;
  }
};

class VocabBuilder {
 public:
  int32_t add(const std::string& token) {
    const auto [it, inserted] = ids_.emplace(token, static_cast<int32_t>(tokens_.size()));
    if (inserted) tokens_.push_back(token);
    return it->second;
  }
  std::optional<int32_t> find(const std::string& token) const {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  const std::string& token(int32_t id) const { return tokens_[static_cast<std::size_t>(id)]; }
  std::size_t size() const { return tokens_.size(); }
  std::vector<std::string> release() { return std::move(tokens_); }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int32_t> ids_;
};

// The characters kept as the alphabet: all, or the `limit` most frequent (rarer and, among equals, higher
// code points go first).
std::vector<char32_t> choose_alphabet(const std::vector<std::pair<std::u32string, int64_t>>& words,
                                      std::optional<int64_t> limit) {
  std::map<char32_t, int64_t> counts;
  for (const auto& [word, count] : words) {
    for (char32_t c : word)
      counts[c] += count;
  }
  std::vector<std::pair<char32_t, int64_t>> alphabet(counts.begin(), counts.end());
  if (limit && static_cast<int64_t>(alphabet.size()) > *limit) {
    std::stable_sort(alphabet.begin(), alphabet.end(),
                     [](const auto& x, const auto& y) { return x.second > y.second; });
    alphabet.resize(static_cast<std::size_t>(*limit));
  }
  std::vector<char32_t> kept;
  kept.reserve(alphabet.size());
  for (const auto& entry : alphabet)
    kept.push_back(entry.first);
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace

WordPieceTrainer::WordPieceTrainer(WordPieceTrainerOptions options)
    : options_(std::move(options)), basic_(options_.words) {
  if (options_.vocab_size < 1) {
    throw Error(fmt::format("wordpiece trainer: vocab_size is {}, must be at least 1", options_.vocab_size));
  }
  if (options_.limit_alphabet && *options_.limit_alphabet < 0) {
    throw Error(fmt::format("wordpiece trainer: limit_alphabet is {}, must not be negative",
                            *options_.limit_alphabet));
  }
}

void WordPieceTrainer::add_text(std::string_view text) {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, fmt::format("text {}", texts_seen_ + 1));
  ++texts_seen_;
  Words words;
  basic_.split(decoded, words);
  std::u32string key;
  for (std::size_t i = 0; i < words.size(); ++i) {
    key.assign(words[i]);
    const auto it = word_counts_.find(key);
    if (it != word_counts_.end()) {
      ++it->second;
    } else {
      word_counts_.emplace(key, 1);
    }
  }
}

std::vector<std::string> WordPieceTrainer::train() const {
  std::vector<std::pair<std::u32string, int64_t>> words(word_counts_.begin(), word_counts_.end());
  std::sort(words.begin(), words.end(), [](const auto& x, const auto& y) { return x.first < y.first; });

  VocabBuilder vocab;
  for (const std::string& token : options_.special_tokens)
    vocab.add(token);
  for (char32_t c : choose_alphabet(words, options_.limit_alphabet))
    vocab.add(unicode::to_utf8(std::u32string(1, c)));

  // Each word as a sequence of symbol ids; characters left out of the alphabet are skipped, as in Hugging
  // Face.
  const std::string& prefix = options_.continuing_subword_prefix;
  std::vector<std::vector<int32_t>> symbols(words.size());
  std::string piece;
  for (std::size_t w = 0; w < words.size(); ++w) {
    const std::u32string& word = words[w].first;
    for (std::size_t i = 0; i < word.size(); ++i) {
      piece.clear();
      unicode::append_utf8(word[i], piece);
      if (!vocab.find(piece)) continue;
      if (i > 0) piece.insert(0, prefix);
      symbols[w].push_back(vocab.add(piece));
    }
  }

  std::unordered_map<Pair, int64_t> pair_counts;
  std::unordered_map<Pair, std::vector<int32_t>> words_with_pair;  // may list a word twice or stale ones
  auto count_pairs = [&](std::size_t w, int64_t sign, std::vector<Pair>* increased) {
    const std::vector<int32_t>& s = symbols[w];
    for (std::size_t i = 0; i + 1 < s.size(); ++i) {
      const Pair pair = make_pair_key(s[i], s[i + 1]);
      pair_counts[pair] += sign * words[w].second;
      if (sign > 0) {
        std::vector<int32_t>& listed = words_with_pair[pair];
        if (listed.empty() || listed.back() != static_cast<int32_t>(w))
          listed.push_back(static_cast<int32_t>(w));
        if (increased) increased->push_back(pair);
      }
    }
  };
  for (std::size_t w = 0; w < words.size(); ++w)
    count_pairs(w, +1, nullptr);

  std::priority_queue<Candidate, std::vector<Candidate>, CandidateOrder> queue;
  for (const auto& [pair, count] : pair_counts)
    queue.push({count, pair});

  std::vector<Pair> increased;
  std::vector<int32_t> merged_symbols;
  while (static_cast<int64_t>(vocab.size()) < options_.vocab_size && !queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int64_t current = pair_counts[top.pair];
    if (top.count != current) {
      if (current > 0) queue.push({current, top.pair});
      continue;
    }
    if (current < 1 || current < options_.min_frequency) break;

    const int32_t left = left_of(top.pair);
    const int32_t right = right_of(top.pair);
    std::string merged = vocab.token(left);
    const std::string& right_token = vocab.token(right);
    const bool continues = right_token.compare(0, prefix.size(), prefix) == 0;
    merged.append(right_token, continues ? prefix.size() : 0, std::string::npos);
    const int32_t merged_id = vocab.add(merged);

    std::vector<int32_t> affected = std::move(words_with_pair[top.pair]);
    words_with_pair.erase(top.pair);
    std::sort(affected.begin(), affected.end());
    affected.erase(std::unique(affected.begin(), affected.end()), affected.end());
    increased.clear();
    for (int32_t w : affected) {
      const std::vector<int32_t>& old_symbols = symbols[static_cast<std::size_t>(w)];
      // Merge left to right, as Hugging Face's Word::merge.
      merged_symbols.clear();
      for (std::size_t i = 0; i < old_symbols.size();) {
        if (i + 1 < old_symbols.size() && old_symbols[i] == left && old_symbols[i + 1] == right) {
          merged_symbols.push_back(merged_id);
          i += 2;
        } else {
          merged_symbols.push_back(old_symbols[i++]);
        }
      }
      if (merged_symbols.size() == old_symbols.size()) continue;
      count_pairs(static_cast<std::size_t>(w), -1, nullptr);
      symbols[static_cast<std::size_t>(w)].swap(merged_symbols);
      count_pairs(static_cast<std::size_t>(w), +1, &increased);
    }
    std::sort(increased.begin(), increased.end());
    increased.erase(std::unique(increased.begin(), increased.end()), increased.end());
    for (Pair pair : increased) {
      const int64_t count = pair_counts[pair];
      if (count > 0) queue.push({count, pair});
    }
  }
  return vocab.release();
}

std::vector<std::string> learn_wordpiece_vocab(const std::vector<std::string>& texts,
                                               const WordPieceTrainerOptions& options) {
  WordPieceTrainer trainer(options);
  for (const std::string& text : texts)
    trainer.add_text(text);
  return trainer.train();
}

}  // namespace hlip::text
