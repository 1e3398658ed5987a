#include "train/params.h"

#include <cmath>

#include "util/error.h"

namespace h1bkv::train {

size_t ParamBuffer::add(const std::string& name, std::vector<int64_t> shape, float init, bool trainable) {
  check(find(name) == nullptr, "parameter '" + name + "' added twice");
  size_t n = 1;
  for (int64_t s : shape) n *= (size_t)s;
  tensors_.push_back({name, std::move(shape), value_.size(), n, trainable});
  value_.resize(value_.size() + n, init);
  grad_.resize(value_.size(), 0.0f);
  return tensors_.size() - 1;
}

const ParamTensor* ParamBuffer::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void ParamBuffer::zero_grad() { std::fill(grad_.begin(), grad_.end(), 0.0f); }

double ParamBuffer::grad_norm() const {
  double s = 0;
  for (const auto& t : tensors_)
    if (t.trainable)
      for (size_t i = t.offset; i < t.offset + t.size; ++i) s += (double)grad_[i] * grad_[i];
  return std::sqrt(s);
}

size_t ParamBuffer::n_trainable() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += t.trainable ? t.size : 0;
  return n;
}

void AdamW::step(ParamBuffer& p, float lr) {
  m_.resize(p.values().size(), 0.0f);
  v_.resize(p.values().size(), 0.0f);
  ++t_;
  const double c1 = 1 - std::pow((double)o_.beta1, (double)t_), c2 = 1 - std::pow((double)o_.beta2, (double)t_);
  float* x = p.values().data();
  const float* g = p.grads().data();
  for (const auto& t : p.tensors()) {
    if (!t.trainable) continue;
    const double lt = (double)lr * t.lr_scale;
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      m_[i] = o_.beta1 * m_[i] + (1 - o_.beta1) * g[i];
      v_[i] = o_.beta2 * v_[i] + (1 - o_.beta2) * g[i] * g[i];
      const double mh = m_[i] / c1, vh = v_[i] / c2;
      x[i] -= (float)(lt * (mh / (std::sqrt(vh) + o_.eps) + o_.weight_decay * x[i]));
    }
  }
}

double clip_grad_norm(ParamBuffer& p, double max_norm) {
  const double norm = p.grad_norm();
  if (norm > max_norm && norm > 0) {
    const float s = (float)(max_norm / norm);
    for (const auto& t : p.tensors())
      if (t.trainable)
        for (size_t i = t.offset; i < t.offset + t.size; ++i) p.grads()[i] *= s;
  }
  return norm;
}

float cosine_lr(int64_t s, int64_t total, int64_t warmup, float lr_max, float lr_min) {
  if (s < warmup) return lr_max * (float)(s + 1) / (float)warmup;
  const int64_t span = total - 1 - warmup;
  const double frac = span > 0 ? std::min(1.0, (double)(s - warmup) / span) : 1.0;
  return (float)(lr_min + 0.5 * (lr_max - lr_min) * (1 + std::cos(M_PI * frac)));
}

}  // namespace h1bkv::train
