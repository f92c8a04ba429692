#pragma once
// A subcommand of the `hlip` tool. Each one declares its flags on its CLI11 sub-app and returns the function
// that runs it once the command line is parsed; commands.cpp lists them all, in the order `--help` shows.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace hlip::cli {

using Runner = std::function<int()>;

struct Command {
  std::string name;
  std::string description;
  std::function<Runner(CLI::App&)> declare;
};

const std::vector<Command>& all_commands();

Command version_command();
Command doctor_command();
Command inspect_command();
Command synth_command();
Command manifest_command();
Command prepare_command();
Command info_command();
Command convert_command();
Command vocab_command();
Command tokenize_command();
Command forward_command();
Command train_command();
Command zeroshot_command();
Command embed_command();
Command vqa_command();
Command retrieve_command();
Command probe_command();
Command report_command();
Command train_gen_command();
Command generate_command();
Command eval_gen_command();
Command ablate_command();

}  // namespace hlip::cli
