// Tokenizer behaviour beyond the published vectors: errors, the 100-character rule, truncation and padding,
// decoding, configuration files and the places where the Python and Rust implementations differ.

#include "hlip/text/tokenizer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <random>

#include "case_files.h"
#include "hlip/core/error.h"
#include "hlip/text/tensors.h"
#include "temp_dir.h"

namespace hlip::text {
namespace {

using testing::tokenizer_data;

const std::vector<std::string> kSmallVocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]",    "[MASK]", "a",   "b",
                                              "c",     "d",     "e",     "f",        "g",      "h",   "i",
                                              "j",     "k",     "##a",   "the",      "lung",   "##s", "are",
                                              "clear", ".",     "no",    "effusion", ",",      "'",   "s"};

Tokenizer small_tokenizer(TokenizerOptions options = {}) {
  return Tokenizer(Vocab(kSmallVocab, "small"), options);
}

const Tokenizer& biomedbert(HfFlavor flavor = HfFlavor::fast) {
  static const Vocab vocab = Vocab::read(tokenizer_data("biomedbert-abstract-fulltext-vocab.txt"));
  static const Tokenizer fast(vocab);
  static const Tokenizer slow = [] {
    TokenizerOptions options;
    options.flavor = HfFlavor::slow;
    return Tokenizer(vocab, options);
  }();
  return flavor == HfFlavor::fast ? fast : slow;
}

Tokenizer bert_base_uncased(HfFlavor flavor) {
  TokenizerOptions options;
  options.flavor = flavor;
  return Tokenizer(Vocab::read(tokenizer_data("bert-base-uncased-vocab.txt")), options);
}

using test::error_message;

class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("hlip_text_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" + info->name());
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }
  void write(const std::string& name, const std::string& content) const {
    std::ofstream(path_ / name, std::ios::binary) << content;
  }

 private:
  std::filesystem::path path_;
};

TEST(Tokenizer, InvalidUtf8IsAnErrorNamingTheByteOffset) {
  const Tokenizer tokenizer = small_tokenizer();
  EXPECT_NE(error_message([&] { tokenizer.tokenize("ab\xff"); }).find("byte offset 2 (byte 0xff)"),
            std::string::npos);
  // Truncated sequence, overlong form, surrogate, beyond U+10FFFF, stray continuation byte.
  EXPECT_NE(error_message([&] { tokenizer.tokenize("abc\xe2\x82"); }).find("byte offset 3"),
            std::string::npos);
  EXPECT_NE(error_message([&] { tokenizer.tokenize("\xc0\xaf"); }).find("byte offset 0"), std::string::npos);
  EXPECT_NE(error_message([&] { tokenizer.tokenize("a \xed\xa0\x80"); }).find("byte offset 2"),
            std::string::npos);
  EXPECT_NE(error_message([&] { tokenizer.tokenize("\xf4\x90\x80\x80"); }).find("byte offset 0"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              tokenizer.encode_batch({"a", "b\x80"});
            }).find("byte offset 1"),
            std::string::npos);
  EXPECT_NE(error_message([&] { BasicTokenizer().tokenize("\xfe"); }).find("byte offset 0"),
            std::string::npos);
  // Valid multi-byte text is fine.
  EXPECT_NO_THROW(tokenizer.tokenize("caf\xc3\xa9 \xf0\x9f\x98\x82"));
}

TEST(Tokenizer, RandomBytesGiveTokensOrAnErrorNeverACrash) {
  const Tokenizer& tokenizer = biomedbert();
  std::mt19937 rng(42);
  int errors = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes(rng() % 40, '\0');
    for (char& byte : bytes)
      byte = static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x20 + rng() % 0x60);
    try {
      const Encoding encoding = tokenizer.encode(bytes, EncodeOptions::fixed_length(16));
      ASSERT_EQ(encoding.input_ids.size(), 16u);
    } catch (const Error& e) {
      ASSERT_NE(std::string(e.what()).find("invalid UTF-8 at byte offset"), std::string::npos);
      ++errors;
    }
  }
  EXPECT_GT(errors, 100);
  EXPECT_LT(errors, 3000);
}

TEST(Tokenizer, WordsOverMaxInputCharsBecomeOneUnk) {
  const Tokenizer tokenizer = small_tokenizer();
  const std::vector<std::string> pieces = tokenizer.tokenize(std::string(100, 'a'));
  ASSERT_EQ(pieces.size(), 100u);
  EXPECT_EQ(pieces.front(), "a");
  EXPECT_EQ(pieces.back(), "##a");
  EXPECT_EQ(tokenizer.tokenize(std::string(101, 'a')), std::vector<std::string>{"[UNK]"});
  EXPECT_EQ(tokenizer.tokenize(std::string(101, 'a') + " b"), (std::vector<std::string>{"[UNK]", "b"}));

  // Code points are counted, not bytes: 100 two-byte characters are still one word of 100.
  const Tokenizer accents(Vocab({"[UNK]", "\xc3\xa9", "##\xc3\xa9"}), [] {
    TokenizerOptions options;
    options.do_lower_case = false;
    return options;
  }());
  std::string word;
  for (int i = 0; i < 100; ++i)
    word += "\xc3\xa9";
  EXPECT_EQ(accents.tokenize(word).size(), 100u);
  EXPECT_EQ(accents.tokenize(word + "\xc3\xa9"), std::vector<std::string>{"[UNK]"});

  TokenizerOptions short_words;
  short_words.max_input_chars_per_word = 3;
  EXPECT_EQ(small_tokenizer(short_words).tokenize("aaa aaaa"),
            (std::vector<std::string>{"a", "##a", "##a", "[UNK]"}));
}

TEST(Tokenizer, SpecialTokensAreCutOutVerbatim) {
  const Tokenizer tokenizer = small_tokenizer();
  EXPECT_EQ(tokenizer.tokenize("a[SEP]b [sep]"),
            (std::vector<std::string>{"a", "[SEP]", "b", "[UNK]", "[UNK]", "[UNK]"}));
  EXPECT_EQ(tokenizer.tokenize_to_ids("a[MASK]"), (std::vector<int64_t>{5, 4}));
  // A special token missing from the vocabulary keeps its spelling in tokenize() and maps to [UNK].
  const Tokenizer without_mask(Vocab({"[UNK]", "[CLS]", "[SEP]", "a"}));
  EXPECT_EQ(without_mask.tokenize("a [MASK]"), (std::vector<std::string>{"a", "[MASK]"}));
  EXPECT_EQ(without_mask.tokenize_to_ids("a [MASK]"), (std::vector<int64_t>{3, 0}));
}

TEST(Tokenizer, EmptyAndWhitespaceOnlyTextsGiveOnlySpecialTokens) {
  const Tokenizer tokenizer = small_tokenizer();
  EXPECT_TRUE(tokenizer.tokenize("").empty());
  EXPECT_TRUE(tokenizer.tokenize(" \t\n\r\xc2\xa0\xe2\x80\x83").empty());
  EXPECT_EQ(tokenizer.encode("").input_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(tokenizer.encode(" \n ", EncodeOptions::fixed_length(4)).input_ids,
            (std::vector<int64_t>{2, 3, 0, 0}));
}

TEST(Tokenizer, FixedLengthTruncatesAndPads) {
  const Tokenizer tokenizer = small_tokenizer();
  const Encoding cut = tokenizer.encode("a b c d e f", EncodeOptions::fixed_length(5));
  EXPECT_EQ(cut.input_ids, (std::vector<int64_t>{2, 5, 6, 7, 3}));
  EXPECT_EQ(cut.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_EQ(cut.special_tokens_mask, (std::vector<int64_t>{1, 0, 0, 0, 1}));

  const Encoding padded = tokenizer.encode("a b", EncodeOptions::fixed_length(6));
  EXPECT_EQ(padded.input_ids, (std::vector<int64_t>{2, 5, 6, 3, 0, 0}));
  EXPECT_EQ(padded.attention_mask, (std::vector<int64_t>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(padded.token_type_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 0}));

  // A word cut in the middle keeps its first pieces.
  EXPECT_EQ(tokenizer.encode("lungs", EncodeOptions::fixed_length(3)).input_ids,
            (std::vector<int64_t>{2, 18, 3}));

  TokenizerOptions left;
  left.truncation_side = Side::left;
  left.padding_side = Side::left;
  const Tokenizer left_tokenizer = small_tokenizer(left);
  EXPECT_EQ(left_tokenizer.encode("a b c d e f", EncodeOptions::fixed_length(5)).input_ids,
            (std::vector<int64_t>{2, 8, 9, 10, 3}));
  const Encoding left_padded = left_tokenizer.encode("a", EncodeOptions::fixed_length(5));
  EXPECT_EQ(left_padded.input_ids, (std::vector<int64_t>{0, 0, 2, 5, 3}));
  EXPECT_EQ(left_padded.attention_mask, (std::vector<int64_t>{0, 0, 1, 1, 1}));
}

TEST(Tokenizer, UpToLengthTruncatesAsFixedLengthButPadsOnlyToTheLongest) {
  const Tokenizer tokenizer = small_tokenizer();
  const BatchEncoding short_batch = tokenizer.encode_batch({"a", "a b c"}, EncodeOptions::up_to_length(16));
  EXPECT_EQ(short_batch.input_ids, (std::vector<std::vector<int64_t>>{{2, 5, 3, 0, 0}, {2, 5, 6, 7, 3}}));
  EXPECT_EQ(short_batch.attention_mask,
            (std::vector<std::vector<int64_t>>{{1, 1, 1, 0, 0}, {1, 1, 1, 1, 1}}));
  // A text longer than the limit is cut exactly as fixed_length cuts it, and sets the batch's length.
  const BatchEncoding cut = tokenizer.encode_batch({"a b c d e f", "a"}, EncodeOptions::up_to_length(5));
  EXPECT_EQ(cut.input_ids[0], tokenizer.encode("a b c d e f", EncodeOptions::fixed_length(5)).input_ids);
  EXPECT_EQ(cut.input_ids[1], (std::vector<int64_t>{2, 5, 3, 0, 0}));
}

TEST(Tokenizer, PadToMultipleOfRoundsUp) {
  EncodeOptions options;
  options.padding = Padding::longest;
  options.pad_to_multiple_of = 4;
  const BatchEncoding batch = small_tokenizer().encode_batch({"a", "a b c"}, options);
  EXPECT_EQ(batch.input_ids,
            (std::vector<std::vector<int64_t>>{{2, 5, 3, 0, 0, 0, 0, 0}, {2, 5, 6, 7, 3, 0, 0, 0}}));
}

TEST(Tokenizer, WithoutAnyMaxLengthNothingIsTruncatedOrPaddedToIt) {
  // BiomedBERT declares no model_max_length: like Hugging Face, truncation=True and padding="max_length"
  // without max_length do nothing.
  EncodeOptions options;
  options.truncation = Truncation::longest_first;
  options.padding = Padding::max_length;
  std::string long_text;
  for (int i = 0; i < 600; ++i)
    long_text += "a ";
  EXPECT_EQ(small_tokenizer().encode(long_text, options).input_ids.size(), 602u);

  TokenizerOptions limited;
  limited.model_max_length = 8;
  EXPECT_EQ(small_tokenizer(limited).encode("a b c d e f g h i j", options).input_ids.size(), 8u);
  EXPECT_EQ(small_tokenizer(limited).encode("a", options).input_ids.size(), 8u);
}

TEST(Tokenizer, PairTruncationFollowsTheChosenImplementation) {
  // SPEC.md §4: the two implementations differ when B is at least as long as A and the remainder is odd.
  EncodeOptions ten;
  ten.truncation = Truncation::longest_first;
  ten.max_length = 10;
  const Tokenizer fast = bert_base_uncased(HfFlavor::fast);
  const Tokenizer slow = bert_base_uncased(HfFlavor::slow);
  auto tokens = [](const Tokenizer& tokenizer, const Encoding& encoding) {
    return tokenizer.convert_ids_to_tokens(encoding.input_ids);
  };
  EXPECT_EQ(tokens(fast, fast.encode_pair("a b c d e", "f g h i j", ten)),
            (std::vector<std::string>{"[CLS]", "a", "b", "c", "[SEP]", "f", "g", "h", "i", "[SEP]"}));
  EXPECT_EQ(tokens(slow, slow.encode_pair("a b c d e", "f g h i j", ten)),
            (std::vector<std::string>{"[CLS]", "a", "b", "c", "d", "[SEP]", "f", "g", "h", "[SEP]"}));

  EncodeOptions eight = ten;
  eight.max_length = 8;
  EXPECT_EQ(tokens(fast, fast.encode_pair("a b c", "d e f g h i j k", eight)),
            (std::vector<std::string>{"[CLS]", "a", "b", "[SEP]", "d", "e", "f", "[SEP]"}));
  EXPECT_EQ(tokens(slow, slow.encode_pair("a b c", "d e f g h i j k", eight)),
            (std::vector<std::string>{"[CLS]", "a", "b", "c", "[SEP]", "d", "e", "[SEP]"}));
  // When A is the longer one they agree.
  for (const Tokenizer* tokenizer : {&fast, &slow}) {
    const Encoding encoding = tokenizer->encode_pair("a b c d e f g h", "i j", eight);
    EXPECT_EQ(tokens(*tokenizer, encoding),
              (std::vector<std::string>{"[CLS]", "a", "b", "c", "[SEP]", "i", "j", "[SEP]"}));
    EXPECT_EQ(encoding.token_type_ids, (std::vector<int64_t>{0, 0, 0, 0, 0, 1, 1, 1}));
  }
}

TEST(Tokenizer, OnlyFirstAndOnlySecondTruncateOneText) {
  const Tokenizer tokenizer = small_tokenizer();
  EncodeOptions options;
  options.max_length = 7;
  options.truncation = Truncation::only_first;
  EXPECT_EQ(tokenizer.encode_pair("a b c d", "e f", options).input_ids,
            (std::vector<int64_t>{2, 5, 6, 3, 9, 10, 3}));
  options.truncation = Truncation::only_second;
  EXPECT_EQ(tokenizer.encode_pair("a b", "c d e f", options).input_ids,
            (std::vector<int64_t>{2, 5, 6, 3, 7, 8, 3}));
  // Errors: the named text is too short to lose enough pieces, or there is no second text.
  EXPECT_NE(error_message([&] { tokenizer.encode_pair("a b c d", "e", options); }).find("cannot remove"),
            std::string::npos);
  EXPECT_NE(error_message([&] {
              tokenizer.encode("a b c d e f g h", options);
            }).find("only_second needs text pairs"),
            std::string::npos);
  EXPECT_NE(
      error_message([&] { tokenizer.encode("a", EncodeOptions::fixed_length(1)); }).find("max_length 1"),
      std::string::npos);
}

TEST(Tokenizer, PaddingWithoutPadTokenIsAnError) {
  const Tokenizer tokenizer(Vocab({"[UNK]", "[CLS]", "[SEP]", "a"}, "tiny/vocab.txt"));
  EXPECT_EQ(tokenizer.encode("a a").input_ids, (std::vector<int64_t>{1, 3, 3, 2}));
  const std::string message = error_message([&] { tokenizer.encode("a", EncodeOptions::fixed_length(8)); });
  EXPECT_NE(message.find("tiny/vocab.txt: pad_token \"[PAD]\" is not in the vocabulary"), std::string::npos)
      << message;
}

TEST(Tokenizer, VocabularyWithoutUnkIsAnError) {
  const std::string message = error_message([] {
    Tokenizer(Vocab({"[CLS]", "[SEP]", "a"}, "no_unk/vocab.txt"));
  });
  EXPECT_EQ(message, "no_unk/vocab.txt: unk_token \"[UNK]\" is not in the vocabulary");
}

TEST(Tokenizer, DecodeJoinsPiecesAndRoundTripsNormalisedText) {
  const Tokenizer& tokenizer = biomedbert();
  const std::string text = "the lungs are clear, with no pleural effusion or pneumothorax.";
  const Encoding encoding = tokenizer.encode(text, EncodeOptions::fixed_length(32));
  EXPECT_EQ(tokenizer.decode(encoding.input_ids, DecodeOptions{true, std::nullopt}), text);
  EXPECT_EQ(tokenizer.decode(tokenizer.tokenize_to_ids("Pretraining, CD4+ T-cells.")),
            "pretraining, cd4 + t - cells.");
  const std::string with_special = tokenizer.decode(tokenizer.encode("No effusion.").input_ids);
  EXPECT_EQ(with_special, "[CLS] no effusion. [SEP]");
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("No effusion.").input_ids, DecodeOptions{false, false}),
            "[CLS] no effusion . [SEP]");
  EXPECT_NE(error_message([&] {
              tokenizer.decode({2, 40000});
            }).find("token id 40000 is out of range"),
            std::string::npos);
}

TEST(Tokenizer, ReadsTokenizerFolders) {
  const TempDir dir;
  dir.write("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MSK]\nHello\n!\nhello\n");
  dir.write("tokenizer_config.json", R"({
      "do_lower_case": false, "strip_accents": null, "tokenizer_class": "BertTokenizer",
      "model_max_length": 1000000000000000019884624838656,
      "unk_token": {"__type": "AddedToken", "content": "[UNK]", "lstrip": false}, "mask_token": "[MASK]"})");
  dir.write("special_tokens_map.json", R"({"mask_token": "[MSK]", "additional_special_tokens": ["<x>"]})");
  const TokenizerOptions options = read_tokenizer_options(dir.path());
  EXPECT_FALSE(options.do_lower_case);
  EXPECT_FALSE(options.strip_accents.has_value());
  EXPECT_FALSE(options.model_max_length.has_value());
  EXPECT_EQ(options.unk_token, "[UNK]");
  EXPECT_EQ(options.mask_token, "[MSK]");  // special_tokens_map.json wins
  EXPECT_EQ(options.additional_special_tokens, std::vector<std::string>{"<x>"});

  const Tokenizer tokenizer = Tokenizer::from_pretrained(dir.path());
  EXPECT_EQ(tokenizer.tokenize("Hello! hello [MSK]"),
            (std::vector<std::string>{"Hello", "!", "hello", "[MSK]"}));
  // The CLI's --no-lower-case path: options read, then changed.
  TokenizerOptions lower = read_tokenizer_options(dir.path());
  lower.do_lower_case = true;
  EXPECT_EQ(Tokenizer(Vocab::read(dir.path()), lower).tokenize("Hello"), std::vector<std::string>{"hello"});

  dir.write("tokenizer_config.json", R"({"model_max_length": 512})");
  EXPECT_EQ(read_tokenizer_options(dir.path()).model_max_length, 512);
  // A bare vocab.txt gives the defaults.
  EXPECT_TRUE(read_tokenizer_options(dir.path() / "vocab.txt").do_lower_case);

  dir.write("tokenizer_config.json", R"({"do_lower_case": "yes"})");
  const std::string message = error_message([&] { read_tokenizer_options(dir.path()); });
  EXPECT_NE(message.find("tokenizer_config.json: \"do_lower_case\" is \"yes\", expected true or false"),
            std::string::npos)
      << message;
  dir.write("tokenizer_config.json", "{not json");
  EXPECT_NE(error_message([&] { read_tokenizer_options(dir.path()); }).find("not valid JSON"),
            std::string::npos);
}

TEST(Tokenizer, WritesTokenizerConfigThatReadsBack) {
  const TempDir dir;
  TokenizerOptions options;
  options.do_lower_case = false;
  options.strip_accents = true;
  options.never_split = {"[X]"};
  options.model_max_length = 256;
  options.mask_token = "[MSK]";
  options.truncation_side = Side::left;
  write_tokenizer_config(dir.path() / "tokenizer_config.json", options);
  const TokenizerOptions read = read_tokenizer_options(dir.path());
  EXPECT_FALSE(read.do_lower_case);
  EXPECT_EQ(read.strip_accents, true);
  EXPECT_EQ(read.never_split, std::vector<std::string>{"[X]"});
  EXPECT_EQ(read.model_max_length, 256);
  EXPECT_EQ(read.mask_token, "[MSK]");
  EXPECT_EQ(read.truncation_side, Side::left);
  EXPECT_EQ(read.padding_side, Side::right);

  write_tokenizer_config(dir.path() / "tokenizer_config.json", TokenizerOptions{});
  const TokenizerOptions defaults = read_tokenizer_options(dir.path());
  EXPECT_TRUE(defaults.do_lower_case);
  EXPECT_FALSE(defaults.strip_accents.has_value());
  EXPECT_FALSE(defaults.model_max_length.has_value());
  EXPECT_TRUE(defaults.never_split.empty());
}

TEST(Vocab, ReadsLinesAsHuggingFaceDoes) {
  const TempDir dir;
  dir.write("vocab.txt", "[UNK]\r\na \nb\na\n");
  const Vocab vocab = Vocab::read(dir.path() / "vocab.txt");
  EXPECT_EQ(vocab.size(), 4);
  EXPECT_EQ(vocab.find("[UNK]"), 0);  // "\r" and trailing spaces are not part of the token
  EXPECT_EQ(vocab.find("a"), 3);      // a later duplicate wins
  EXPECT_EQ(vocab.token(1), "a");
  EXPECT_FALSE(vocab.find("c").has_value());

  dir.write("bad.txt", "[UNK]\nok\n\xff\n");
  EXPECT_NE(error_message([&] {
              Vocab::read(dir.path() / "bad.txt");
            }).find("bad.txt:3: invalid UTF-8 at byte offset 0"),
            std::string::npos);
  dir.write("empty.txt", "");
  EXPECT_NE(error_message([&] { Vocab::read(dir.path() / "empty.txt"); }).find("empty"), std::string::npos);
  EXPECT_NE(error_message([&] { Vocab::read(dir.path() / "missing.txt"); }).find("missing.txt: cannot open"),
            std::string::npos);

  // Copies share the table, so lookups stay valid after the original is gone.
  std::optional<Vocab> copy;
  {
    const Vocab original({"[UNK]", "x"});
    copy = original;
  }
  EXPECT_EQ(copy->find("x"), 1);

  write_vocab(dir.path() / "out.txt", {"[UNK]", "##a", "\xc3\xa9"});
  EXPECT_EQ(Vocab::read(dir.path() / "out.txt").tokens(),
            (std::vector<std::string>{"[UNK]", "##a", "\xc3\xa9"}));
  EXPECT_THROW(write_vocab(dir.path() / "bad_out.txt", {"a\nb"}), Error);
}

TEST(Tokenizer, NeverSplitAndNoBasicTokenize) {
  TokenizerOptions never;
  never.never_split = {"A.B"};
  EXPECT_EQ(small_tokenizer(never).tokenize("A.B a.b"), (std::vector<std::string>{"A.B", "a", ".", "b"}));

  TokenizerOptions raw;
  raw.do_basic_tokenize = false;
  EXPECT_EQ(small_tokenizer(raw).tokenize("a, b\tA"), (std::vector<std::string>{"[UNK]", "b", "[UNK]"}));
}

TEST(Tokenizer, FlavorsDifferOnlyWhereTheSpecSaysSo) {
  // SPEC.md §9 with the BiomedBERT vocabulary.
  EXPECT_EQ(biomedbert(HfFlavor::fast).tokenize("x\xcd\xb8y"),
            std::vector<std::string>{"[UNK]"});  // U+0378 kept
  EXPECT_EQ(biomedbert(HfFlavor::slow).tokenize("x\xcd\xb8y"),
            std::vector<std::string>{"xy"});  // deleted as Cn
  EXPECT_EQ(biomedbert(HfFlavor::fast)
                .tokenize("a\xf0\xab\xa0\xa0"
                          "b"),
            std::vector<std::string>{"[UNK]"});  // U+2B820 is not CJK for the Rust library
  EXPECT_EQ(biomedbert(HfFlavor::slow)
                .tokenize("a\xf0\xab\xa0\xa0"
                          "b"),
            (std::vector<std::string>{"a", "[UNK]", "b"}));
  // Ordinary text is the same.
  const std::string report = "Mild cardiomegaly. No focal consolidation; CT-guided biopsy of 1.5×10^9/L.";
  EXPECT_EQ(biomedbert(HfFlavor::fast).tokenize(report), biomedbert(HfFlavor::slow).tokenize(report));

  // Newer slow tokenizers compose to NFC first, which shows when accents are kept.
  BasicTokenizerOptions cased;
  cased.do_lower_case = false;
  EXPECT_EQ(BasicTokenizer(cased).tokenize("e\xcc\x81"), std::vector<std::string>{"e\xcc\x81"});
  cased.flavor = HfFlavor::slow;
  EXPECT_EQ(BasicTokenizer(cased).tokenize("e\xcc\x81"), std::vector<std::string>{"\xc3\xa9"});
}

TEST(BasicTokenizer, LowercasesWithFullMappingCharacterByCharacter) {
  BasicTokenizerOptions keep_accents;
  keep_accents.strip_accents = false;
  // İ lowercases to i + U+0307; Σ lowercases to σ also at the end of a word (no final-sigma rule).
  EXPECT_EQ(BasicTokenizer(keep_accents).tokenize("\xc4\xb0 \xce\x9f\xce\x94\xce\x9f\xce\xa3"),
            (std::vector<std::string>{"i\xcc\x87", "\xce\xbf\xce\xb4\xce\xbf\xcf\x83"}));
  EXPECT_EQ(BasicTokenizer().tokenize("\xc4\xb0 \xc3\x85ngstr\xc3\xb6m"),
            (std::vector<std::string>{"i", "angstrom"}));
}

TEST(TextTensors, StacksPaddedBatches) {
  const Tokenizer tokenizer = small_tokenizer();
  const TextTensors tensors =
      to_tensors(tokenizer.encode_batch({"a b", "a"}, EncodeOptions::fixed_length(5)));
  ASSERT_EQ(tensors.input_ids.sizes(), (at::IntArrayRef{2, 5}));
  EXPECT_EQ(tensors.input_ids.scalar_type(), at::kLong);
  EXPECT_EQ(tensors.input_ids[1][2].item<int64_t>(), 3);
  EXPECT_EQ(tensors.attention_mask.sum().item<int64_t>(), 7);
  EXPECT_EQ(tensors.token_type_ids.sum().item<int64_t>(), 0);
  EXPECT_NE(error_message([&] {
              to_tensors(tokenizer.encode_batch({"a b", "a"}));
            }).find("encode with padding"),
            std::string::npos);
}

}  // namespace
}  // namespace hlip::text
