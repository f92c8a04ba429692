#include "command.h"

namespace hlip::cli {

// Every subcommand, in the order `hlip --help` lists them.
const std::vector<Command>& all_commands() {
  // clang-format off
  static const std::vector<Command> commands{
      version_command(),
      doctor_command(),
      inspect_command(),
      synth_command(),
      manifest_command(),
      prepare_command(),
      info_command(),
      convert_command(),
      vocab_command(),
      tokenize_command(),
      forward_command(),
      train_command(),
      zeroshot_command(),
      embed_command(),
      vqa_command(),
      retrieve_command(),
      probe_command(),
      report_command(),
      train_gen_command(),
      generate_command(),
      eval_gen_command(),
      ablate_command(),
  };
  // clang-format on
  return commands;
}

}  // namespace hlip::cli
