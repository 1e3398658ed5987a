// Model hyper-parameters read from GGUF metadata ("<arch>.*" keys), validated.
#pragma once
#include <string>

namespace h1bkv {

class GgufFile;

struct ModelConfig {
  std::string arch;  // "llama" or "qwen2"
  std::string name;  // general.name
  int n_layer = 0;
  int n_embd = 0;
  int n_head = 0;
  int n_kv_head = 0;
  int head_dim = 0;  // n_embd / n_head unless <arch>.attention.key_length says otherwise
  int n_ff = 0;
  int n_vocab = 0;
  int n_ctx_train = 0;
  int n_rot = 0;  // rotated dims per head
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool rope_neox = false;  // qwen2 rotates halves; llama rotates adjacent pairs
  bool qkv_bias = false;   // qwen2
  bool tied_embeddings = false;  // no output.weight: the output head is token_embd

  static ModelConfig from_gguf(const GgufFile& g);
};

}  // namespace h1bkv
