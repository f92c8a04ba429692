#include "hlip/text/tensors.h"

#include <fmt/format.h>

#include <algorithm>

#include "hlip/core/error.h"

namespace hlip::text {
namespace {

at::Tensor stack_rows(const std::vector<std::vector<int64_t>>& rows, std::size_t length, const char* field) {
  at::Tensor out = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(length)}, at::kLong);
  int64_t* data = out.data_ptr<int64_t>();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].size() != length) {
      throw Error(fmt::format("to_tensors: {} row {} has {} ids, row 0 has {}; encode with padding", field, i,
                              rows[i].size(), length));
    }
    std::copy(rows[i].begin(), rows[i].end(), data + i * length);
  }
  return out;
}

}  // namespace

TextTensors to_tensors(const BatchEncoding& batch) {
  if (batch.input_ids.empty()) throw Error("to_tensors: the batch is empty");
  const std::size_t length = batch.input_ids[0].size();
  return TextTensors{stack_rows(batch.input_ids, length, "input_ids"),
                     stack_rows(batch.attention_mask, length, "attention_mask"),
                     stack_rows(batch.token_type_ids, length, "token_type_ids")};
}

}  // namespace hlip::text
