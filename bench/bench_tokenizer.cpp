// Tokenizer throughput on the synthetic reports, on one core: sentences per second for the word pieces
// (tokenize_to_ids, and tokenize with its strings), for model inputs at CLIP's context of 77 in batches of
// 256 (encode_batch), and whole reports per second at hlip-tiny's context of 128.
//
// Two vocabularies: BiomedBERT's, HLIP's text tower (../shared/testdata/tokenizer, or the file named by
// HLIP_BENCH_VOCAB; skipped when neither exists), and a 1,000-piece vocabulary learnt from the reports as
// `hlip vocab` does for the demo.
//
//   build/bin/hlip_bench_tokenizer --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "hlip/core/runtime.h"
#include "hlip/data/synth.h"
#include "hlip/text/tokenizer.h"
#include "hlip/text/wordpiece_trainer.h"

namespace {

namespace fs = std::filesystem;
using hlip::text::EncodeOptions;
using hlip::text::Tokenizer;

struct Corpus {
  std::vector<std::string> sentences;  // every sentence of every report source
  std::vector<std::string> reports;    // the verbose reports, sentences joined by spaces
};

// The reports of 200 synthetic studies (seed 0): the sentences the demo trains on.
const Corpus& corpus() {
  static const Corpus corpus = [] {
    Corpus c;
    for (int64_t i = 0; i < 200; ++i) {
      const auto study = hlip::data::generate_mri_study(0, i, hlip::data::SynthSize::kSmall);
      for (const auto& [source, sentences] : study.reports) {
        c.sentences.insert(c.sentences.end(), sentences.begin(), sentences.end());
        if (source == "verbose") c.reports.push_back(fmt::format("{}", fmt::join(sentences, " ")));
      }
    }
    return c;
  }();
  return corpus;
}

fs::path biomedbert_vocab() {
  if (const char* path = std::getenv("HLIP_BENCH_VOCAB")) return path;
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "shared" / "testdata" / "tokenizer" /
         "biomedbert-abstract-fulltext-vocab.txt";
}

const Tokenizer& tokenizer(int which) {
  static const Tokenizer learnt = [] {
    hlip::text::WordPieceTrainerOptions options;
    options.vocab_size = 1000;
    return Tokenizer(hlip::text::Vocab(hlip::text::learn_wordpiece_vocab(corpus().sentences, options)));
  }();
  if (which == 0) return learnt;
  static const Tokenizer biomedbert = Tokenizer::from_pretrained(biomedbert_vocab());
  return biomedbert;
}

bool available(benchmark::State& state) {
  if (state.range(0) == 1 && !fs::exists(biomedbert_vocab())) {
    state.SkipWithError(fmt::format("no BiomedBERT vocabulary at {}", biomedbert_vocab().string()).c_str());
    return false;
  }
  state.SetLabel(state.range(0) == 1 ? "biomedbert" : "learnt-1000");
  return true;
}

void set_rate(benchmark::State& state, int64_t items_per_iteration, const char* name) {
  state.counters[name] = benchmark::Counter(static_cast<double>(state.iterations() * items_per_iteration),
                                            benchmark::Counter::kIsRate);
}

// `tokenize_one(tokenizer, sentence)` over every sentence of the corpus.
template <typename Fn>
void per_sentence(benchmark::State& state, Fn tokenize_one) {
  if (!available(state)) return;
  const Tokenizer& tok = tokenizer(static_cast<int>(state.range(0)));
  const auto& sentences = corpus().sentences;
  for (auto _ : state) {
    for (const std::string& s : sentences)
      benchmark::DoNotOptimize(tokenize_one(tok, s).data());
  }
  set_rate(state, static_cast<int64_t>(sentences.size()), "sentences/s");
}

void BM_TokenizeToIds(benchmark::State& state) {
  per_sentence(state, [](const Tokenizer& tok, const std::string& s) { return tok.tokenize_to_ids(s); });
}

void BM_TokenizeStrings(benchmark::State& state) {
  per_sentence(state, [](const Tokenizer& tok, const std::string& s) { return tok.tokenize(s); });
}

void BM_EncodeBatch77(benchmark::State& state) {
  if (!available(state)) return;
  const Tokenizer& tok = tokenizer(static_cast<int>(state.range(0)));
  const auto& all = corpus().sentences;
  const std::vector<std::string> batch(all.begin(), all.begin() + std::min<size_t>(256, all.size()));
  for (auto _ : state)
    benchmark::DoNotOptimize(tok.encode_batch(batch, EncodeOptions::fixed_length(77)).input_ids.data());
  set_rate(state, static_cast<int64_t>(batch.size()), "sentences/s");
}

void BM_EncodeReports128(benchmark::State& state) {
  if (!available(state)) return;
  const Tokenizer& tok = tokenizer(static_cast<int>(state.range(0)));
  const auto& reports = corpus().reports;
  for (auto _ : state)
    benchmark::DoNotOptimize(tok.encode_batch(reports, EncodeOptions::fixed_length(128)).input_ids.data());
  set_rate(state, static_cast<int64_t>(reports.size()), "reports/s");
}

BENCHMARK(BM_TokenizeToIds)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TokenizeStrings)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeBatch77)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeReports128)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  hlip::configure_threads(1);  // the tokenizer runs on the calling thread; one core is what is measured
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
