// `hlip vocab`: learn a WordPiece vocabulary from a manifest's reports, so training from scratch works
// offline.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/data/manifest.h"
#include "hlip/text/tokenizer.h"
#include "hlip/text/vocab.h"
#include "hlip/text/wordpiece_trainer.h"

namespace hlip::cli {

Command vocab_command() {
  return {
      "vocab",
      "Learn a WordPiece vocabulary (vocab.txt) from the reports (and closed questions) of a manifest",
      [](CLI::App& app) {
        auto manifest = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        auto source = std::make_shared<std::string>();
        auto options = std::make_shared<text::WordPieceTrainerOptions>();
        auto all_splits = std::make_shared<bool>(false);
        auto no_questions = std::make_shared<bool>(false);
        options->vocab_size = 4096;
        app.add_option("--manifest", *manifest, "Study manifest (studies.jsonl)")->required();
        app.add_option("--out", *out, "vocab.txt to write (a tokenizer_config.json is written beside it)")
            ->required();
        app.add_option("--size", options->vocab_size, "Vocabulary size")
            ->check(CLI::Range(16, 1000000))
            ->capture_default_str();
        app.add_option("--min-frequency", options->min_frequency, "Merge only pairs seen this often")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_option("--report-source", *source, "Report source to learn from (default: the main report)");
        app.add_flag("--all-splits", *all_splits,
                     "Also learn from val and test reports (default: train split only)");
        app.add_flag("--no-questions", *no_questions,
                     "Leave out the studies' closed questions and answers (manifest field \"qa\"), which are "
                     "learnt by default so that a decoder trained on them can write every answer");
        return [manifest, out, source, options, all_splits, no_questions] {
          const auto studies = data::read_manifest(*manifest);
          text::WordPieceTrainer trainer(*options);
          int64_t used = 0, sentences = 0, questions = 0;
          for (const auto& study : studies) {
            if (!*all_splits && !study.split.empty() && study.split != "train") continue;
            for (const auto& sentence : data::report_sentences(study, *source)) {
              trainer.add_text(sentence);
              ++sentences;
            }
            for (size_t q = 0; !*no_questions && q < study.qa.size(); ++q) {
              trainer.add_text(study.qa[q].question);
              trainer.add_text(study.qa[q].answer);
              ++questions;
            }
            ++used;
          }
          if (used == 0) throw Error(fmt::format("{}: no training-split study to learn from", *manifest));
          const auto tokens = trainer.train();
          const auto folder = std::filesystem::path(*out).parent_path();
          if (!folder.empty()) create_directories(folder.string());
          text::write_vocab(*out, tokens);
          const auto config = folder / "tokenizer_config.json";
          text::write_tokenizer_config(config, text::TokenizerOptions{});
          std::cout << fmt::format(
              "wrote {} ({} tokens from {} sentences and {} questions of {} studies) and {}\n", *out,
              tokens.size(), sentences, questions, used, config.string());
          return 0;
        };
      }};
}

}  // namespace hlip::cli
