// The trained tensors as a safetensors file (huggingface/safetensors: u64 LE header length, a JSON
// header {name: {dtype, shape, data_offsets [begin, end)}, "__metadata__": {str: str}}, padded
// with spaces to 8 bytes, then the data; F32 only here). Until the adapter code of kv/calib lands
// this writer and reader stand in for it; the tensor names are the adapter's.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "train/params.h"

namespace h1bkv::train {

struct NamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct TensorRef {
  std::string name;
  std::vector<int64_t> shape;
  const float* data;
};
// Writes the tensors through an OutputFile (atomic rename).
void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata);
// Every tensor of p, trainable or not.
std::vector<TensorRef> tensor_refs(const ParamBuffer& p);
// Reads an F32 safetensors file; throws Error naming the file and what is wrong (lengths,
// offsets and shapes are checked against the file before use).
std::vector<NamedTensor> read_safetensors(const std::string& path,
                                          std::map<std::string, std::string>* metadata = nullptr);

}  // namespace h1bkv::train
