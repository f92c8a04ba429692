// Every published and computed vector of tests/data/tokenizer, one test per case and HfFlavor: the files
// agree with both Hugging Face implementations (SPEC.md §0), so every case must hold for both. Offsets are
// not part of hlip's API, so the offset fields are not checked.

#include <gtest/gtest.h>

#include <map>
#include <tuple>

#include "case_files.h"
#include "hlip/text/basic_tokenizer.h"
#include "hlip/text/tokenizer.h"
#include "hlip/text/wordpiece.h"

namespace hlip::text {
namespace {

using nlohmann::json;
using testing::read_jsonl;
using testing::tokenizer_data;

const Vocab& vocab_named(const std::string& name) {
  static std::map<std::string, Vocab> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Vocab::read(tokenizer_data(name))).first;
  return it->second;
}

template <typename T>
T option_or(const json& row, const char* key, T fallback) {
  if (!row.contains("options") || !row["options"].is_object()) return fallback;
  const json& options = row["options"];
  if (!options.contains(key) || options[key].is_null()) return fallback;
  return options[key].get<T>();
}

std::optional<bool> optional_bool(const json& row, const char* key) {
  if (!row.contains("options") || !row["options"].is_object() || !row["options"].contains(key))
    return std::nullopt;
  const json& value = row["options"][key];
  if (value.is_null()) return std::nullopt;
  return value.get<bool>();
}

using Case = std::tuple<json, HfFlavor>;

Tokenizer tokenizer_for(const json& row, HfFlavor flavor) {
  TokenizerOptions options;
  options.flavor = flavor;
  options.do_lower_case = row.value("do_lower_case", true);
  options.strip_accents = optional_bool(row, "strip_accents");
  options.tokenize_chinese_chars = option_or(row, "tokenize_chinese_chars", true);
  const std::string vocab = row.at("vocab").get<std::string>();
  // bert-base-uncased's tokenizer_config.json declares model_max_length 512 (encode_cases.jsonl,
  // tjs_pad_max_length_model_max relies on it); BiomedBERT's declares none.
  if (vocab == "bert-base-uncased-vocab.txt") options.model_max_length = 512;
  return Tokenizer(vocab_named(vocab), options);
}

std::vector<int64_t> ids_of(const json& value) {
  return value.get<std::vector<int64_t>>();
}
std::vector<std::string> strings_of(const json& value) {
  return value.get<std::vector<std::string>>();
}

class TokenizerCase : public ::testing::TestWithParam<Case> {};

void check_tokenize_case(const json& row, HfFlavor flavor) {
  const Tokenizer tokenizer = tokenizer_for(row, flavor);
  const std::string text = row.at("text");
  const bool has_pair = row.contains("text_pair");
  const std::string pair = has_pair ? row["text_pair"].get<std::string>() : "";

  std::vector<std::string> tokens = tokenizer.tokenize(text);
  if (has_pair) {
    const std::vector<std::string> more = tokenizer.tokenize(pair);
    tokens.insert(tokens.end(), more.begin(), more.end());
  }
  EXPECT_EQ(tokens, strings_of(row.at("tokens")));

  const Encoding with_special = has_pair ? tokenizer.encode_pair(text, pair) : tokenizer.encode(text);
  EncodeOptions no_special_options;
  no_special_options.add_special_tokens = false;
  const Encoding without_special = has_pair ? tokenizer.encode_pair(text, pair, no_special_options)
                                            : tokenizer.encode(text, no_special_options);
  if (row.contains("ids")) {
    const bool special = row.value("ids_with_special_tokens", false);
    EXPECT_EQ(special ? with_special.input_ids : without_special.input_ids, ids_of(row["ids"]));
    if (!special && !has_pair) {
      EXPECT_EQ(tokenizer.tokenize_to_ids(text), ids_of(row["ids"]));
    }
  }
  EXPECT_EQ(with_special.attention_mask, std::vector<int64_t>(with_special.input_ids.size(), 1));
  if (row.contains("tokens_with_special_tokens")) {
    EXPECT_EQ(tokenizer.convert_ids_to_tokens(with_special.input_ids),
              strings_of(row["tokens_with_special_tokens"]));
  }
  if (row.contains("token_type_ids")) {
    EXPECT_EQ(with_special.token_type_ids, ids_of(row["token_type_ids"]));
  }
  if (row.contains("decoded")) {
    EXPECT_EQ(tokenizer.decode(with_special.input_ids), row["decoded"].get<std::string>());
  }
  if (row.contains("decoded_no_special")) {
    EXPECT_EQ(tokenizer.decode(without_special.input_ids), row["decoded_no_special"].get<std::string>());
  }
  if (row.contains("expected_encoding")) {
    const json& expected = row["expected_encoding"];
    ASSERT_EQ(expected.at("padding"), "max_length");
    ASSERT_EQ(expected.at("truncation"), true);
    const Encoding encoding = tokenizer.encode(text, EncodeOptions::fixed_length(expected.at("max_length")));
    EXPECT_EQ(encoding.input_ids, ids_of(expected.at("input_ids")));
    EXPECT_EQ(encoding.token_type_ids, ids_of(expected.at("token_type_ids")));
    EXPECT_EQ(encoding.attention_mask, ids_of(expected.at("attention_mask")));
  }
}

void check_basic_case(const json& row, HfFlavor flavor) {
  BasicTokenizerOptions options;
  options.flavor = flavor;
  options.do_lower_case = row.at("do_lower_case").get<bool>();
  options.strip_accents = optional_bool(row, "strip_accents");
  options.never_split = option_or(row, "never_split", std::vector<std::string>{});
  options.tokenize_chinese_chars = option_or(row, "tokenize_chinese_chars", true);
  EXPECT_EQ(BasicTokenizer(options).tokenize(row.at("text").get<std::string>()),
            strings_of(row.at("tokens")));
}

void check_wordpiece_case(const json& row) {
  const WordPiece wordpiece(vocab_named(row.at("vocab")));
  const std::vector<std::string> tokens = wordpiece.tokenize(row.at("text").get<std::string>());
  EXPECT_EQ(tokens, strings_of(row.at("tokens")));
  if (row.contains("ids")) {
    std::vector<int64_t> ids;
    for (const std::string& token : tokens)
      ids.push_back(wordpiece.vocab().find(token).value_or(-1));
    EXPECT_EQ(ids, ids_of(row["ids"]));
  }
}

void check_normalizer_case(const json& row, HfFlavor flavor) {
  BertNormalizerOptions options;
  options.flavor = flavor;
  options.clean_text = option_or(row, "clean_text", true);
  options.handle_chinese_chars = option_or(row, "handle_chinese_chars", true);
  options.strip_accents = optional_bool(row, "strip_accents");
  options.lowercase = option_or(row, "lowercase", true);
  EXPECT_EQ(bert_normalize(row.at("text").get<std::string>(), options),
            row.at("normalized").get<std::string>());
}

void check_pretokenizer_case(const json& row) {
  // The Rust test pads CJK characters first, as BertNormalizer's handle_chinese_chars does (see the case's
  // note).
  BertNormalizerOptions cjk_only;
  cjk_only.clean_text = false;
  cjk_only.strip_accents = false;
  cjk_only.lowercase = false;
  const std::string padded = bert_normalize(row.at("text").get<std::string>(), cjk_only);
  EXPECT_EQ(bert_pre_tokenize(padded), strings_of(row.at("tokens")));
}

TEST_P(TokenizerCase, MatchesHuggingFace) {
  const auto& [row, flavor] = GetParam();
  SCOPED_TRACE(row.at("id").get<std::string>());
  const std::string stage = row.at("stage");
  if (stage == "tokenize") {
    check_tokenize_case(row, flavor);
  } else if (stage == "basic") {
    check_basic_case(row, flavor);
  } else if (stage == "wordpiece") {
    check_wordpiece_case(row);
  } else if (stage == "normalizer") {
    check_normalizer_case(row, flavor);
  } else if (stage == "pretokenizer") {
    check_pretokenizer_case(row);
  } else {
    FAIL() << "unknown stage " << stage;
  }
}

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return testing::test_name(std::get<0>(info.param)) +
         (std::get<1>(info.param) == HfFlavor::fast ? "_fast" : "_slow");
}

auto cases_in(const std::string& file) {
  return ::testing::Combine(::testing::ValuesIn(read_jsonl(file)),
                            ::testing::Values(HfFlavor::fast, HfFlavor::slow));
}

INSTANTIATE_TEST_SUITE_P(Published, TokenizerCase, cases_in("cases.jsonl"), case_name);
INSTANTIATE_TEST_SUITE_P(ComputedBiomedBert, TokenizerCase, cases_in("computed_biomedbert_cases.jsonl"),
                         case_name);

class EncodeCase : public ::testing::TestWithParam<Case> {};

EncodeOptions encode_options(const json& options) {
  EncodeOptions out;
  if (options.is_null()) return out;
  out.add_special_tokens = options.value("add_special_tokens", true);
  if (options.contains("padding")) {
    const json& padding = options["padding"];
    if (padding == true || padding == "longest") {
      out.padding = Padding::longest;
    } else if (padding == "max_length") {
      out.padding = Padding::max_length;
    } else {
      out.padding = Padding::none;
    }
  }
  if (options.contains("truncation") && !options["truncation"].is_null()) {
    out.truncation = options["truncation"] == true ? Truncation::longest_first : Truncation::none;
  }
  if (options.contains("max_length") && !options["max_length"].is_null())
    out.max_length = options["max_length"];
  return out;
}

void check_post_processor_case(const json& row) {
  // Hugging Face's BertProcessing on given ids; bert-base-uncased has [CLS] = 101 and [SEP] = 102 as the
  // case.
  const Tokenizer tokenizer(vocab_named("bert-base-uncased-vocab.txt"));
  const json& input = row.at("input");
  ASSERT_EQ(input.at("cls")[1], tokenizer.cls_id());
  ASSERT_EQ(input.at("sep")[1], tokenizer.sep_id());
  const json& expected = row.at("expected");

  const Encoding single = tokenizer.prepare_for_model(ids_of(input.at("ids")), std::nullopt);
  EXPECT_EQ(single.input_ids, ids_of(expected["single"]["input_ids"]));
  EXPECT_EQ(single.token_type_ids, ids_of(expected["single"]["token_type_ids"]));
  EXPECT_EQ(single.special_tokens_mask, ids_of(expected["single"]["special_tokens_mask"]));
  EXPECT_EQ(single.attention_mask, ids_of(expected["single"]["attention_mask"]));

  const Encoding pair = tokenizer.prepare_for_model(ids_of(input.at("ids")), ids_of(input.at("pair_ids")));
  EXPECT_EQ(pair.input_ids, ids_of(expected["pair"]["input_ids"]));
  EXPECT_EQ(pair.token_type_ids, ids_of(expected["pair"]["token_type_ids"]));
  EXPECT_EQ(pair.special_tokens_mask, ids_of(expected["pair"]["special_tokens_mask"]));
  EXPECT_EQ(pair.attention_mask, ids_of(expected["pair"]["attention_mask"]));

  EncodeOptions no_special;
  no_special.add_special_tokens = false;
  const Encoding bare =
      tokenizer.prepare_for_model(ids_of(input.at("ids")), ids_of(input.at("pair_ids")), no_special);
  EXPECT_EQ(bare.input_ids, ids_of(expected["pair_no_special_tokens"]["input_ids"]));
  EXPECT_EQ(bare.token_type_ids, ids_of(expected["pair_no_special_tokens"]["token_type_ids"]));
}

TEST_P(EncodeCase, MatchesHuggingFace) {
  const auto& [row, flavor] = GetParam();
  SCOPED_TRACE(row.at("id").get<std::string>());
  if (row.value("stage", "") == "post_processor") {
    check_post_processor_case(row);
    return;
  }
  const Tokenizer tokenizer = tokenizer_for(row, flavor);
  const auto texts = strings_of(row.at("texts"));
  const EncodeOptions options = encode_options(row.at("options"));
  const BatchEncoding batch = row.at("text_pairs").is_null()
                                  ? tokenizer.encode_batch(texts, options)
                                  : tokenizer.encode_batch(texts, strings_of(row["text_pairs"]), options);
  const json& expected = row.at("expected");
  EXPECT_EQ(batch.input_ids, expected.at("input_ids").get<std::vector<std::vector<int64_t>>>());
  EXPECT_EQ(batch.token_type_ids, expected.at("token_type_ids").get<std::vector<std::vector<int64_t>>>());
  EXPECT_EQ(batch.attention_mask, expected.at("attention_mask").get<std::vector<std::vector<int64_t>>>());
}

INSTANTIATE_TEST_SUITE_P(Published, EncodeCase, cases_in("encode_cases.jsonl"), case_name);

TEST(TokenizerCaseFiles, HoldEveryPublishedCase) {
  EXPECT_EQ(read_jsonl("cases.jsonl").size(), 69u);
  EXPECT_EQ(read_jsonl("encode_cases.jsonl").size(), 16u);
  EXPECT_EQ(read_jsonl("computed_biomedbert_cases.jsonl").size(), 32u);
}

}  // namespace
}  // namespace hlip::text
