#include "train/finetune.h"

#include <chrono>
#include <cmath>

#include "kv/calib/h1b_calibration.h"
#include "train/safetensors.h"
#include "util/fp16.h"
#include "util/error.h"

namespace h1bkv::train {

std::map<std::string, std::string> adapter_metadata(Distiller& d) {
  return {{"model_id", d.model().cache_geometry(1).model_id}, {"cache", d.spec()}, {"format", "h1bkv-adapter-1"}};
}

Adapter kv_adapter(Distiller& d, bool f16, const std::string& stage, const std::string& text, int64_t tokens) {
  ParamBuffer& p = d.params();
  auto tensor = [&](size_t i) {
    const ParamTensor& t = p.tensors()[i];
    float* x = p.value(i);
    if (f16 && t.size > kF16MinValues)
      for (size_t e = 0; e < t.size; ++e) x[e] = fp16_to_f32(f32_to_fp16(x[e]));
    AdapterTensor a;
    a.shape = t.shape;
    a.data.assign(x, x + t.size);
    return a;
  };
  auto index = [&](const std::string& name) {
    const ParamTensor* t = p.find(name);
    check(t != nullptr, "finetune: no tensor '" + name + "'");
    return (size_t)(t - p.tensors().data());
  };
  const CacheSpec spec = parse_cache_spec(d.spec());
  Adapter a;
  a.model_id = d.model().cache_geometry(1).model_id;
  a.cache = calib_spec_string(spec);
  a.stage = stage, a.text = text, a.tokens = tokens;
  a.temperature = tensor(index("temperature"));
  const bool qjl = spec.get("est") == "qjl";
  for (int il = 0; il < d.model().config().n_layer; ++il) {
    const std::string b = "blk." + std::to_string(il) + ".";
    AdapterLayer l;
    auto want = [&](const char* name) {
      const size_t i = index(b + name);
      return p.tensors()[i].trainable || d.from_adapter(i);
    };
    if (want("logit_mult")) l.logit_mult = tensor(index(b + "logit_mult"));
    if (want("v_scale") || want("v_bias"))
      l.v_scale = tensor(index(b + "v_scale")), l.v_bias = tensor(index(b + "v_bias"));
    if (want("k_mean")) l.k_mean = tensor(index(b + "k_mean"));  // center=1 wants one on every layer
    if (!d.exact_key_layer(il)) {
      if (want("k_proj")) l.k_proj = tensor(index(b + "k_proj"));
      if (qjl && want("q_proj")) l.q_proj = tensor(index(b + "q_proj"));
    }
    if (d.lora_rank() > 0 && (want("attn_q.lora_a") || want("attn_q.lora_b"))) {  // model/lora.h
      l.q_lora_a = tensor(index(b + "attn_q.lora_a")), l.q_lora_b = tensor(index(b + "attn_q.lora_b"));
      l.k_lora_a = tensor(index(b + "attn_k.lora_a")), l.k_lora_b = tensor(index(b + "attn_k.lora_b"));
    }
    a.layers.push_back(std::move(l));
  }
  return a;
}

namespace {

std::map<std::string, std::string> checkpoint_metadata(Distiller& d, const AdamW& opt, const FinetuneConfig& c,
                                                       int64_t step, size_t seq_len) {
  auto m = adapter_metadata(d);
  m["format"] = "h1bkv-checkpoint-1";
  m["schedule"] = "steps=" + std::to_string(c.steps) + ",warmup=" + std::to_string(c.warmup) +
                  ",batch=" + std::to_string(c.batch) + ",seq=" + std::to_string(seq_len);
  m["step"] = std::to_string(step);
  m["adam_t"] = std::to_string(opt.t());
  return m;
}

int64_t parse_count(const std::string& path, const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  check(it != m.end(), path + ": checkpoint metadata lacks '" + key + "'");
  size_t used = 0;
  long long v = -1;
  try {
    v = std::stoll(it->second, &used);
  } catch (const std::exception&) {
  }
  check(used == it->second.size() && v >= 0, path + ": checkpoint metadata '" + key + "' is not a count");
  return v;
}

}  // namespace

void save_checkpoint(const std::string& path, Distiller& d, const AdamW& opt, const FinetuneConfig& c,
                     int64_t step, size_t seq_len) {
  auto refs = tensor_refs(d.params());
  const int64_t n = (int64_t)d.params().values().size();
  check(opt.m().size() == (size_t)n && opt.v().size() == (size_t)n, "checkpoint: the optimizer has not stepped");
  refs.push_back({"adam.m", {n}, opt.m().data()});
  refs.push_back({"adam.v", {n}, opt.v().data()});
  write_safetensors(path, refs, checkpoint_metadata(d, opt, c, step, seq_len));
}

int64_t load_checkpoint(const std::string& path, Distiller& d, AdamW& opt, const FinetuneConfig& c, size_t seq_len) {
  std::map<std::string, std::string> meta;
  const auto tensors = read_safetensors(path, &meta);
  const auto want = checkpoint_metadata(d, opt, c, 0, seq_len);
  for (const char* key : {"format", "model_id", "cache", "schedule"}) {
    auto it = meta.find(key);
    check(it != meta.end() && it->second == want.at(key),
          path + ": checkpoint " + key + " is '" + (it == meta.end() ? std::string("(none)") : it->second) +
              "', this run's is '" + want.at(key) + "'");
  }
  ParamBuffer& p = d.params();
  const size_t n = p.values().size();
  std::vector<bool> seen(p.tensors().size(), false);
  bool m_ok = false, v_ok = false;
  for (const auto& t : tensors) {
    if (t.name == "adam.m" || t.name == "adam.v") {
      check(t.data.size() == n, path + ": '" + t.name + "' has " + std::to_string(t.data.size()) +
                                    " values, the parameters " + std::to_string(n));
      (t.name == "adam.m" ? opt.m() : opt.v()) = t.data;
      (t.name == "adam.m" ? m_ok : v_ok) = true;
      continue;
    }
    const ParamTensor* pt = p.find(t.name);
    check(pt != nullptr, path + ": unknown tensor '" + t.name + "'");
    check(t.shape == pt->shape, path + ": tensor '" + t.name + "' has another shape than this run's");
    std::copy(t.data.begin(), t.data.end(), p.values().begin() + pt->offset);
    seen[pt - p.tensors().data()] = true;
  }
  for (size_t i = 0; i < seen.size(); ++i)
    check(seen[i], path + ": checkpoint lacks tensor '" + p.tensors()[i].name + "'");
  check(m_ok && v_ok, path + ": checkpoint lacks the optimizer state");
  opt.set_t(parse_count(path, meta, "adam_t"));
  const int64_t step = parse_count(path, meta, "step");
  check(step <= c.steps, path + ": checkpoint step " + std::to_string(step) + " is past --steps");
  return step;
}

std::vector<std::vector<int32_t>> make_sequences(const std::vector<int32_t>& tokens, int64_t seq, int32_t bos) {
  check(seq >= 2, "finetune: --seq must be >= 2");
  const int64_t body = bos >= 0 ? seq - 1 : seq;
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i + body <= (int64_t)tokens.size(); i += body) {
    std::vector<int32_t> s;
    if (bos >= 0) s.push_back(bos);
    s.insert(s.end(), tokens.begin() + i, tokens.begin() + i + body);
    out.push_back(std::move(s));
  }
  check(!out.empty(), "finetune: the text has " + std::to_string(tokens.size()) + " tokens, fewer than --seq " +
                          std::to_string(seq));
  return out;
}

double mean_kl(Distiller& d, const std::vector<std::vector<int32_t>>& seqs, size_t max_seqs) {
  const size_t m = std::min(max_seqs, seqs.size());
  check(m > 0, "finetune: no sequences to evaluate");
  const int64_t n = (int64_t)seqs[0].size();
  std::vector<float> teacher((size_t)n * d.model().config().n_vocab);
  double s = 0;
  for (size_t i = 0; i < m; ++i) {
    d.teacher_logits(seqs[i].data(), n, teacher.data());
    s += d.step(seqs[i].data(), n, teacher.data(), 0);
  }
  return s / m;
}

FinetuneResult finetune(Distiller& d, const std::vector<std::vector<int32_t>>& seqs, const FinetuneConfig& c,
                        const std::function<void(const StepReport&)>& on_step) {
  check(!seqs.empty(), "finetune: no training sequences");
  check(c.steps > 0 && c.batch > 0, "finetune: --steps and --batch must be > 0");
  const size_t seq_len = seqs[0].size();
  for (const auto& s : seqs) check(s.size() == seq_len, "finetune: sequences of unequal length");
  AdamW opt({0.9f, 0.999f, 1e-8f, c.weight_decay});
  FinetuneResult r;
  if (!c.resume.empty()) r.first_step = load_checkpoint(c.resume, d, opt, c, seq_len);
  const int64_t V = d.model().config().n_vocab, n = (int64_t)seq_len;
  std::vector<float> teacher((size_t)n * V);
  const auto t0 = std::chrono::steady_clock::now();
  ParamBuffer& p = d.params();
  for (int64_t s = r.first_step; s < c.steps; ++s) {
    if (c.stop_after >= 0 && s >= c.stop_after) break;
    p.zero_grad();
    double loss = 0;
    for (int j = 0; j < c.batch; ++j) {
      const auto& toks = seqs[(size_t)((s * c.batch + j) % (int64_t)seqs.size())];
      d.teacher_logits(toks.data(), n, teacher.data());
      loss += d.step(toks.data(), n, teacher.data(), 1.0f / c.batch) / c.batch;
      r.tokens += n;
    }
    check(std::isfinite(loss), "finetune: the loss is not finite at step " + std::to_string(s + 1) + " (lower --lr)");
    const double gn = clip_grad_norm(p, c.clip);
    const float lr = cosine_lr(s, c.steps, c.warmup, c.lr, c.lr_min);
    opt.step(p, lr);
    // the temperature stays positive (a logit divisor)
    const ParamTensor* T = p.find("temperature");
    if (T) p.values()[T->offset] = std::max(p.values()[T->offset], 1e-3f);
    r.losses.push_back(loss);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!c.checkpoint.empty() && ((s + 1) % c.checkpoint_every == 0 || s + 1 == c.steps))
      save_checkpoint(c.checkpoint, d, opt, c, s + 1, seq_len);
    if (on_step) on_step({s + 1, c.steps, loss, lr, gn, r.tokens / std::max(r.seconds, 1e-9), r.seconds});
  }
  return r;
}

}  // namespace h1bkv::train
