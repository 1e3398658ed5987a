#include "train/safetensors.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file.h"

namespace h1bkv::train {

std::vector<TensorRef> tensor_refs(const ParamBuffer& p) {
  std::vector<TensorRef> r;
  for (const auto& t : p.tensors()) r.push_back({t.name, t.shape, p.values().data() + t.offset});
  return r;
}

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json h;
  h["__metadata__"] = metadata;
  std::vector<size_t> sizes;
  size_t off = 0;
  for (const auto& t : tensors) {
    size_t n = 1;
    for (int64_t s : t.shape) n *= (size_t)s;
    h[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {off * 4, (off + n) * 4}}};
    sizes.push_back(n);
    off += n;
  }
  std::string header = h.dump();
  header.append((8 - header.size() % 8) % 8, ' ');
  const uint64_t len = header.size();
  OutputFile out(path);
  out.write(&len, 8);  // little-endian host (x86-64)
  out.write(header.data(), header.size());
  for (size_t i = 0; i < tensors.size(); ++i) out.write(tensors[i].data, sizes[i] * sizeof(float));
  out.commit();
}

std::vector<NamedTensor> read_safetensors(const std::string& path, std::map<std::string, std::string>* metadata) {
  const uint64_t size = check_regular_file(path);
  check(size >= 8, path + ": not a safetensors file (" + std::to_string(size) + " bytes)");
  const std::string bytes = read_file(path, uint64_t{1} << 32);
  uint64_t len;
  std::memcpy(&len, bytes.data(), 8);
  check(len <= bytes.size() - 8, path + ": header length " + std::to_string(len) + " exceeds the file");
  nlohmann::json h;
  try {
    h = nlohmann::json::parse(bytes.substr(8, len));
  } catch (const std::exception& e) {
    throw Error(path + ": bad safetensors header: " + e.what());
  }
  check(h.is_object(), path + ": the safetensors header is not an object");
  const uint64_t data_bytes = bytes.size() - 8 - len;
  const char* data = bytes.data() + 8 + len;
  std::vector<NamedTensor> out;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    if (name == "__metadata__") {
      check(e.is_object(), path + ": __metadata__ is not an object");
      if (metadata)
        for (auto m = e.begin(); m != e.end(); ++m) {
          check(m.value().is_string(), path + ": metadata '" + m.key() + "' is not a string");
          (*metadata)[m.key()] = m.value().get<std::string>();
        }
      continue;
    }
    const std::string what = path + ": tensor '" + name + "': ";
    check(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
          what + "needs dtype, shape and data_offsets");
    check(e["dtype"] == "F32", what + "dtype must be F32");
    const auto& sh = e["shape"];
    const auto& off = e["data_offsets"];
    check(sh.is_array() && sh.size() <= 8, what + "bad shape");
    check(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
          what + "bad data_offsets");
    NamedTensor t{name, {}, {}};
    uint64_t n = 1;
    for (const auto& s : sh) {
      check(s.is_number_unsigned() && s.get<uint64_t>() <= data_bytes, what + "bad shape");
      t.shape.push_back(s.get<int64_t>());
      n *= s.get<uint64_t>();
      check(n <= data_bytes, what + "shape exceeds the file");
    }
    const uint64_t b = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    check(b <= end && end <= data_bytes && end - b == n * 4,
          what + "data_offsets [" + std::to_string(b) + ", " + std::to_string(end) + ") do not hold " +
              std::to_string(n) + " floats inside the " + std::to_string(data_bytes) + " data bytes");
    t.data.resize(n);
    std::memcpy(t.data.data(), data + b, n * 4);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace h1bkv::train
