#include "hlip/ablate/report.h"

#include <fmt/format.h>

#include "hlip/core/error.h"

namespace hlip::ablate {

ReportFiles write_report(const std::filesystem::path& sweep_dir, const ReportOptions& /*options*/) {
  throw Error(fmt::format("{}: the ablation report is not implemented yet", sweep_dir.string()));
}

}  // namespace hlip::ablate
