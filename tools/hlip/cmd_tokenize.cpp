// `hlip tokenize`: texts from stdin, one per line, to WordPiece tokens and model inputs as JSON Lines.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/text/tokenizer.h"
#include "hlip/text/vocab.h"

namespace hlip::cli {

Command tokenize_command() {
  return {"tokenize", "Tokenize texts from stdin (one per line) into WordPiece tokens, input ids and masks",
          [](CLI::App& app) {
            auto vocab = std::make_shared<std::string>();
            auto no_lower_case = std::make_shared<bool>(false);
            auto json_input = std::make_shared<bool>(false);
            auto max_length = std::make_shared<int64_t>(0);
            app.add_option("--vocab", *vocab,
                           "A vocab.txt, or a tokenizer folder (vocab.txt, tokenizer_config.json)")
                ->required();
            app.add_flag("--no-lower-case", *no_lower_case, "Keep case and accents (cased vocabularies)");
            app.add_option("--max-length", *max_length, "Truncate and pad input_ids / attention_mask to L")
                ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
            app.add_flag("--json-input", *json_input,
                         "Each input line is a JSON string (texts may hold newlines)");
            return [vocab, no_lower_case, json_input, max_length] {
              auto options = text::read_tokenizer_options(*vocab);
              if (*no_lower_case) options.do_lower_case = false;
              const text::Tokenizer tokenizer(text::Vocab::read(*vocab), options);
              const auto encode_options =
                  *max_length > 0 ? text::EncodeOptions::fixed_length(*max_length) : text::EncodeOptions{};
              int64_t line_number = 0;
              for (std::string line; std::getline(std::cin, line);) {
                ++line_number;
                std::string input = line;
                if (*json_input) {
                  const auto parsed = nlohmann::json::parse(line, nullptr, false);
                  if (!parsed.is_string()) {
                    throw Error(fmt::format("stdin:{}: --json-input expects a JSON string per line, got {}",
                                            line_number, line.substr(0, 80)));
                  }
                  input = parsed.get<std::string>();
                }
                try {
                  const auto encoding = tokenizer.encode(input, encode_options);
                  const nlohmann::json out{{"tokens", tokenizer.tokenize(input)},
                                           {"input_ids", encoding.input_ids},
                                           {"attention_mask", encoding.attention_mask}};
                  std::cout << out.dump() << "\n";
                } catch (const Error& e) {
                  throw Error(fmt::format("stdin:{}: {}", line_number, e.what()));
                }
              }
              return 0;
            };
          }};
}

}  // namespace hlip::cli
