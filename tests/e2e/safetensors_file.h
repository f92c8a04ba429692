#pragma once
// A minimal safetensors reader and writer for end-to-end tests, independent of hlip's own (the e2e tests do
// not link the library): the header as JSON, F32 tensors as float vectors, and files assembled from raw
// tensors.

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlip::test {

struct RawTensor {
  std::string dtype;  // "F32", "I64", ...
  std::vector<int64_t> shape;
  std::string bytes;
};

inline nlohmann::json read_safetensors_header(const std::string& path, std::string* data = nullptr) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  uint64_t length = 0;
  in.read(reinterpret_cast<char*>(&length), 8);  // little-endian, as the test machines are
  std::string header(length, '\0');
  in.read(header.data(), static_cast<std::streamsize>(length));
  if (data != nullptr) data->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return nlohmann::json::parse(header);
}

inline std::map<std::string, RawTensor> read_safetensors_raw(const std::string& path) {
  std::string data;
  const nlohmann::json header = read_safetensors_header(path, &data);
  std::map<std::string, RawTensor> tensors;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    const auto begin = info.at("data_offsets")[0].get<size_t>(),
               end = info.at("data_offsets")[1].get<size_t>();
    tensors[name] = {info.at("dtype"), info.at("shape").get<std::vector<int64_t>>(),
                     data.substr(begin, end - begin)};
  }
  return tensors;
}

inline std::vector<float> as_floats(const RawTensor& t) {
  if (t.dtype != "F32") throw std::runtime_error("expected F32, got " + t.dtype);
  std::vector<float> values(t.bytes.size() / sizeof(float));
  std::memcpy(values.data(), t.bytes.data(), t.bytes.size());
  return values;
}

template <typename T>
RawTensor make_tensor(const std::string& dtype, std::vector<int64_t> shape, const std::vector<T>& values) {
  return {dtype, std::move(shape),
          std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T))};
}

inline void write_safetensors_raw(const std::string& path, const std::map<std::string, RawTensor>& tensors) {
  nlohmann::json header = nlohmann::json::object();
  std::string data;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", t.dtype},
                    {"shape", t.shape},
                    {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t length = text.size();
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&length), 8);
  out << text << data;
}

}  // namespace hlip::test
