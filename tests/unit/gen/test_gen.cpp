// Report generation: decoding on constructed next-token distributions, the decoder's masks, finding rules
// and the generation metrics.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>

#include "hlip/core/error.h"
#include "hlip/gen/decode.h"
#include "hlip/gen/decoder.h"
#include "hlip/gen/evaluation.h"
#include "hlip/gen/generator.h"
#include "hlip/gen/training.h"
#include "temp_dir.h"

namespace hlip::gen {
namespace {

using test::error_message;

constexpr int64_t kEos = 0, kA = 1, kB = 2, kC = 3, kStart = 9;

// P(next | generated so far), over the vocabulary {EOS, A, B, C}:
//   start: A .55, B .45;  A: EOS .4, C .6;  A C: EOS 1;  B: EOS .9, C .1;  B C: EOS 1.
// Greedy follows A then C (p = .33); the most probable sequence is B EOS (p = .405).
at::Tensor constructed(const std::vector<int64_t>& generated) {
  std::vector<double> p(4, 0.0);
  if (generated.empty()) {
    p[kA] = 0.55;
    p[kB] = 0.45;
  } else if (generated == std::vector<int64_t>{kA}) {
    p[kEos] = 0.4;
    p[kC] = 0.6;
  } else if (generated == std::vector<int64_t>{kB}) {
    p[kEos] = 0.9;
    p[kC] = 0.1;
  } else {
    p[kEos] = 1.0;
  }
  return at::tensor(p, at::kDouble).log();
}

NextTokenLogProbs constructed_model(int* calls = nullptr) {
  return [calls](const std::vector<std::vector<int64_t>>& prefixes) {
    if (calls) ++*calls;
    std::vector<at::Tensor> rows;
    for (const auto& prefix : prefixes) {
      EXPECT_EQ(prefix.front(), kStart);
      rows.push_back(constructed(std::vector<int64_t>(prefix.begin() + 1, prefix.end())));
    }
    return at::stack(rows).to(at::kFloat);
  };
}

DecodeOptions options(int64_t beams, double length_penalty) {
  DecodeOptions o;
  o.prompt = {kStart};
  o.eos_id = kEos;
  o.beams = beams;
  o.length_penalty = length_penalty;
  o.max_new_tokens = 5;
  return o;
}

TEST(Decode, GreedyTakesTheLikeliestTokenEachStep) {
  const Decoded greedy = greedy_decode(constructed_model(), options(1, 0));
  EXPECT_EQ(greedy.tokens, (std::vector<int64_t>{kA, kC}));
  EXPECT_TRUE(greedy.finished);
  EXPECT_NEAR(greedy.log_prob, std::log(0.55 * 0.6 * 1.0), 1e-6);
  // Deterministic.
  EXPECT_EQ(greedy_decode(constructed_model(), options(1, 0)).tokens, greedy.tokens);
}

TEST(Decode, BeamSearchReturnsTheHighestScoringSequence) {
  // Without a length penalty the score is the log-probability: B EOS (.405) beats greedy's A C EOS (.33).
  const Decoded best = beam_search(constructed_model(), options(2, 0));
  EXPECT_EQ(best.tokens, (std::vector<int64_t>{kB}));
  EXPECT_TRUE(best.finished);
  EXPECT_NEAR(best.log_prob, std::log(0.405), 1e-6);
  EXPECT_NEAR(best.score, std::log(0.405), 1e-6);
  // With length_penalty 1 scores are per token: A C EOS (log .33 / 3 = -0.370) beats B EOS (log .405 / 2 =
  // -0.452).
  const Decoded per_token = beam_search(constructed_model(), options(2, 1.0));
  EXPECT_EQ(per_token.tokens, (std::vector<int64_t>{kA, kC}));
  EXPECT_NEAR(per_token.score, std::log(0.33) / 3, 1e-6);
  // One beam is greedy.
  EXPECT_EQ(beam_search(constructed_model(), options(1, 0)).tokens, (std::vector<int64_t>{kA, kC}));
}

TEST(Decode, StopsAtTheMaximumLengthUnfinished) {
  DecodeOptions o = options(1, 0);
  o.max_new_tokens = 1;
  const Decoded cut = greedy_decode(constructed_model(), o);
  EXPECT_EQ(cut.tokens, (std::vector<int64_t>{kA}));
  EXPECT_FALSE(cut.finished);
  o.beams = 3;
  const Decoded beam = beam_search(constructed_model(), o);
  EXPECT_FALSE(beam.finished);
  EXPECT_EQ(beam.tokens, (std::vector<int64_t>{kA}));
  o.prompt.clear();
  EXPECT_NE(error_message([&] { decode(constructed_model(), o); }).find("prompt is empty"),
            std::string::npos);
}

DecoderConfig tiny_config() {
  DecoderConfig c;
  c.vocab_size = 11;
  c.width = 16;
  c.layers = 2;
  c.heads = 2;
  c.max_length = 12;
  c.visual_width = 6;
  c.dropout = 0.0;
  c.bos_id = 1;
  c.eos_id = 2;
  c.pad_id = 0;
  return c;
}

TEST(Decoder, CausalAndMaskedMemory) {
  at::manual_seed(0);
  ReportDecoder decoder(tiny_config());
  decoder->eval();
  at::NoGradGuard no_grad;
  const at::Tensor visual = at::randn({1, 5, 6});
  const at::Tensor memory = decoder->encode_visual(visual);
  EXPECT_EQ(memory.sizes(), (at::IntArrayRef{1, 5, 16}));
  const at::Tensor ids = at::tensor({1, 5, 7, 3}, at::kLong).view({1, 4});
  const at::Tensor logits = decoder->forward(ids, memory);
  EXPECT_EQ(logits.sizes(), (at::IntArrayRef{1, 4, 11}));
  // A later token does not change earlier positions.
  const at::Tensor changed = decoder->forward(at::tensor({1, 5, 7, 9}, at::kLong).view({1, 4}), memory);
  EXPECT_TRUE(at::allclose(changed.slice(1, 0, 3), logits.slice(1, 0, 3), 1e-6, 1e-6));
  EXPECT_FALSE(at::allclose(changed.select(1, 3), logits.select(1, 3)));
  // Padded memory tokens, masked out, change nothing.
  const at::Tensor padded = at::cat({memory, at::randn({1, 3, 16})}, 1);
  const at::Tensor mask = at::cat({at::ones({1, 5}, at::kBool), at::zeros({1, 3}, at::kBool)}, 1);
  EXPECT_TRUE(at::allclose(decoder->forward(ids, padded, mask), logits, 1e-5, 1e-5));
  // Too long an input is an error.
  EXPECT_NE(error_message([&] {
              decoder->forward(at::ones({1, 13}, at::kLong), memory);
            }).find("12 positions"),
            std::string::npos);
}

TEST(Decoder, ConfigRoundTripAndErrors) {
  const DecoderConfig c = tiny_config();
  EXPECT_EQ(DecoderConfig::from_json(c.to_json(), "x").to_json(), c.to_json());
  auto bad = c.to_json();
  bad["heads"] = 3;
  EXPECT_EQ(error_message([&] { DecoderConfig::from_json(bad, "g.json"); }),
            "g.json: decoder width 16 is not divisible by its 3 heads");
  bad = c.to_json();
  bad.erase("vocab_size");
  EXPECT_EQ(error_message([&] { DecoderConfig::from_json(bad, "g.json"); }),
            "g.json: decoder config has no \"vocab_size\"");
  bad = c.to_json();
  bad["eos_id"] = 11;
  EXPECT_NE(error_message([&] { DecoderConfig::from_json(bad, "g.json"); }).find("outside the vocabulary"),
            std::string::npos);
  // CoCa's parameter names.
  ReportDecoder decoder(c);
  const auto names = decoder->named_parameters(true);
  for (const char* name :
       {"visual_proj.weight", "text_decoder.token_embedding.weight", "text_decoder.positional_embedding",
        "text_decoder.resblocks.0.attn.in_proj_weight", "text_decoder.cross_attn.1.ln_1_kv.weight",
        "text_decoder.cross_attn.1.mlp.c_fc.weight", "text_decoder.text_projection"})
    EXPECT_TRUE(names.contains(name)) << name;
}

TEST(Findings, NegatedSentencesDoNotCount) {
  const auto& rules = default_finding_rules();
  EXPECT_EQ(
      mentioned_findings("Acute infarct in the left MCA territory. No intracranial mass lesion.", rules),
      (std::set<std::string>{"stroke"}));
  EXPECT_EQ(mentioned_findings("No evidence of acute infarction. The ventricles are normal in size.", rules),
            std::set<std::string>{});
  EXPECT_EQ(mentioned_findings("No acute intracranial abnormality.", rules),
            (std::set<std::string>{"normal"}));
  EXPECT_EQ(mentioned_findings("A 2.8 cm mass, consistent with a METASTASIS; a second glioma", rules),
            (std::set<std::string>{"metastasis", "glioma"}));
  EXPECT_EQ(mentioned_findings("Small subdural haematoma.", rules),
            (std::set<std::string>{"subdural", "Any"}));
}

TEST(Findings, RuleFilesAreCheckedFieldByField) {
  test::TempDir dir;
  std::ofstream(dir.file("ok.json")) << R"([{"label": "x", "patterns": ["Foo"], "negatable": false}])";
  const auto rules = read_finding_rules(dir.file("ok.json"));
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(mentioned_findings("no foo here", rules), (std::set<std::string>{"x"}));
  std::ofstream(dir.file("bad.json")) << R"([{"label": "x", "patterns": ["a"], "negated": true}])";
  EXPECT_NE(
      error_message([&] { read_finding_rules(dir.file("bad.json")); }).find("unknown field \"negated\""),
      std::string::npos);
  std::ofstream(dir.file("empty.json")) << "[]";
  EXPECT_NE(error_message([&] { read_finding_rules(dir.file("empty.json")); }).find("non-empty JSON array"),
            std::string::npos);
}

TEST(GenerationMetrics, IdenticalTextsScoreOneAndFindingF1CountsByHand) {
  const std::vector<std::string> references{"Acute infarct. No mass.", "A left glioma.",
                                            "No acute intracranial abnormality."};
  const std::vector<std::map<std::string, int>> labels{{{"stroke", 1}, {"glioma", 0}, {"normal", 0}},
                                                       {{"stroke", 0}, {"glioma", 1}, {"normal", 0}},
                                                       {{"stroke", 0}, {"glioma", 0}, {"normal", 1}}};
  const auto same = generation_metrics(references, references, labels, default_finding_rules());
  EXPECT_DOUBLE_EQ(same["bleu"]["bleu1"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(same["rouge_l"]["fmeasure"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(same["finding_f1_macro"].get<double>(), 1.0);
  EXPECT_EQ(same["findings"].size(), 3u);  // only the labels the studies carry

  // Every study gets "acute infarct": stroke P 1/3 R 1 F1 .5; glioma and normal F1 0; micro P 1/3 R 1/3.
  const std::vector<std::string> always(3, "Acute infarct.");
  const auto one = generation_metrics(references, always, labels, default_finding_rules());
  EXPECT_NEAR(one["findings"]["stroke"]["f1"].get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(one["finding_f1_macro"].get<double>(), 0.5 / 3, 1e-12);
  EXPECT_NEAR(one["finding_f1_micro"].get<double>(), 1.0 / 3, 1e-12);
  EXPECT_EQ(one["findings"]["stroke"]["n_mentioned"].get<double>(), 3);
}

TEST(Targets, ReportQaOrBoth) {
  EXPECT_TRUE(parse_targets("report").reports);
  EXPECT_FALSE(parse_targets("report").answers);
  EXPECT_FALSE(parse_targets("qa").reports);
  EXPECT_TRUE(parse_targets("qa").answers);
  EXPECT_TRUE(parse_targets("both").reports && parse_targets("both").answers);
  EXPECT_NE(test::error_message([] { parse_targets("answers"); }).find("expected report, qa or both"),
            std::string::npos);
}

TEST(TidyText, JoinsWhatWordPieceSpacedApart) {
  EXPECT_EQ(tidy_decoded_text("an extra - axial mass of 5. 3 cm ( left )."),
            "an extra-axial mass of 5.3 cm (left).");
  EXPECT_EQ(tidy_decoded_text("no change. 3 lesions"), "no change. 3 lesions");
}

}  // namespace
}  // namespace hlip::gen
