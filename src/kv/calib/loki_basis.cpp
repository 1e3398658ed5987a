#include "kv/calib/loki_basis.h"
#include "kv/calib/json_file.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kv/calib/sym_eigen.h"
#include "util/error.h"

namespace h1bkv {

namespace {

using json = nlohmann::json;

const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// f32 array as base64 of its little-endian bytes (RFC 4648, with '=' padding).
std::string floats_to_base64(const std::vector<float>& v) {
  std::vector<uint8_t> bytes(v.size() * 4);
  for (size_t i = 0; i < v.size(); ++i) {
    uint32_t u;
    std::memcpy(&u, &v[i], 4);
    for (int b = 0; b < 4; ++b) bytes[i * 4 + b] = (uint8_t)(u >> (8 * b));
  }
  std::string s;
  s.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    const uint32_t x = (uint32_t)bytes[i] << 16 | (n > 1 ? (uint32_t)bytes[i + 1] << 8 : 0) |
                       (n > 2 ? bytes[i + 2] : 0);
    s += kB64[x >> 18 & 63];
    s += kB64[x >> 12 & 63];
    s += n > 1 ? kB64[x >> 6 & 63] : '=';
    s += n > 2 ? kB64[x & 63] : '=';
  }
  return s;
}

// Inverse of floats_to_base64; expects exactly `count` floats. Throws Error naming path and field.
std::vector<float> base64_to_floats(const std::string& s, size_t count, const std::string& path,
                                    const std::string& field) {
  const std::string where = path + ": field \"" + field + "\"";
  check(s.size() % 4 == 0,
        where + ": base64 length " + std::to_string(s.size()) + " is not a multiple of 4");
  int8_t val[256];
  std::memset(val, -1, sizeof val);
  for (int i = 0; i < 64; ++i) val[(uint8_t)kB64[i]] = (int8_t)i;
  std::vector<uint8_t> bytes;
  bytes.reserve(s.size() / 4 * 3);
  for (size_t i = 0; i < s.size(); i += 4) {
    const bool last = i + 4 == s.size();
    const int pad = last ? (s[i + 3] == '=') + (s[i + 2] == '=') : 0;
    check(pad == 0 || s[i + 3] == '=', where + ": bad base64 padding");
    uint32_t x = 0;
    for (int j = 0; j < 4; ++j) {
      const int c = j < 4 - pad ? val[(uint8_t)s[i + j]] : 0;
      check(c >= 0, where + ": bad base64 character at " + std::to_string(i + j));
      x = x << 6 | (uint32_t)c;
    }
    for (int j = 0; j < 3 - pad; ++j) bytes.push_back((uint8_t)(x >> (16 - 8 * j)));
  }
  check(bytes.size() == count * 4, where + ": " + std::to_string(bytes.size()) + " bytes, expected " +
                                       std::to_string(count * 4) + " (" + std::to_string(count) +
                                       " f32)");
  std::vector<float> v(count);
  for (size_t i = 0; i < count; ++i) {
    const uint32_t u = (uint32_t)bytes[i * 4] | (uint32_t)bytes[i * 4 + 1] << 8 |
                       (uint32_t)bytes[i * 4 + 2] << 16 | (uint32_t)bytes[i * 4 + 3] << 24;
    std::memcpy(&v[i], &u, 4);
    check(std::isfinite(v[i]), where + ": value " + std::to_string(i) + " is not finite");
  }
  return v;
}

std::string basename_of(const std::string& p) {
  const size_t s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

std::vector<double> LokiBasis::explained_mean() const {
  std::vector<double> m(head_dim, 0.0);
  const size_t heads = (size_t)n_layer * n_kv_head;
  for (size_t i = 0; i < heads; ++i)
    for (int j = 0; j < head_dim; ++j) m[j] += explained[i * head_dim + j] / (double)heads;
  return m;
}

void KeyMoments::add(const float* k, int64_t n_tok, size_t stride) {
  for (int64_t t = 0; t < n_tok; ++t) {
    const float* x = k + t * stride;
    for (int i = 0; i < d; ++i) {
      const double xi = x[i];
      sum[i] += xi;
      double* row = &sum2[(size_t)i * d];
      for (int j = i; j < d; ++j) row[j] += xi * x[j];
    }
  }
  n += (double)n_tok;
}

void pca_from_moments(const KeyMoments& m, float* basis, float* mean, float* explained) {
  check(m.n >= 1, "loki calibration: no keys recorded");
  const int d = m.d;
  std::vector<double> cov((size_t)d * d);  // E[k k^T] - mu mu^T (upper triangle)
  for (int i = 0; i < d; ++i) {
    mean[i] = (float)(m.sum[i] / m.n);
    for (int j = i; j < d; ++j)
      cov[(size_t)i * d + j] = m.sum2[(size_t)i * d + j] / m.n - (m.sum[i] / m.n) * (m.sum[j] / m.n);
  }
  const SymEigen e = symmetric_eigen(std::move(cov), d);
  double total = 0;
  for (double x : e.values) total += std::max(x, 0.0);
  double acc = 0;
  for (int j = 0; j < d; ++j) {
    acc += std::max(e.values[j], 0.0);
    explained[j] = total > 0 ? (float)(acc / total) : (float)(j + 1) / d;
    for (int c = 0; c < d; ++c) basis[(size_t)j * d + c] = (float)e.vectors[(size_t)j * d + c];
  }
}

void save_loki_basis(const std::string& path, const LokiBasis& b) {
  using ojson = nlohmann::ordered_json;  // keys in the documented order
  const std::vector<double> em = b.explained_mean();
  ojson ex = ojson::array();
  for (double x : em) ex.push_back(std::round(x * 1e5) / 1e5);
  ojson j = {{"format", "h1bkv-loki-basis"},
             {"version", 1},
             {"model_id", b.model_id},
             {"model", basename_of(b.model)},
             {"n_layer", b.n_layer},
             {"n_kv_head", b.n_kv_head},
             {"head_dim", b.head_dim},
             {"text", b.text},
             {"tokens", b.tokens},
             {"centered", true},
             {"explained_mean", ex},
             {"basis", floats_to_base64(b.basis)},
             {"mean", floats_to_base64(b.mean)},
             {"explained", floats_to_base64(b.explained)}};
  write_json_file(path, j);
}

LokiBasis load_loki_basis(const std::string& path) {
  const json j = read_json_file(path);
  LokiBasis b;
  auto field = [&](const char* name) -> const json& {
    check(j.contains(name), path + ": missing field \"" + std::string(name) + "\"");
    return j.at(name);
  };
  auto int_field = [&](const char* name, int64_t lo, int64_t hi) {
    const json& x = field(name);
    check(x.is_number_integer() && x.get<int64_t>() >= lo && x.get<int64_t>() <= hi,
          path + ": field \"" + name + "\" must be an integer in [" + std::to_string(lo) + ", " +
              std::to_string(hi) + "] (got " + x.dump() + ")");
    return x.get<int64_t>();
  };
  auto str_field = [&](const char* name) {
    const json& x = field(name);
    check(x.is_string(), path + ": field \"" + std::string(name) + "\" must be a string");
    return x.get<std::string>();
  };
  try {
    check(j.is_object() && j.value("format", "") == "h1bkv-loki-basis",
          path + ": not a loki basis file (format != \"h1bkv-loki-basis\")");
    check(int_field("version", 1, 1) == 1, path + ": unsupported version");
    b.model_id = str_field("model_id");
    b.model = j.value("model", "");
    b.n_layer = (int)int_field("n_layer", 1, 4096);
    b.n_kv_head = (int)int_field("n_kv_head", 1, 4096);
    b.head_dim = (int)int_field("head_dim", 1, 1024);
    b.tokens = int_field("tokens", 0, INT64_MAX);
    const json& text = field("text");
    check(text.is_array(), path + ": field \"text\" must be an array of file names");
    for (const auto& t : text) {
      check(t.is_string(), path + ": field \"text\" must be an array of file names");
      b.text.push_back(t.get<std::string>());
    }
    const size_t heads = (size_t)b.n_layer * b.n_kv_head, d = b.head_dim;
    b.basis = base64_to_floats(str_field("basis"), heads * d * d, path, "basis");
    b.mean = base64_to_floats(str_field("mean"), heads * d, path, "mean");
    b.explained = base64_to_floats(str_field("explained"), heads * d, path, "explained");
    for (size_t h = 0; h < heads; ++h) {  // rows orthonormal (f32 rounding of an exact rotation)
      const float* B = b.basis.data() + h * d * d;
      for (size_t i = 0; i < d; ++i)
        for (size_t k = i; k < d; ++k) {
          double dot = 0;
          for (size_t c = 0; c < d; ++c) dot += (double)B[i * d + c] * B[k * d + c];
          check(std::abs(dot - (i == k ? 1.0 : 0.0)) < 1e-4,
                path + ": field \"basis\": layer " + std::to_string(h / b.n_kv_head) + " head " +
                    std::to_string(h % b.n_kv_head) + " is not orthonormal (rows " + std::to_string(i) +
                    ", " + std::to_string(k) + ": dot " + std::to_string(dot) + ")");
        }
    }
  } catch (const json::exception& e) {
    throw Error(path + ": bad loki basis file (" + std::string(e.what()) + ")");
  }
  return b;
}

void check_loki_basis_fits(const LokiBasis& b, const std::string& path, const CacheGeometry& g) {
  check(b.model_id == g.model_id, path + ": made for another model (" + b.model + ", id " + b.model_id +
                                      "); this model's id is " + g.model_id);
  check(b.n_layer == g.n_layer && b.n_kv_head == g.n_kv_head && b.head_dim == g.head_dim,
        path + ": basis for " + std::to_string(b.n_layer) + " layers x " + std::to_string(b.n_kv_head) +
            " KV heads x head_dim " + std::to_string(b.head_dim) + "; the model has " +
            std::to_string(g.n_layer) + " x " + std::to_string(g.n_kv_head) + " x " +
            std::to_string(g.head_dim));
}

}  // namespace h1bkv
