#include "train/distill.h"

#include <cmath>

#include "kv/registry.h"
#include "model/lora.h"
#include "train/matmul_frozen.h"
#include "train/ops.h"
#include "util/error.h"

namespace h1bkv::train {

Distiller::Distiller(Model& model, const CacheSpec& spec, const DistillOptions& o)
    : model_(model), spec_(spec.str()), h1b_(h1b_options(spec)), o_(o) {
  validate_h1b_spec(spec);
  const ModelConfig& c = model.config();
  const int H = c.n_head, KV = c.n_kv_head, d = c.head_dim, b = h1b_.sketch.bits;
  check(d <= 512, "finetune: head_dim " + std::to_string(d) + " > 512 is not supported");
  const bool hamming = h1b_.sketch.est == SketchEst::hamming;
  check(hamming || h1b_.sketch.est == SketchEst::qjl,
        "finetune: the h1b estimator must be qjl or hamming (got " + std::string(sketch_est_name(h1b_.sketch.est)) + ")");
  check(hamming ? !o.train_sketch : true,
        "finetune: est=hamming scores sign(R q) (no query decoder), so its sketch tensors cannot train (use est=qjl)");
  check(!h1b_.qhead, "finetune: qhead=1 (a decoder A per query head, stage 1(c)) is not modelled by the student; "
                     "finetune the per-KV-head adapter (qhead=0)");
  check(o.init || !h1b_needs_adapter(h1b_),
        "finetune: cache '" + spec.str() + "' (center, itq or ridge) starts from its adapter: pass --calib FILE "
        "('h1bkv calibrate --cache " + spec.str() + " -o FILE' makes one)");
  if (o.init) check_adapter(*o.init, o.init_path, spec, model.cache_geometry(1));
  temperature_ = params_.add("temperature", {1}, hamming ? h1b_.sketch.T : 1.0f, o.train_temperature);
  AttentionConfig ac;
  ac.n_head = H, ac.n_kv_head = KV, ac.head_dim = d, ac.scale = 1 / std::sqrt((float)d);
  ac.bits = b, ac.est = h1b_.sketch.est, ac.sink = h1b_.sink, ac.window = h1b_.window;
  ac.beta = o.beta, ac.ste = o.ste, ac.quantize_values = o.quantize_values, ac.value_group = h1b_.group;
  const float a_scale = hamming ? 1.0f : (float)(std::sqrt(std::acos(-1.0) / 2) / b);  // the cache's A = sqrt(pi/2)/b R
  for (int il = 0; il < c.n_layer; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".";
    first_.push_back(params_.add(p + "logit_mult", {H}, 1.0f, o.train_logit_mult));
    params_.add(p + "v_scale", {H, d}, 1.0f, o.train_value_affine);
    params_.add(p + "v_bias", {H, d}, 0.0f, o.train_value_affine);
    params_.add(p + "k_mean", {KV, d}, 0.0f, o.train_sketch);
    const size_t kp = params_.add(p + "k_proj", {KV, b, d}, 0.0f, o.train_sketch);
    const size_t qp = params_.add(p + "q_proj", {KV, b, d}, 0.0f, o.train_sketch);
    params_.set_lr_scale(qp, a_scale);  // Adam's steps on the scale of A's entries, as on R's
    for (int g = 0; g < KV; ++g) {  // the cache's R (kv/codecs/sketch.h), as [b][d] per KV head
      const std::vector<float> R = sketch_projection(h1b_.sketch, il, g, d);
      std::copy(R.begin(), R.end(), params_.value(kp) + (size_t)g * b * d);
      for (size_t e = 0; e < R.size(); ++e) params_.value(qp)[(size_t)g * b * d + e] = a_scale * R[e];
    }
    AttentionConfig lc = ac;
    if (h1b_exact_key_layer(h1b_, il))
      lc.exact_keys = h1b_.exact_type == "q4" ? AttentionConfig::ExactKeys::q4 : AttentionConfig::ExactKeys::f16;
    att_.emplace_back(lc);
  }
  // LoRA: the requested rank, or the initial adapter's (then frozen unless a rank is requested)
  int init_rank = 0;
  if (o.init) {
    for (const auto& l : o.init->layers) {
      if (l.q_lora_a.present()) init_rank = (int)l.q_lora_a.shape[0];
      else if (l.k_lora_a.present()) init_rank = (int)l.k_lora_a.shape[0];
    }
  }
  check(o.lora_rank >= 0 && o.lora_rank <= 64, "finetune: LoRA rank must be in 0..64");
  check(!init_rank || !o.lora_rank || init_rank == o.lora_rank,
        "finetune: --lora " + std::to_string(o.lora_rank) + " but " + o.init_path + " has LoRA of rank " +
            std::to_string(init_rank));
  if (o.init && init_rank) (void)LoraHook(c, *o.init, o.init_path);  // checks the shapes
  lora_rank_ = o.lora_rank ? o.lora_rank : init_rank;
  for (int il = 0; il < c.n_layer && lora_rank_ > 0; ++il) {
    const std::string p = "blk." + std::to_string(il) + ".attn_";
    const int r = lora_rank_, E = c.n_embd;
    const bool t = o.lora_rank > 0;
    lora_first_.push_back(params_.add(p + "q.lora_a", {r, E}, 0.0f, t));
    params_.add(p + "q.lora_b", {H * d, r}, 0.0f, t);
    params_.add(p + "k.lora_a", {r, E}, 0.0f, t);
    params_.add(p + "k.lora_b", {KV * d, r}, 0.0f, t);
    for (int which = 0; which < 2; ++which) {  // A ~ N(0, 1/E), seeded per layer; B = 0
      float* A = params_.value(lora_first_[il] + 2 * which);
      gaussian_matrix(h1b_.sketch.seed ^ 0x4c6f5241ull, il, which, r, E, A);
      for (int e = 0; e < r * E; ++e) A[e] /= std::sqrt((float)E);
    }
  }
  xb_.resize(c.n_layer), uq_.resize(c.n_layer), uk_.resize(c.n_layer);
  from_adapter_.assign(params_.tensors().size(), false);
  if (o.init) {  // the adapter's tensors replace the defaults (shapes checked by check_adapter)
    auto set = [&](size_t i, const AdapterTensor& t) {
      if (!t.present()) return;
      std::copy(t.data.begin(), t.data.end(), params_.value(i));
      from_adapter_[i] = true;
    };
    set(temperature_, o.init->temperature);
    for (size_t il = 0; il < o.init->layers.size(); ++il) {
      const AdapterLayer& l = o.init->layers[il];
      const size_t f = first_[il];
      set(f, l.logit_mult), set(f + 1, l.v_scale), set(f + 2, l.v_bias);
      set(f + 3, l.k_mean), set(f + 4, l.k_proj), set(f + 5, l.q_proj);
      if (l.k_proj.present() && !l.q_proj.present())  // the cache decodes with the adapter's R then
        for (size_t e = 0; e < l.k_proj.data.size(); ++e) params_.value(f + 5)[e] = a_scale * l.k_proj.data[e];
      if (lora_rank_ > 0) {
        const size_t lf = lora_first_[il];
        set(lf, l.q_lora_a), set(lf + 1, l.q_lora_b), set(lf + 2, l.k_lora_a), set(lf + 3, l.k_lora_b);
      }
    }
  }
  x_in_.resize(c.n_layer), x_mid_.resize(c.n_layer), gate_.resize(c.n_layer), up_.resize(c.n_layer);
}

Distiller::~Distiller() { model_.set_forward_hook(nullptr); }

AttentionTensors<float> Distiller::tensors(int il, bool grad) {
  const size_t f = first_[il];
  auto at = [&](size_t i) { return grad ? params_.grad(i) : params_.value(i); };
  return {at(temperature_), at(f), at(f + 1), at(f + 2), at(f + 3), at(f + 4), at(f + 5)};
}

void Distiller::student_logits(const int32_t* tokens, int64_t n, float* logits) {
  auto cache = make_cache(parse_cache_spec("f32"), model_.cache_geometry(n));  // appended to, not read
  model_.set_forward_hook(this);
  model_.forward(tokens, n, 0, *cache, logits, true);
  model_.set_forward_hook(nullptr);
}

void Distiller::record(int il, Stage s, const float* x, int64_t n, int64_t cols) {
  std::vector<float>* dst = nullptr;
  switch (s) {
    case Stage::layer_input: dst = &x_in_[il]; break;
    case Stage::ffn_input: dst = &x_mid_[il]; break;
    case Stage::ffn_gate: dst = &gate_[il]; break;
    case Stage::ffn_up: dst = &up_[il]; break;
    case Stage::output_input: dst = &x_out_; break;
  }
  dst->assign(x, x + n * cols);
}

bool Distiller::attend(int il, int64_t n, const int32_t* pos, const float* q, const float* k,
                       const float* v, float scale, float* out) {
  att_[il].forward(tensors(il, false), n, pos, q, k, v, out);
  return true;
}

void Distiller::project_qk(int il, int64_t n, const float* xb, float* q, float* k) {
  if (lora_rank_ == 0) return;
  const ModelConfig& c = model_.config();
  const int r = lora_rank_, E = c.n_embd;
  const size_t f = lora_first_[il];
  xb_[il].assign(xb, xb + n * E);
  uq_[il].resize(n * r), uk_[il].resize(n * r);
  lora_add(params_.value(f), params_.value(f + 1), r, E, c.n_head * c.head_dim, xb, n, q, uq_[il].data());
  lora_add(params_.value(f + 2), params_.value(f + 3), r, E, c.n_kv_head * c.head_dim, xb, n, k, uk_[il].data());
}

void Distiller::lora_backward(int il, int64_t n, const float* dq, const float* dk, float* dxb) {
  const ModelConfig& c = model_.config();
  const int r = lora_rank_, E = c.n_embd;
  const size_t f = lora_first_[il];
  for (int which = 0; which < 2; ++which) {
    const int out = which == 0 ? c.n_head * c.head_dim : c.n_kv_head * c.head_dim;
    const float* dy = which == 0 ? dq : dk;
    const std::vector<float>& u = which == 0 ? uq_[il] : uk_[il];
    const float *A = params_.value(f + 2 * which), *B = params_.value(f + 2 * which + 1);
    float *gA = params_.grad(f + 2 * which), *gB = params_.grad(f + 2 * which + 1);
    // t = B^T dy per token [n][r]; gB += dy u^T; gA += t xb^T; dxb += A^T t
    std::vector<float> t(n * r, 0.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int o = 0; o < out; ++o) {
        const float g = dy[i * out + o];
        if (g == 0) continue;
        for (int j = 0; j < r; ++j) t[i * r + j] += B[(size_t)o * r + j] * g, gB[(size_t)o * r + j] += g * u[i * r + j];
      }
#pragma omp parallel for if ((int64_t)r * E * n > (1 << 20))
    for (int j = 0; j < r; ++j)
      for (int64_t i = 0; i < n; ++i) {
        const float tj = t[i * r + j];
        const float* x = &xb_[il][i * E];
        for (int e = 0; e < E; ++e) gA[(size_t)j * E + e] += tj * x[e];
      }
    if (!dxb) continue;
    for (int64_t i = 0; i < n; ++i)
      for (int j = 0; j < r; ++j) {
        const float tj = t[i * r + j];
        const float* a = A + (size_t)j * E;
        for (int e = 0; e < E; ++e) dxb[i * E + e] += tj * a[e];
      }
  }
}

void Distiller::teacher_logits(const int32_t* tokens, int64_t n, float* logits) {
  auto cache = make_cache(parse_cache_spec("f16"), model_.cache_geometry(n));
  model_.set_forward_hook(nullptr);
  model_.forward(tokens, n, 0, *cache, logits, true);
}

double Distiller::step(const int32_t* tokens, int64_t n, const float* teacher, float grad_weight) {
  const int64_t V = model_.config().n_vocab;
  auto cache = make_cache(parse_cache_spec("f32"), model_.cache_geometry(n));  // appended to, not read
  logits_.resize(n * V);
  model_.set_forward_hook(this);
  model_.forward(tokens, n, 0, *cache, logits_.data(), true);
  model_.set_forward_hook(nullptr);
  std::vector<float> dlogits(grad_weight != 0 ? n * V : 0, 0.0f);
  double kl = 0;
#pragma omp parallel reduction(+ : kl) if (n * V > (1 << 20))
  {
    std::vector<float> p(V), pt(V);
#pragma omp for
    for (int64_t i = 0; i < n; ++i)
      kl += kl_row(teacher + i * V, logits_.data() + i * V, grad_weight != 0 ? dlogits.data() + i * V : nullptr,
                   grad_weight / (float)n, V, p.data(), pt.data());
  }
  if (grad_weight != 0) backward(n, dlogits);
  return kl / n;
}

void Distiller::backward(int64_t n, std::vector<float>& dlogits) {
  const ModelConfig& c = model_.config();
  const int64_t d = c.n_embd, hd = c.head_dim, qd = (int64_t)c.n_head * hd, kvd = (int64_t)c.n_kv_head * hd,
                ff = c.n_ff;
  std::vector<float> dx(n * d, 0), dxb(n * d), dact(n * ff), dgate(n * ff), dup(n * ff);
  std::vector<float> datt(n * qd), dq(n * qd), dk(n * kvd), dv(n * kvd);
  // logits = W_out rmsnorm(x_out)
  std::fill(dxb.begin(), dxb.end(), 0.0f);
  matmul_backward_x(model_.output_weight(), dlogits.data(), dxb.data(), n);
  for (int64_t i = 0; i < n; ++i)
    rmsnorm_backward(x_out_.data() + i * d, model_.output_norm().data(), dxb.data() + i * d, dx.data() + i * d, d, c.rms_eps);
  for (int il = c.n_layer - 1; il >= 0; --il) {
    const LayerWeights& L = model_.layer_weights(il);
    // feed-forward: x += W_down swiglu(W_gate xb, W_up xb), xb = rmsnorm(x_mid)
    std::fill(dact.begin(), dact.end(), 0.0f);
    matmul_backward_x(L.w_down, dx.data(), dact.data(), n);
    std::fill(dgate.begin(), dgate.end(), 0.0f);
    std::fill(dup.begin(), dup.end(), 0.0f);
    swiglu_backward(gate_[il].data(), up_[il].data(), dact.data(), dgate.data(), dup.data(), n * ff);
    std::fill(dxb.begin(), dxb.end(), 0.0f);
    matmul_backward_x(L.w_gate, dgate.data(), dxb.data(), n);
    matmul_backward_x(L.w_up, dup.data(), dxb.data(), n);
    for (int64_t i = 0; i < n; ++i)
      rmsnorm_backward(x_mid_[il].data() + i * d, L.ffn_norm.data(), dxb.data() + i * d, dx.data() + i * d, d, c.rms_eps);
    // attention: x += W_o att(rope(W_q xb + bq), rope(W_k xb + bk), W_v xb + bv), xb = rmsnorm(x_in)
    std::fill(datt.begin(), datt.end(), 0.0f);
    matmul_backward_x(L.wo, dx.data(), datt.data(), n);
    std::fill(dq.begin(), dq.end(), 0.0f);
    std::fill(dk.begin(), dk.end(), 0.0f);
    std::fill(dv.begin(), dv.end(), 0.0f);
    att_[il].backward(tensors(il, false), tensors(il, true), datt.data(), dq.data(), dk.data(), dv.data());
    if (il == 0 && lora_rank_ == 0) break;  // nothing trainable below
    for (int64_t i = 0; i < n; ++i) {
      rope_apply(dq.data() + i * qd, c.n_head, (int)hd, c.n_rot, (int32_t)i, c.rope_base, c.rope_neox, true);
      rope_apply(dk.data() + i * kvd, c.n_kv_head, (int)hd, c.n_rot, (int32_t)i, c.rope_base, c.rope_neox, true);
    }
    std::fill(dxb.begin(), dxb.end(), 0.0f);
    if (lora_rank_ > 0) lora_backward(il, n, dq.data(), dk.data(), il > 0 ? dxb.data() : nullptr);
    if (il == 0) break;
    matmul_backward_x(L.wq, dq.data(), dxb.data(), n);
    matmul_backward_x(L.wk, dk.data(), dxb.data(), n);
    matmul_backward_x(L.wv, dv.data(), dxb.data(), n);
    for (int64_t i = 0; i < n; ++i)
      rmsnorm_backward(x_in_[il].data() + i * d, L.attn_norm.data(), dxb.data() + i * d, dx.data() + i * d, d, c.rms_eps);
  }
}

}  // namespace h1bkv::train
