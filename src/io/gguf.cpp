#include "io/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "io/ggml_type.h"
#include "util/error.h"
#include "util/file.h"

namespace h1bkv {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr uint64_t kMaxNameLen = 1 << 16;
// Smallest possible encodings, used to reject counts the rest of the file cannot hold:
// a metadata pair is key length (8) + type (4) + a 1-byte value; a tensor info is name length (8)
// + n_dims (4) + one dim (8) + type (4) + offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 32;
// Vectors are reserved up to this many entries from a count in the file; beyond it they grow
// as entries are actually read, so a lying count cannot cause a huge allocation.
constexpr uint64_t kMaxReserve = 4096;

// Bounds-checked little-endian cursor over [p, end). Every read checks the remaining length.
// Errors report the offset of the field being read (or just read), not the cursor position.
class Cursor {
 public:
  Cursor(const uint8_t* base, size_t size, const std::string& path)
      : base_(base), size_(size), path_(path) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(path_ + ": " + what + " (at byte " + std::to_string(field_) + ")");
  }
  void need(uint64_t n, const char* what) const {
    if (n > remaining()) fail(std::string("truncated file reading ") + what);
  }
  template <typename T>
  T read(const char* what) {
    field_ = pos_;
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const char* what, uint64_t max_len = UINT64_MAX) {
    const uint64_t n = read<uint64_t>(what);  // field_ stays at the length field
    if (n > max_len) fail(std::string(what) + " length " + std::to_string(n) + " is too long");
    if (n > remaining())
      fail(std::string(what) + " length " + std::to_string(n) + " exceeds the " +
           std::to_string(remaining()) + " bytes left");
    std::string s(reinterpret_cast<const char*>(base_ + pos_), n);
    pos_ += n;
    return s;
  }
  void skip(uint64_t n, const char* what) {
    field_ = pos_;
    need(n, what);
    pos_ += n;
  }

 private:
  const uint8_t* base_;
  size_t size_;
  size_t pos_ = 0;
  size_t field_ = 0;  // where the current field starts
  const std::string& path_;
};

size_t scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8: case GgufType::I8: case GgufType::BOOL: return 1;
    case GgufType::U16: case GgufType::I16: return 2;
    case GgufType::U32: case GgufType::I32: case GgufType::F32: return 4;
    case GgufType::U64: case GgufType::I64: case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

bool is_int_type(GgufType t) {
  return t != GgufType::F32 && t != GgufType::F64 && t != GgufType::STRING &&
         t != GgufType::ARRAY;
}

// Reads one scalar of type t into (i, u, f).
void read_scalar(Cursor& c, GgufType t, int64_t& i, uint64_t& u, double& f) {
  switch (t) {
    case GgufType::U8: u = c.read<uint8_t>("u8"); i = (int64_t)u; break;
    case GgufType::I8: i = c.read<int8_t>("i8"); u = (uint64_t)i; break;
    case GgufType::U16: u = c.read<uint16_t>("u16"); i = (int64_t)u; break;
    case GgufType::I16: i = c.read<int16_t>("i16"); u = (uint64_t)i; break;
    case GgufType::U32: u = c.read<uint32_t>("u32"); i = (int64_t)u; break;
    case GgufType::I32: i = c.read<int32_t>("i32"); u = (uint64_t)i; break;
    case GgufType::U64: u = c.read<uint64_t>("u64"); i = (int64_t)u; break;
    case GgufType::I64: i = c.read<int64_t>("i64"); u = (uint64_t)i; break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>("bool");
      if (b > 1) c.fail("bool value " + std::to_string(b) + " is not 0 or 1");
      i = b; u = b;
      break;
    }
    case GgufType::F32: f = c.read<float>("f32"); break;
    case GgufType::F64: f = c.read<double>("f64"); break;
    default: c.fail("internal: not a scalar type");
  }
}

GgufValue read_value(Cursor& c, GgufType t) {
  GgufValue v;
  v.type = t;
  if (t == GgufType::STRING) {
    v.s = c.read_string("string value");
  } else if (t == GgufType::ARRAY) {
    const uint32_t et = c.read<uint32_t>("array type");
    if (!valid_type(et)) c.fail("unknown array element type " + std::to_string(et));
    v.arr_type = static_cast<GgufType>(et);
    if (v.arr_type == GgufType::ARRAY) c.fail("nested arrays are not supported");
    const uint64_t n = c.read<uint64_t>("array length");
    v.arr_len = n;
    if (v.arr_type == GgufType::STRING) {
      // each string takes at least its 8-byte length
      if (n > c.remaining() / 8) c.fail("array of " + std::to_string(n) + " strings exceeds the file");
      v.arr_str.reserve(std::min(n, kMaxReserve));
      for (uint64_t k = 0; k < n; ++k) v.arr_str.push_back(c.read_string("array string"));
    } else {
      const size_t es = scalar_size(v.arr_type);
      if (n > c.remaining() / es) c.fail("array of " + std::to_string(n) + " elements exceeds the file");
      const bool fl = v.arr_type == GgufType::F32 || v.arr_type == GgufType::F64;
      if (fl) v.arr_float.reserve(std::min(n, kMaxReserve));
      else v.arr_int.reserve(std::min(n, kMaxReserve));
      for (uint64_t k = 0; k < n; ++k) {
        int64_t i = 0; uint64_t u = 0; double f = 0;
        read_scalar(c, v.arr_type, i, u, f);
        if (fl) v.arr_float.push_back(f); else v.arr_int.push_back(i);
      }
    }
  } else {
    read_scalar(c, t, v.i, v.u, v.f);
  }
  return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  const auto k = static_cast<uint32_t>(t);
  return k < 13 ? names[k] : "?";
}

bool GgufValue::is_int() const { return is_int_type(type); }
bool GgufValue::is_float() const { return type == GgufType::F32 || type == GgufType::F64; }

std::string GgufValue::to_string(size_t max_items) const {
  std::ostringstream os;
  if (type == GgufType::STRING) {
    os << '"' << (s.size() > 60 ? s.substr(0, 60) + "..." : s) << '"';
  } else if (type == GgufType::ARRAY) {
    os << "[" << gguf_type_name(arr_type) << " x " << arr_len << "]";
    const size_t n = std::min<uint64_t>(arr_len, max_items);
    os << " {";
    for (size_t k = 0; k < n; ++k) {
      if (k) os << ", ";
      if (!arr_str.empty()) os << '"' << arr_str[k] << '"';
      else if (!arr_float.empty()) os << arr_float[k];
      else os << arr_int[k];
    }
    if (arr_len > n) os << ", ...";
    os << "}";
  } else if (is_float()) {
    os << f;
  } else if (type == GgufType::BOOL) {
    os << (i ? "true" : "false");
  } else if (type == GgufType::U64) {
    os << u;
  } else {
    os << i;
  }
  return os.str();
}

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  check_regular_file(path);  // before open(): opening a FIFO blocks until a writer comes
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": not a regular file");
  }
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->path_ = path;
  g->size_ = static_cast<size_t>(st.st_size);
  if (g->size_ == 0) {
    ::close(fd);
    throw Error(path + ": empty file, not a GGUF model");
  }
  void* p = mmap(nullptr, g->size_, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error(path + ": mmap failed: " + std::strerror(errno));
  g->base_ = static_cast<const uint8_t*>(p);
  g->mapped_ = true;
  g->parse();
  return g;
}

std::unique_ptr<GgufFile> GgufFile::from_memory(const uint8_t* data, size_t size,
                                                const std::string& name) {
  std::unique_ptr<GgufFile> g(new GgufFile());
  g->path_ = name;
  g->base_ = data;
  g->size_ = size;
  g->parse();
  return g;
}

void GgufFile::release_pages(const uint8_t* p, size_t n) const {
  if (!mapped_ || p < base_ || p + n > base_ + size_) return;
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t b = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + n) & ~(page - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);  // advice only: errors are harmless
}

GgufFile::~GgufFile() {
  if (mapped_) munmap(const_cast<uint8_t*>(base_), size_);
}

void GgufFile::parse() {
  Cursor c(base_, size_, path_);
  if (size_ < 4 || c.read<uint32_t>("magic") != kMagic) c.fail("not a GGUF file (bad magic)");
  version_ = c.read<uint32_t>("version");
  const uint32_t swapped = __builtin_bswap32(version_);
  if (swapped == 2 || swapped == 3)
    c.fail("big-endian GGUF (version " + std::to_string(swapped) + ") is not supported");
  if (version_ != 2 && version_ != 3)
    c.fail("unsupported GGUF version " + std::to_string(version_) + " (need 2 or 3)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  if (n_kv > c.remaining() / kMinKvBytes)
    c.fail("metadata count " + std::to_string(n_kv) + " exceeds the file");
  if (n_tensors > c.remaining() / kMinTensorInfoBytes)
    c.fail("tensor count " + std::to_string(n_tensors) + " exceeds the file");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key", kMaxNameLen);
    const uint32_t t = c.read<uint32_t>("metadata type");
    if (!valid_type(t)) c.fail("metadata '" + key + "' has unknown type " + std::to_string(t));
    GgufValue v = read_value(c, static_cast<GgufType>(t));
    if (kv_index_.count(key)) c.fail("duplicate metadata key '" + key + "'");
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }

  if (const GgufValue* a = find("general.alignment")) {
    if (!a->is_int() || a->type == GgufType::BOOL || a->i <= 0 || (a->i & (a->i - 1)) != 0 || a->i > (1 << 20))
      c.fail("general.alignment must be a power of two, got " + a->to_string());
    alignment_ = static_cast<uint64_t>(a->i);
  }

  // Recheck against what is left after the metadata.
  if (n_tensors > c.remaining() / kMinTensorInfoBytes)
    c.fail("tensor count " + std::to_string(n_tensors) + " exceeds the file");
  tensors_.reserve(std::min(n_tensors, kMaxReserve));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensor t;
    t.name = c.read_string("tensor name", kMaxNameLen);
    t.n_dims = c.read<uint32_t>("tensor dims");
    if (t.n_dims == 0 || t.n_dims > kMaxDims)
      c.fail("tensor '" + t.name + "' has " + std::to_string(t.n_dims) + " dims (need 1..4)");
    uint64_t n = 1;
    for (uint32_t d = 0; d < t.n_dims; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dim");
      if (ne == 0 || ne > (uint64_t{1} << 40))
        c.fail("tensor '" + t.name + "' has invalid dim " + std::to_string(ne));
      if (__builtin_mul_overflow(n, ne, &n) || n > (uint64_t{1} << 42))
        c.fail("tensor '" + t.name + "' element count overflows");
      t.ne[d] = static_cast<int64_t>(ne);
    }
    t.n_elements = n;
    t.type = c.read<uint32_t>("tensor type");
    const GgmlTypeInfo* ti = ggml_type_info(t.type);
    if (!ti) c.fail("tensor '" + t.name + "' has unknown type id " + std::to_string(t.type));
    if (t.ne[0] % ti->block_elems != 0)
      c.fail("tensor '" + t.name + "' row length " + std::to_string(t.ne[0]) +
             " is not a multiple of the " + ti->name + " block size " +
             std::to_string(ti->block_elems));
    t.n_bytes = n / ti->block_elems * ti->block_bytes;
    t.offset = c.read<uint64_t>("tensor offset");
    if (t.offset % alignment_ != 0)
      c.fail("tensor '" + t.name + "' offset " + std::to_string(t.offset) + " is not aligned to " +
             std::to_string(alignment_));
    if (tensor_index_.count(t.name)) c.fail("duplicate tensor name '" + t.name + "'");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t pos = c.pos();
  data_offset_ = (pos + alignment_ - 1) / alignment_ * alignment_;
  if (!tensors_.empty() && data_offset_ > size_)
    throw Error(path_ + ": data section starts at byte " + std::to_string(data_offset_) +
                ", past the end of the file (" + std::to_string(size_) +
                " bytes); the file is truncated or corrupt");
  for (GgufTensor& t : tensors_) {
    uint64_t begin = 0, end = 0;
    if (__builtin_add_overflow(data_offset_, t.offset, &begin) ||
        __builtin_add_overflow(begin, t.n_bytes, &end) || end > size_)
      throw Error(path_ + ": tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                  std::to_string(t.n_bytes) + ") lies past the end of the file (" +
                  std::to_string(size_) + " bytes); the file is truncated or corrupt");
    t.data = base_ + begin;
  }
  // Two tensors sharing bytes (all offsets 0, say) would silently alias each other's weights.
  std::vector<const GgufTensor*> by_offset;
  by_offset.reserve(tensors_.size());
  for (const GgufTensor& t : tensors_) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    const GgufTensor& a = *by_offset[k - 1];
    const GgufTensor& b = *by_offset[k];
    if (a.offset + a.n_bytes > b.offset)
      throw Error(path_ + ": tensors '" + a.name + "' [" + std::to_string(a.offset) + ", +" +
                  std::to_string(a.n_bytes) + ") and '" + b.name + "' [" +
                  std::to_string(b.offset) + ", +" + std::to_string(b.n_bytes) +
                  ") overlap in the file; it is corrupt");
  }
}

std::string GgufFile::header_hash() const {
  uint64_t h = 1469598103934665603ull;
  const uint64_t n = std::min<uint64_t>(data_offset_, size_);
  for (uint64_t i = 0; i < n; ++i) {
    h ^= base_[i];
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)h);
  return buf;
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  check(v != nullptr, path_ + ": missing metadata '" + key + "'");
  check(v->type == GgufType::STRING, path_ + ": metadata '" + key + "' is not a string");
  return v->s;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  check(v != nullptr, path_ + ": missing metadata '" + key + "'");
  check(v->is_int(), path_ + ": metadata '" + key + "' is not an integer");
  return v->i;
}

double GgufFile::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  check(v != nullptr, path_ + ": missing metadata '" + key + "'");
  check(v->is_float() || v->is_int(), path_ + ": metadata '" + key + "' is not a number");
  return v->is_float() ? v->f : static_cast<double>(v->i);
}

const GgufValue& GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue* v = find(key);
  check(v != nullptr, path_ + ": missing metadata '" + key + "'");
  check(v->type == GgufType::ARRAY, path_ + ": metadata '" + key + "' is not an array");
  const bool ok = v->arr_type == elem ||
                  (is_int_type(elem) && is_int_type(v->arr_type)) ||
                  ((elem == GgufType::F32 || elem == GgufType::F64) &&
                   (v->arr_type == GgufType::F32 || v->arr_type == GgufType::F64));
  check(ok, path_ + ": metadata '" + key + "' is an array of " + gguf_type_name(v->arr_type) +
                ", expected " + gguf_type_name(elem));
  return *v;
}

std::string GgufFile::get_string(const std::string& key, const std::string& dflt) const {
  return has(key) ? get_string(key) : dflt;
}
int64_t GgufFile::get_int(const std::string& key, int64_t dflt) const {
  return has(key) ? get_int(key) : dflt;
}
double GgufFile::get_float(const std::string& key, double dflt) const {
  return has(key) ? get_float(key) : dflt;
}
bool GgufFile::get_bool(const std::string& key, bool dflt) const {
  return has(key) ? get_int(key) != 0 : dflt;
}

}  // namespace h1bkv
