#include "kv/calib/adapter.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "kv/caches/h1b.h"
#include "kv/calib/h1b_calibration.h"
#include "util/error.h"
#include "util/file.h"
#include "util/fp16.h"

namespace h1bkv {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxAdapterBytes = uint64_t{1} << 30;  // 1 GiB
constexpr uint64_t kMaxHeaderBytes = uint64_t{16} << 20;  // 16 MiB of JSON
constexpr int64_t kMaxDim = int64_t{1} << 24;

// the cache's six, then the model's LoRA (model/lora.h; shapes checked there, not by check_adapter)
constexpr int kLayerTensors = 10, kCacheTensors = 6;
const char* const kLayerNames[kLayerTensors] = {"k_mean",        "k_proj",        "q_proj",        "logit_mult",
                                                "v_scale",       "v_bias",        "attn_q.lora_a", "attn_q.lora_b",
                                                "attn_k.lora_a", "attn_k.lora_b"};

AdapterTensor& layer_tensor(AdapterLayer& l, int i) {
  AdapterTensor* t[] = {&l.k_mean, &l.k_proj,   &l.q_proj,   &l.logit_mult, &l.v_scale,
                        &l.v_bias, &l.q_lora_a, &l.q_lora_b, &l.k_lora_a,   &l.k_lora_b};
  return *t[i];
}
const AdapterTensor& layer_tensor(const AdapterLayer& l, int i) {
  return layer_tensor(const_cast<AdapterLayer&>(l), i);
}

// "blk.L.NAME" -> (L, index of NAME); "temperature" -> (-1, -1); false for anything else.
bool parse_name(const std::string& s, int& layer, int& which) {
  if (s == "temperature") return layer = which = -1, true;
  if (s.rfind("blk.", 0) != 0) return false;
  const size_t dot = s.find('.', 4);
  if (dot == std::string::npos || dot == 4 || dot - 4 > 4) return false;
  int L = 0;
  for (size_t i = 4; i < dot; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    L = L * 10 + (s[i] - '0');
  }
  if (L >= kMaxAdapterLayers || (s[4] == '0' && dot - 4 > 1)) return false;
  const std::string rest = s.substr(dot + 1);
  for (int i = 0; i < kLayerTensors; ++i)
    if (rest == kLayerNames[i]) return layer = L, which = i, true;
  return false;
}

void put_u64(std::string& s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back((char)(v >> (8 * i) & 0xff));
}

}  // namespace

void save_adapter(const std::string& path, const Adapter& a, bool f16) {
  using ojson = nlohmann::ordered_json;
  ojson h = ojson::object();
  h["__metadata__"] = {{"format", "h1bkv-adapter"}, {"version", "1"}, {"model_id", a.model_id},
                       {"cache", a.cache}, {"stage", a.stage}, {"text", a.text},
                       {"tokens", std::to_string(a.tokens)}};
  std::string data;
  auto add = [&](const std::string& name, const AdapterTensor& t) {
    if (!t.present()) return;
    const bool half = f16 && t.data.size() > kF16MinValues;
    size_t n = 1;
    for (int64_t s : t.shape) n *= (size_t)s;
    check(n == t.data.size(), path + ": tensor " + name + " has " + std::to_string(t.data.size()) +
                                  " values for its shape");
    const size_t begin = data.size();
    for (float x : t.data) {
      if (half) {
        const uint16_t v = f32_to_fp16(x);
        data.append(reinterpret_cast<const char*>(&v), 2);
      } else {
        data.append(reinterpret_cast<const char*>(&x), 4);
      }
    }
    h[name] = {{"dtype", half ? "F16" : "F32"}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
  };
  for (size_t L = 0; L < a.layers.size(); ++L)
    for (int i = 0; i < kLayerTensors; ++i)
      add("blk." + std::to_string(L) + "." + kLayerNames[i], layer_tensor(a.layers[L], i));
  add("temperature", a.temperature);
  std::string head = h.dump();
  while ((head.size() + 8) % 8) head.push_back(' ');  // data 8-byte aligned, as safetensors pads
  std::string out;
  put_u64(out, head.size());
  write_file(path, out + head + data);
}

bool is_adapter_file(const std::string& path) {
  const std::string bytes = read_file(path, kMaxAdapterBytes);
  if (bytes.size() < 10) return false;
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  return n >= 2 && n <= bytes.size() - 8 && bytes[8] == '{';
}

Adapter load_adapter(const std::string& path) {
  const std::string bytes = read_file(path, kMaxAdapterBytes);
  const std::string bad = path + ": bad adapter file: ";
  check(bytes.size() >= 8, bad + "shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  check(n <= kMaxHeaderBytes && n <= bytes.size() - 8,
        bad + "header length " + std::to_string(n) + " exceeds the file (" + std::to_string(bytes.size()) + " bytes)");
  json h;
  try {
    h = json::parse(bytes.substr(8, n));
  } catch (const json::exception& e) {
    throw Error(bad + "header is not valid JSON (" + e.what() + ")");
  }
  check(h.is_object(), bad + "header is not a JSON object");
  const uint64_t data_size = bytes.size() - 8 - n;
  const char* data = bytes.data() + 8 + n;
  Adapter a;
  check(h.contains("__metadata__") && h["__metadata__"].is_object(), bad + "no __metadata__ object");
  std::map<std::string, std::string> meta;
  for (const auto& [k, v] : h["__metadata__"].items()) {
    check(v.is_string(), bad + "__metadata__ value of '" + k + "' is not a string");
    meta[k] = v.get<std::string>();
  }
  check(meta["format"] == "h1bkv-adapter", path + ": not an h1bkv adapter (format '" + meta["format"] + "')");
  check(meta["version"] == "1", path + ": adapter version '" + meta["version"] + "' is not supported (1)");
  check(meta.count("model_id") && !meta["cache"].empty(), bad + "__metadata__ needs model_id and cache");
  a.model_id = meta["model_id"], a.cache = meta["cache"], a.stage = meta["stage"], a.text = meta["text"];
  {
    const std::string& t = meta["tokens"];
    check(t.size() <= 18 && std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }),
          bad + "__metadata__ tokens '" + t + "' is not a count");
    a.tokens = t.empty() ? 0 : std::stoll(t);
  }
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const auto& [name, t] : h.items()) {
    if (name == "__metadata__") continue;
    const std::string where = bad + "tensor '" + name + "': ";
    int L = 0, which = 0;
    check(parse_name(name, L, which), bad + "unknown tensor name '" + name +
                                          "' (valid: blk.L.{k_mean,k_proj,q_proj,logit_mult,v_scale,v_bias,attn_q.lora_a,attn_q.lora_b,attn_k.lora_a,"
                                          "attn_k.lora_b}, temperature)");
    check(t.is_object() && t.contains("dtype") && t["dtype"].is_string() && t.contains("shape") &&
              t["shape"].is_array() && t.contains("data_offsets") && t["data_offsets"].is_array() &&
              t["data_offsets"].size() == 2,
          where + "needs dtype, shape and data_offsets [begin, end]");
    const std::string dt = t["dtype"].get<std::string>();
    check(dt == "F32" || dt == "F16", where + "dtype " + dt + " (valid: F32, F16)");
    const uint64_t es = dt == "F32" ? 4 : 2;
    AdapterTensor x;
    check(!t["shape"].empty() && t["shape"].size() <= 4, where + "shape needs 1 to 4 dimensions");
    uint64_t count = 1;
    for (const auto& s : t["shape"]) {
      check(s.is_number_integer() && s.get<int64_t>() > 0 && s.get<int64_t>() <= kMaxDim,
            where + "shape entry " + s.dump() + " is not in [1, 2^24]");
      count *= (uint64_t)s.get<int64_t>();
      check(count <= data_size / es + 1, where + "shape holds more values than the file");
      x.shape.push_back(s.get<int64_t>());
    }
    for (const auto& o : t["data_offsets"])
      check(o.is_number_unsigned(), where + "data_offsets entry " + o.dump() + " is not a non-negative integer");
    const uint64_t b = t["data_offsets"][0].get<uint64_t>(), e = t["data_offsets"][1].get<uint64_t>();
    check(b <= e && e <= data_size, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(e) +
                                        "] outside the " + std::to_string(data_size) + " data bytes");
    check(e - b == count * es, where + "data_offsets span " + std::to_string(e - b) + " bytes, shape needs " +
                                   std::to_string(count * es));
    spans.emplace_back(b, e);
    x.data.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
      float v;
      if (es == 4) {
        std::memcpy(&v, data + b + 4 * i, 4);
      } else {
        uint16_t u;
        std::memcpy(&u, data + b + 2 * i, 2);
        v = fp16_to_f32(u);
      }
      check(std::isfinite(v), where + "value " + std::to_string(i) + " is not finite");
      x.data[i] = v;
    }
    if (L < 0) {
      a.temperature = std::move(x);
    } else {
      if ((int)a.layers.size() <= L) a.layers.resize(L + 1);
      layer_tensor(a.layers[L], which) = std::move(x);
    }
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    check(spans[i].first >= spans[i - 1].second, bad + "tensor data overlap");
  return a;
}

void check_adapter(const Adapter& a, const std::string& path, const CacheSpec& spec, const CacheGeometry& g) {
  check(spec.type == "h1b", path + ": an adapter applies to h1b caches only (the cache is " + spec.str() + ")");
  check(a.model_id == g.model_id,
        path + ": made for another model (id " + a.model_id + "); this model's id is " + g.model_id);
  check_fitted_key_options(path, a.cache, spec, "fitted");
  check((int)a.layers.size() <= g.n_layer, path + ": has layer " + std::to_string(a.layers.size() - 1) +
                                               "; the model has " + std::to_string(g.n_layer) + " layers");
  const int64_t b = spec.get_int("bits"), d = g.head_dim, nkv = g.n_kv_head, nh = g.n_head;
  auto shape_str = [](const std::vector<int64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
  };
  const int64_t na = spec.get("qhead") == "1" ? nh : nkv;  // decoders: per query head or per KV head
  const std::vector<int64_t> want[6] = {{nkv, d}, {nkv, b, d}, {na, b, d}, {nh}, {nh, d}, {nh, d}};
  for (size_t L = 0; L < a.layers.size(); ++L)
    for (int i = 0; i < kCacheTensors; ++i) {
      const AdapterTensor& t = layer_tensor(a.layers[L], i);
      check(!t.present() || t.shape == want[i], path + ": blk." + std::to_string(L) + "." + kLayerNames[i] +
                                                    " has shape " + shape_str(t.shape) + ", the cache needs " +
                                                    shape_str(want[i]));
      if (i == 3)
        for (float x : t.data) check(x > 0, path + ": blk." + std::to_string(L) + "." + kLayerNames[i] + " has a value <= 0");
    }
  check(!a.temperature.present() || (a.temperature.shape == std::vector<int64_t>{1} && a.temperature.data[0] > 0),
        path + ": temperature must have shape [1] and be > 0");
  const bool qjl = spec.get("est") == "qjl";
  for (size_t L = 0; L < a.layers.size(); ++L)
    check(qjl || !a.layers[L].q_proj.present(), path + ": q_proj (a qjl decoder) needs est=qjl, the cache has est=" +
                                                   spec.get("est"));
  if (spec.get("center") == "1") {
    for (int L = 0; L < g.n_layer; ++L)
      check(L < (int)a.layers.size() && a.layers[L].k_mean.present(),
            path + ": center=1 but no blk." + std::to_string(L) + ".k_mean (h1bkv calibrate --cache ...,center=1)");
  }
}

void apply_adapter(KvCache& cache, const Adapter& a, const std::string& path) {
  const CacheSpec spec = parse_cache_spec(cache.spec());
  check_adapter(a, path, spec, cache.geometry());
  const float T = a.temperature.present() ? a.temperature.data[0] : 0.0f;
  for (int L = 0; L < cache.geometry().n_layer; ++L) {
    H1bLayerParams p;
    if (L < (int)a.layers.size()) {
      const AdapterLayer& l = a.layers[L];
      p.k_mean = l.k_mean.data, p.k_proj = l.k_proj.data, p.q_proj = l.q_proj.data;
      p.logit_mult = l.logit_mult.data, p.v_scale = l.v_scale.data, p.v_bias = l.v_bias.data;
    }
    p.temperature = T;
    set_h1b_layer_params(cache, L, p);
  }
}

}  // namespace h1bkv
