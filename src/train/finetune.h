// The training loop of `h1bkv finetune`: batches of fixed sequences, KL self-distillation
// (train/distill.h), gradient clipping, AdamW on a cosine schedule with warmup, checkpoints a
// killed run resumes from, and the adapter written as safetensors (train/safetensors.h).
// Step s uses sequences (s * batch + j) mod n_seq, j < batch, so a resumed run sees the same data
// as an uninterrupted one and ends with the same parameters.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "train/distill.h"

namespace h1bkv::train {

struct FinetuneConfig {
  int64_t steps = 100, warmup = 10;
  int batch = 1;
  float lr = 1e-2f, lr_min = 1e-3f, clip = 1.0f, weight_decay = 0.0f;
  std::string checkpoint;        // "" = none; written every checkpoint_every steps and at the end
  int64_t checkpoint_every = 10;
  std::string resume;            // a checkpoint of the same model, cache, tensors and schedule
  int64_t stop_after = -1;       // end after this many steps as a killed run would (tests); -1 = no
};

struct StepReport {
  int64_t step, steps;  // steps done so far (1-based), total
  double loss, lr, grad_norm, tokens_per_s, seconds;
};

struct FinetuneResult {
  int64_t first_step = 0;       // 0, or where a resumed run started
  std::vector<double> losses;   // per step run here
  int64_t tokens = 0;           // student tokens run here
  double seconds = 0;
};

// Consecutive windows of seq tokens from tokens (the last partial one dropped); bos >= 0: each
// window is bos then seq - 1 tokens. Throws Error when tokens make no window.
std::vector<std::vector<int32_t>> make_sequences(const std::vector<int32_t>& tokens, int64_t seq, int32_t bos);

FinetuneResult finetune(Distiller& d, const std::vector<std::vector<int32_t>>& seqs, const FinetuneConfig& c,
                        const std::function<void(const StepReport&)>& on_step = {});

// Mean KL over the first min(max_seqs, n) sequences with the current tensors (no gradient).
double mean_kl(Distiller& d, const std::vector<std::vector<int32_t>>& seqs, size_t max_seqs);

// Checkpoint: a safetensors file with the tensors, "adam.m" and "adam.v" (flat, the buffer's
// layout) and metadata (model id, cache spec, schedule, step). load_checkpoint restores d's
// tensors and opt and returns the step to continue from; throws Error on any mismatch.
void save_checkpoint(const std::string& path, Distiller& d, const AdamW& opt, const FinetuneConfig& c,
                     int64_t step, size_t seq_len);
int64_t load_checkpoint(const std::string& path, Distiller& d, AdamW& opt, const FinetuneConfig& c,
                        size_t seq_len);

// Metadata of the adapter file: model id, cache spec.
std::map<std::string, std::string> adapter_metadata(Distiller& d);

// The student's tensors as a kv adapter (kv/calib/adapter.h) that the h1b cache of d's spec loads
// and then attends as the student does: the temperature, and each tensor that trains or came from
// the initial adapter (k_proj and q_proj not on exact-key layers; LoRA, model/lora.h). f16: the tensors save_adapter
// stores as F16 (more than kF16MinValues values) are rounded to f16 in d too, so d stays what the
// file holds. stage/text/tokens: the metadata.
Adapter kv_adapter(Distiller& d, bool f16, const std::string& stage, const std::string& text, int64_t tokens);

}  // namespace h1bkv::train
