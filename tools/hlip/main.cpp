#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <iostream>
#include <map>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/core/runtime.h"

namespace {

constexpr int kUsageExitCode = 2;

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

int usage_error(const CLI::App& app, const std::string& message) {
  std::cerr << "hlip: error: " << message << "\n"
            << "usage: " << app.get_name() << " [--threads N] <command> [options]   (see `hlip --help`)\n";
  return kUsageExitCode;
}

// The first word that is neither a global option (nor its value) nor a known command.
std::string first_unknown_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--threads") {
      ++i;
      continue;
    }
    if (word.empty() || word[0] == '-') continue;
    for (const CLI::App* sub : app.get_subcommands({})) {
      if (sub->check_name(word)) return "";
    }
    return word;
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hlip: hierarchical language-image pre-training for 3D MRI and CT", "hlip"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_version_flag("--version", HLIP_VERSION_STRING);
  int threads = 0;
  app.add_option("--threads", threads, "Intra-op CPU threads for LibTorch and OpenBLAS (0 = all cores)")
      ->check(CLI::NonNegativeNumber);

  std::map<const CLI::App*, hlip::cli::Runner> runners;
  for (const auto& command : hlip::cli::all_commands()) {
    CLI::App* sub = app.add_subcommand(command.name, command.description);
    runners[sub] = command.declare(*sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return 0;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return 0;
  } catch (const CLI::CallForVersion&) {
    std::cout << "hlip " << HLIP_VERSION_STRING << "\n";
    return 0;
  } catch (const CLI::ParseError& e) {
    if (app.get_subcommands().empty()) {
      if (const auto unknown = first_unknown_command(app, argc, argv); !unknown.empty()) {
        return usage_error(app, fmt::format("unknown command \"{}\"", unknown));
      }
    }
    return usage_error(app, e.what());
  }

  try {
    hlip::keep_freed_memory();
    hlip::configure_threads(threads);
    const CLI::App* chosen = app.get_subcommands().front();
    return runners.at(chosen)();
  } catch (const hlip::UsageError& e) {
    return usage_error(app, e.what());
  } catch (const c10::Error& e) {
    std::cerr << "hlip: error: " << first_line(e.what_without_backtrace()) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "hlip: error: " << first_line(e.what()) << "\n";
  }
  return 1;
}
