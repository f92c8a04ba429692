// `hlip inspect FILE`: the keys, shapes, dtypes and metadata of a safetensors file, read from its header
// only.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <numeric>

#include "command.h"
#include "hlip/io/safetensors.h"

namespace hlip::cli {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

int64_t element_count(const std::vector<int64_t>& shape) {
  return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

}  // namespace

Command inspect_command() {
  return {
      "inspect", "List a safetensors file's tensors (name, dtype, shape) and metadata", [](CLI::App& app) {
        auto path = std::make_shared<std::string>();
        auto json = std::make_shared<bool>(false);
        app.add_option("file", *path, "A .safetensors file")->required();
        app.add_flag("--json", *json, "Print one JSON object");
        return [path, json] {
          const auto index = io::read_safetensors_index(*path);
          const auto metadata = io::read_safetensors_metadata(*path);
          int64_t values = 0;
          uint64_t bytes = 0;
          for (const auto& [name, info] : index) {
            values += element_count(info.shape);
            bytes += info.end - info.begin;
          }
          if (*json) {
            nlohmann::json tensors = nlohmann::json::object();
            for (const auto& [name, info] : index) {
              tensors[name] = {
                  {"dtype", info.dtype}, {"shape", info.shape}, {"data_offsets", {info.begin, info.end}}};
            }
            const nlohmann::json out = {{"file", *path},         {"metadata", metadata},
                                        {"tensors", tensors},    {"tensor_count", index.size()},
                                        {"value_count", values}, {"byte_count", bytes}};
            std::cout << out.dump(2) << "\n";
            return 0;
          }
          size_t width = 0;
          for (const auto& [name, info] : index)
            width = std::max(width, name.size());
          for (const auto& [name, info] : index) {
            std::cout << fmt::format("{:<{}}  {:<5} {}\n", name, width, info.dtype, shape_text(info.shape));
          }
          for (const auto& [key, value] : metadata)
            std::cout << fmt::format("metadata {} = {}\n", key, value);
          std::cout << fmt::format("{} tensors, {} values, {:.1f} MiB\n", index.size(), values,
                                   static_cast<double>(bytes) / (1024.0 * 1024.0));
          return 0;
        };
      }};
}

}  // namespace hlip::cli
