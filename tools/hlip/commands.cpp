#include "command.h"

namespace hlip::cli {

const std::vector<Command>& all_commands() {
  static const std::vector<Command> commands{
      version_command(), doctor_command(), inspect_command(), synth_command(), vocab_command(),
  };
  return commands;
}

}  // namespace hlip::cli
