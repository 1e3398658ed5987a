// h1bkv finetune: the paper's lightweight finetuning of the h1b cache by self-distillation
// (train/finetune.h): the model with the h1b cache learns from the same model with an f16 cache
// on calibration text; model weights stay frozen. Starts from a stage 0/1 adapter (--calib or
// SPEC@FILE), writes the tensors as a kv adapter (kv/calib/adapter.h) that run/ppl/compare load,
// and checkpoints a killed run resumes from (--resume).
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "kv/calib/adapter.h"
#include "kv/calib/h1b_calibration.h"
#include "model/model.h"
#include "tokenize/tokenizer.h"
#include "train/finetune.h"
#include "train/safetensors.h"
#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

namespace {

struct FinetuneOptions {
  std::string model, cache = "h1b:bits=256,est=qjl,sink=4,window=64", out, checkpoint, resume, calib_out, calib;
  std::vector<std::string> files;
  std::string train = "T", ste = "scaled";
  int threads = 0;
  int64_t steps = 100, warmup = 10, seq = 256, checkpoint_every = 10, eval = 0;
  int batch = 1, lora = 0;
  double lr = 1e-2, lr_min = -1, clip = 1.0, beta = 0, weight_decay = 0, lr_affine = -1, lr_sketch = -1;

  void add_to(CLI::App& app) {
    app.add_option("-m,--model", model, "GGUF model")->required();
    app.add_option("--cache", cache, "the h1b cache to train for (SPEC@ADAPTER: as --calib)")->capture_default_str();
    app.add_option("--calib", calib, "start from this adapter (h1bkv calibrate's stage 0/1 fit; needed by center, "
                   "itq, ridge)");
    app.add_option("-f,--file", files, "calibration text files (not evaluation text)")->required();
    app.add_option("-o,--output", out, "adapter to write (safetensors)")->required();
    app.add_option("--train", train, "tensors to train, comma-separated: T, mult, affine (v_scale, v_bias), "
                   "sketch (k_mean, k_proj, q_proj)")->capture_default_str();
    app.add_option("--lora", lora, "also train LoRA of this rank on Wq and Wk (model/lora.h; run/ppl/bench apply it)")
        ->check(int_range(1, 16));
    app.add_option("--steps", steps, "optimizer steps")->capture_default_str()->check(int_range(1, 10000000));
    app.add_option("--warmup", warmup, "linear warmup steps")->capture_default_str()->check(int_range(0, 10000000));
    app.add_option("--lr", lr, "peak learning rate (AdamW)")->capture_default_str()->check(float_range(0, 10));
    app.add_option("--lr-min", lr_min, "final learning rate of the cosine (default lr / 10)")->check(float_range(0, 10));
    app.add_option("--lr-affine", lr_affine, "peak learning rate of the value affine (default --lr)")
        ->check(float_range(0, 10));
    app.add_option("--lr-sketch", lr_sketch, "peak learning rate of k_mean, k_proj and q_proj (default --lr; "
                   "q_proj's steps are scaled by sqrt(pi/2)/bits, the scale of its entries)")
        ->check(float_range(0, 10));
    app.add_option("--seq", seq, "tokens per training sequence")->capture_default_str()->check(int_range(2, 8192));
    app.add_option("--batch", batch, "sequences per step")->capture_default_str()->check(int_range(1, 4096));
    app.add_option("--clip", clip, "gradient-norm clipping bound")->capture_default_str()->check(float_range(1e-12, 1e12));
    app.add_option("--beta", beta, "0: sign with a straight-through gradient; > 0: tanh(beta y)")
        ->capture_default_str()->check(float_range(0, 1e6));
    app.add_option("--ste", ste, "sign's backward: scaled (sqrt(2/pi) / rms), identity, none")
        ->capture_default_str()->check(CLI::IsMember({"scaled", "identity", "none"}));
    app.add_option("--weight-decay", weight_decay, "AdamW decoupled weight decay")->capture_default_str()
        ->check(float_range(0, 1));
    app.add_option("--eval", eval, "print the mean KL over the first N training sequences before and after")
        ->capture_default_str()->check(int_range(0, 1000000));
    app.add_option("--checkpoint", checkpoint, "checkpoint file (default: OUTPUT.ckpt)");
    app.add_option("--checkpoint-every", checkpoint_every, "steps between checkpoints")->capture_default_str()
        ->check(int_range(1, 10000000));
    app.add_option("--calib-out", calib_out, "also write T and the multipliers as a calibration file (--calib "
                   "of run/ppl/compare; without the value affine and sketch tensors)");
    app.add_option("--resume", resume, "continue a run from its checkpoint (same model, cache, schedule)");
    app.add_option("-t,--threads", threads, "threads (0 = all cores)")->check(int_range(0, max_threads()));
  }
};

train::DistillOptions parse_train(const std::string& list, double beta) {
  train::DistillOptions o;
  o.train_temperature = false;
  o.beta = (float)beta;
  std::stringstream ss(list);
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    if (item == "T") o.train_temperature = true;
    else if (item == "mult") o.train_logit_mult = true;
    else if (item == "affine") o.train_value_affine = true;
    else if (item == "sketch") o.train_sketch = true;
    else throw Error("--train: unknown item '" + item + "' (valid: T, mult, affine, sketch)");
    any = true;
  }
  check(any, "--train: name at least one of T, mult, affine, sketch");
  return o;
}

// The trained logit scale as the cache's calibration multipliers: the cache computes m x (its
// logit at T_spec), the student mult / T x (the same logit at T_init), T_init = T_spec for
// hamming and 1 for qjl, so m = mult T_init / T.
void write_calibration(const FinetuneOptions& o, const CacheSpec& spec, Model& model, train::Distiller& d,
                       size_t tokens) {
  train::ParamBuffer& p = d.params();
  const float T = p.values()[p.find("temperature")->offset];
  const float T_init = h1b_options(spec).sketch.est == SketchEst::hamming ? h1b_options(spec).sketch.T : 1.0f;
  CalibrationFile f;
  f.model_id = model.cache_geometry(1).model_id;
  f.model = o.model;
  f.cache = calib_spec_string(spec);
  f.objective = "finetune";
  f.granularity = p.find("blk.0.logit_mult")->trainable ? "head" : "global";  // T alone: one factor
  f.text = o.files;
  f.tokens = (int64_t)tokens;
  f.cal = H1bCalibration::identity(model.cache_geometry(1));
  for (int il = 0; il < f.cal.n_layer; ++il) {
    const float* m = p.values().data() + p.find("blk." + std::to_string(il) + ".logit_mult")->offset;
    for (int h = 0; h < f.cal.n_head; ++h) f.cal.at(il, h) = m[h] * T_init / T;
  }
  OutputFile out(o.calib_out);
  out.close_stream();
  save_calibration(out.temp_path(), f);
  out.commit();
}

int finetune_cmd(FinetuneOptions& o) {
  if (const size_t at = o.cache.find('@'); at != std::string::npos) {
    check(o.calib.empty() || o.calib == o.cache.substr(at + 1), "finetune: --calib and --cache SPEC@FILE name two files");
    o.calib = o.cache.substr(at + 1);
    o.cache.resize(at);
  }
  const CacheSpec spec = parse_cache_spec(o.cache);
  check(spec.type == "h1b", "finetune trains an h1b cache (got --cache " + spec.str() + ")");
  train::DistillOptions dopt = parse_train(o.train, o.beta);
  dopt.ste = o.ste == "none" ? train::AttentionConfig::Ste::none
             : o.ste == "identity" ? train::AttentionConfig::Ste::identity : train::AttentionConfig::Ste::scaled;
  if (o.checkpoint.empty()) o.checkpoint = o.out + ".ckpt";
  std::vector<std::string> inputs = o.files;
  inputs.push_back(o.model);
  if (!o.calib.empty()) {
    check_regular_file(o.calib);
    check(is_adapter_file(o.calib), o.calib + ": finetune starts from an adapter (safetensors), not a JSON calibration");
    inputs.push_back(o.calib);
  }
  if (!o.resume.empty()) {
    check_regular_file(o.resume);
    if (o.resume != o.checkpoint) inputs.push_back(o.resume);  // resuming in place is the usual case
  }
  std::vector<std::string> outputs = {o.out, o.checkpoint};
  if (!o.calib_out.empty()) outputs.push_back(o.calib_out);
  check_outputs_distinct(inputs, outputs);
  for (const auto& f : o.files) check_regular_file(f);
  apply_threads(o.threads);
  Loaded l = load_model(o.model);
  Model& model = *l.model;
  const ModelConfig& c = model.config();
  const int bits = (int)spec.get_int("bits");
  // recorded activations and attention state per layer and token, teacher/student/gradient logits
  const double per_token = (double)c.n_layer * (2.0 * c.n_embd + 3.0 * c.n_ff + 4.0 * c.n_head * c.head_dim +
                                                6.0 * c.n_kv_head * c.head_dim + 2.0 * (c.n_head + 2 * c.n_kv_head) * bits);
  check_memory("finetune", 0, 4.0 * o.seq * per_token + 4.0 * c.n_layer * c.n_head * (double)o.seq * o.seq,
               3.0 * 4.0 * o.seq * c.n_vocab);
  std::vector<int32_t> toks;
  for (const auto& f : o.files) {
    const auto t = l.tok->encode(read_file(f), false, false);
    toks.insert(toks.end(), t.begin(), t.end());
  }
  const auto seqs = train::make_sequences(toks, o.seq, l.tok->add_bos() ? l.tok->bos() : -1);

  dopt.lora_rank = o.lora;
  Adapter init;
  if (!o.calib.empty()) {
    init = load_adapter(o.calib);
    dopt.init = &init, dopt.init_path = o.calib;
  }
  train::Distiller dist(model, spec, dopt);
  for (size_t i = 0; i < dist.params().tensors().size(); ++i) {  // per-group learning rates
    const train::ParamTensor& t = dist.params().tensors()[i];
    auto ends = [&](const char* s) {
      return t.name.size() >= std::strlen(s) && t.name.compare(t.name.size() - std::strlen(s), std::string::npos, s) == 0;
    };
    const double r = o.lr > 0 ? 1 / o.lr : 0;
    if (o.lr_affine >= 0 && (ends("v_scale") || ends("v_bias"))) dist.params().set_lr_scale(i, (float)(t.lr_scale * o.lr_affine * r));
    if (o.lr_sketch >= 0 && (ends("k_mean") || ends("k_proj") || ends("q_proj")))
      dist.params().set_lr_scale(i, (float)(t.lr_scale * o.lr_sketch * r));
  }
  train::FinetuneConfig fc;
  fc.steps = o.steps, fc.warmup = std::min(o.warmup, o.steps), fc.batch = o.batch;
  fc.lr = (float)o.lr, fc.lr_min = (float)(o.lr_min >= 0 ? o.lr_min : o.lr / 10);
  fc.clip = (float)o.clip, fc.weight_decay = (float)o.weight_decay;
  fc.checkpoint = o.checkpoint, fc.checkpoint_every = o.checkpoint_every, fc.resume = o.resume;
  std::fprintf(stderr, "finetune %s on %zu sequences of %lld tokens (%zu tokens of %zu file(s)); training %s: %zu values\n",
               spec.str().c_str(), seqs.size(), (long long)o.seq, toks.size(), o.files.size(), o.train.c_str(),
               dist.params().n_trainable());
  const double kl_before = o.eval > 0 ? train::mean_kl(dist, seqs, (size_t)o.eval) : 0;
  const int64_t every = std::max<int64_t>(1, o.steps / 20);
  double ema = -1;
  const auto r = train::finetune(dist, seqs, fc, [&](const train::StepReport& s) {
    ema = ema < 0 ? s.loss : 0.9 * ema + 0.1 * s.loss;
    char label[160];
    std::snprintf(label, sizeof label, "step (loss %.4f, avg %.4f, %.0f tok/s)", s.loss, ema, s.tokens_per_s);
    progress(label, s.step, s.steps, s.seconds);
    if (s.step % every == 0 || s.step == s.steps)
      std::printf("step %lld  loss %.5f  avg %.5f  lr %.3g  grad_norm %.3g  %.0f tok/s  %.0f s\n", (long long)s.step,
                  s.loss, ema, s.lr, s.grad_norm, s.tokens_per_s, s.seconds);
  });
  progress_done();
  {
    std::string text;
    for (const auto& f : o.files) text += (text.empty() ? "" : ";") + f;
    const Adapter a = train::kv_adapter(dist, /*f16=*/true, "2 (finetune --train " + o.train + ")" +
                                        (o.calib.empty() ? "" : " from " + o.calib), text, (int64_t)toks.size());
    OutputFile out(o.out);
    out.close_stream();
    save_adapter(out.temp_path(), a, /*f16=*/true);
    out.commit();
  }
  const float T = dist.params().values()[dist.params().find("temperature")->offset];
  if (!o.calib_out.empty()) write_calibration(o, spec, model, dist, toks.size());
  if (o.eval > 0)
    std::printf("mean KL over the first %lld training sequences: before %.5f, after %.5f\n",
                (long long)std::min<int64_t>(o.eval, (int64_t)seqs.size()), kl_before,
                train::mean_kl(dist, seqs, (size_t)o.eval));
  std::printf("%zu steps from step %lld, %lld tokens in %.1f s; temperature %.4f; wrote %s (checkpoint %s)\n",
              r.losses.size(), (long long)r.first_step, (long long)r.tokens, r.seconds, T, o.out.c_str(),
              o.checkpoint.c_str());
  check_stdout();
  return 0;
}

}  // namespace

Action register_finetune(CLI::App& app) {
  auto* sub = app.add_subcommand("finetune", "train the h1b cache's temperature, value affine (and sketches) "
                                 "by self-distillation from the f16 cache");
  auto o = std::make_shared<FinetuneOptions>();
  o->add_to(*sub);
  return [o] { return finetune_cmd(*o); };
}

}  // namespace h1bkv
