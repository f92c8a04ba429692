#pragma once
// A padded BatchEncoding as int64 tensors [batch, length], for the text tower.
//
//   auto batch = tokenizer.encode_batch(reports, hlip::text::EncodeOptions::fixed_length(77));
//   auto tensors = hlip::text::to_tensors(batch);   // tensors.input_ids: [B, 77] int64

#include <ATen/ATen.h>

#include "hlip/text/tokenizer.h"

namespace hlip::text {

struct TextTensors {
  at::Tensor input_ids;
  at::Tensor attention_mask;
  at::Tensor token_type_ids;
};

// Throws hlip::Error when the rows differ in length (encode with padding) or the batch is empty.
TextTensors to_tensors(const BatchEncoding& batch);

}  // namespace hlip::text
