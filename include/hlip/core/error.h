#pragma once
// hlip's one exception type. Messages name the file, the field and the value, e.g.
//   throw hlip::Error(fmt::format("{}:{}: scan \"{}\": dimension 3 is 0", path, line, name));
// The command-line tool prints the message on one line and exits non-zero.

#include <stdexcept>
#include <string>

namespace hlip {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// Raised for bad command-line usage; the tool exits with status 2 for these.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(message) {}
};

}  // namespace hlip
