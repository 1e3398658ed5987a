// Test data: n standard normal floats from a fixed seed (libstdc++'s normal_distribution).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

inline std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}
