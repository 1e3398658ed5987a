// f16 copies of the K and V rows of recent tokens (the exact window of the tiered cache, KIVI's
// residual): [cap][n_kv_head][head_dim] each, token t at slot t % cap. Grows without losing the
// tokens still held, shrinks to what the caller still holds; a rewind only moves the caller's
// bounds.
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "util/fp16.h"

namespace h1bkv {

class F16Ring {
 public:
  explicit F16Ring(size_t row) : row_(row) {}  // row: n_kv_head * head_dim
  int64_t cap() const { return cap_; }
  // Grows to cap slots (no-op when it has that many), keeping tokens [lo, hi).
  void grow(int64_t cap, int64_t lo, int64_t hi) {
    if (cap > cap_) resize(cap, lo, hi);
  }
  // Shrinks to cap slots (no-op when it has that many or fewer), keeping tokens [lo, hi).
  void shrink(int64_t cap, int64_t lo, int64_t hi) {
    if (cap < cap_) resize(cap, lo, hi);
  }

  // Stores token t's rows k, v ([n_kv_head][head_dim] f32) as f16.
  void put(int64_t t, const float* k, const float* v) {
    uint16_t *kd = &k_[(t % cap_) * row_], *vd = &v_[(t % cap_) * row_];
    for (size_t c = 0; c < row_; ++c) {
      kd[c] = f32_to_fp16(k[c]);
      vd[c] = f32_to_fp16(v[c]);
    }
  }
  const uint16_t* k(int64_t t) const { return k_slot(t % cap_); }
  const uint16_t* v(int64_t t) const { return v_slot(t % cap_); }
  const uint16_t* k_slot(int64_t slot) const { return &k_[slot * row_]; }
  const uint16_t* v_slot(int64_t slot) const { return &v_[slot * row_]; }
  size_t capacity_bytes() const { return (size_t)cap_ * row_ * 4; }  // f16 K + V

 private:
  void resize(int64_t cap, int64_t lo, int64_t hi) {  // hi - lo <= cap
    std::vector<uint16_t> nk(cap * row_), nv(cap * row_);
    for (int64_t t = lo; t < hi; ++t) {
      std::memcpy(&nk[(t % cap) * row_], k(t), row_ * 2);
      std::memcpy(&nv[(t % cap) * row_], v(t), row_ * 2);
    }
    k_.swap(nk);
    v_.swap(nv);
    cap_ = cap;
  }

  size_t row_;
  int64_t cap_ = 0;
  std::vector<uint16_t> k_, v_;  // [cap_][row_]
};

}  // namespace h1bkv
