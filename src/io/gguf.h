// GGUF v2/v3 reader over a read-only mmap. Everything is validated at open(): magic, version,
// counts, string/array lengths, tensor dims and types, offsets and alignment against the file
// size. Any problem throws h1bkv::Error("<path>: <problem>"). Spec: ggml/docs/gguf.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace h1bkv {

// GGUF metadata value types (gguf_type in the spec).
enum class GgufType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars are widened: integers and bools to i (and u), floats to f.
// Arrays keep their element type in arr_type and their elements in the matching vector.
struct GgufValue {
  GgufType type = GgufType::U8;
  GgufType arr_type = GgufType::U8;  // valid when type == ARRAY
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  std::string s;
  std::vector<std::string> arr_str;  // ARRAY of STRING
  std::vector<int64_t> arr_int;      // ARRAY of integer/bool types
  std::vector<double> arr_float;     // ARRAY of F32/F64
  uint64_t arr_len = 0;

  bool is_int() const;    // any integer or bool scalar
  bool is_float() const;  // F32/F64 scalar
  std::string to_string(size_t max_items = 8) const;  // for `info`
};

struct GgufTensor {
  std::string name;
  uint32_t type = 0;         // GgmlType id
  uint32_t n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;       // relative to the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // into the mapping
};

class GgufFile {
 public:
  // Maps and validates the file; throws Error naming the file and the problem.
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Parses an in-memory image (used by the fuzzer and tests); `name` prefixes errors.
  static std::unique_ptr<GgufFile> from_memory(const uint8_t* data, size_t size,
                                               const std::string& name);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t file_size() const { return size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  // FNV-1a 64 of the header (metadata and tensor infos, bytes [0, data_offset)) as 16 hex digits:
  // identifies a model file without reading its weights.
  std::string header_hash() const;

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed getters: throw Error naming the key when missing or of the wrong type.
  std::string get_string(const std::string& key) const;
  int64_t get_int(const std::string& key) const;
  double get_float(const std::string& key) const;  // accepts integer values too
  const GgufValue& get_array(const std::string& key, GgufType elem) const;
  // With defaults when absent (still an error when present with the wrong type).
  std::string get_string(const std::string& key, const std::string& dflt) const;
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key, double dflt) const;
  bool get_bool(const std::string& key, bool dflt) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  // Tells the kernel that bytes [p, p + n) of the mapped file are not needed for now (the whole
  // pages inside), so they leave the process's resident memory; a later read faults them back in
  // from the file. Does nothing for an in-memory image.
  void release_pages(const uint8_t* p, size_t n) const;
  const GgufTensor* find_tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  void parse();
  std::string path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace h1bkv
