// GGUF reader: valid v2/v3 images from the in-test builder, every truncation point, one test per
// corrupted field (each with its specific one-line message), and the real stories260K model.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <filesystem>
#include <string>

#include "io/gguf.h"
#include "io/gguf_builder.h"
#include "util/error.h"
#include "util/paths.h"

using namespace h1bkv;
using namespace h1bkv::test;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace {

constexpr const char* kName = "mem.gguf";

std::unique_ptr<GgufFile> parse(const Bytes& b) {
  return GgufFile::from_memory(b.data(), b.size(), kName);
}

// The Error message from parsing b, or "<parsed>" when it parsed. The image is copied into an
// exactly-sized heap block so that AddressSanitizer sees any read past its end.
std::string parse_error(const Bytes& b) {
  const Bytes exact(b.begin(), b.end());
  try {
    GgufFile::from_memory(exact.data(), exact.size(), kName);
  } catch (const Error& e) {
    return e.what();
  }
  return "<parsed>";
}

#define EXPECT_GGUF_ERROR(bytes, substr)                     \
  do {                                                       \
    const std::string msg_ = parse_error(bytes);             \
    EXPECT_THAT(msg_, StartsWith(std::string(kName) + ": ")); \
    EXPECT_THAT(msg_, HasSubstr(substr));                    \
    EXPECT_EQ(msg_.find('\n'), std::string::npos) << msg_;   \
  } while (0)

// A small valid file with one of each kind of value and three tensors.
GgufBuilder small_file(uint32_t version) {
  GgufBuilder b(version);
  b.kv_str("general.architecture", "llama")
      .kv_u8("t.u8", 200)
      .kv_i8("t.i8", -5)
      .kv_u16("t.u16", 65000)
      .kv_i16("t.i16", -30000)
      .kv_u32("t.u32", 4000000000u)
      .kv_i32("t.i32", -2000000000)
      .kv_u64("t.u64", 18000000000000000000ull)
      .kv_i64("t.i64", -9000000000000000000ll)
      .kv_f32("t.f32", 0.5f)
      .kv_f64("t.f64", -1.25)
      .kv_bool("t.bool", true)
      .kv_str("t.empty", "")
      .kv_arr<int32_t>("t.arr_i32", kI32, {1, -2, 3})
      .kv_arr<float>("t.arr_f32", kF32, {0.25f, 1.5f})
      .kv_arr<uint8_t>("t.arr_bool", kBool, {1, 0})
      .kv_arr<uint32_t>("t.arr_empty", kU32, {})
      .kv_arr_str("t.arr_str", {"a", "", "xyz"});
  b.tensor("a.weight", {4, 3}, kTF32)
      .tensor("b.weight", {64, 2}, kTQ4_0)
      .tensor("c.weight", {8}, kTF16);
  return b;
}

// The offset and byte size that must follow a given tensor: aligned(offset + bytes).
uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void check_small_file(const GgufFile& g, const Bytes& img, const GgufBuilder& b, uint32_t version) {
  EXPECT_EQ(g.version(), version);
  EXPECT_EQ(g.file_size(), img.size());
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.data_offset(), b.data_offset());
  EXPECT_EQ(g.data_offset() % 32, 0u);

  // Metadata: order, types, values.
  const auto& md = g.metadata();
  ASSERT_EQ(md.size(), 18u);
  EXPECT_EQ(md[0].first, "general.architecture");
  EXPECT_EQ(md[17].first, "t.arr_str");
  EXPECT_EQ(g.get_string("general.architecture"), "llama");
  auto expect_int = [&](const char* key, GgufType type, int64_t v) {
    const GgufValue* x = g.find(key);
    ASSERT_NE(x, nullptr) << key;
    EXPECT_EQ(x->type, type) << key;
    EXPECT_TRUE(x->is_int()) << key;
    EXPECT_EQ(x->i, v) << key;
    EXPECT_EQ(g.get_int(key), v) << key;
  };
  expect_int("t.u8", GgufType::U8, 200);
  expect_int("t.i8", GgufType::I8, -5);
  expect_int("t.u16", GgufType::U16, 65000);
  expect_int("t.i16", GgufType::I16, -30000);
  expect_int("t.u32", GgufType::U32, 4000000000ll);
  expect_int("t.i32", GgufType::I32, -2000000000);
  expect_int("t.i64", GgufType::I64, -9000000000000000000ll);
  expect_int("t.bool", GgufType::BOOL, 1);
  EXPECT_EQ(g.find("t.u64")->type, GgufType::U64);
  EXPECT_EQ(g.find("t.u64")->u, 18000000000000000000ull);
  EXPECT_EQ(g.find("t.f32")->type, GgufType::F32);
  EXPECT_EQ(g.get_float("t.f32"), 0.5);
  EXPECT_EQ(g.find("t.f64")->type, GgufType::F64);
  EXPECT_EQ(g.get_float("t.f64"), -1.25);
  EXPECT_EQ(g.get_float("t.i8"), -5.0);  // integers are accepted as floats
  EXPECT_TRUE(g.get_bool("t.bool", false));
  EXPECT_EQ(g.get_string("t.empty"), "");
  EXPECT_EQ(g.get_int("absent", 7), 7);

  const GgufValue& ai = g.get_array("t.arr_i32", GgufType::I32);
  EXPECT_EQ(ai.arr_type, GgufType::I32);
  EXPECT_EQ(ai.arr_len, 3u);
  EXPECT_EQ(ai.arr_int, (std::vector<int64_t>{1, -2, 3}));
  const GgufValue& af = g.get_array("t.arr_f32", GgufType::F32);
  EXPECT_EQ(af.arr_float, (std::vector<double>{0.25, 1.5}));
  EXPECT_EQ(g.get_array("t.arr_bool", GgufType::BOOL).arr_int, (std::vector<int64_t>{1, 0}));
  const GgufValue& ae = g.get_array("t.arr_empty", GgufType::U32);
  EXPECT_EQ(ae.arr_len, 0u);
  EXPECT_TRUE(ae.arr_int.empty());
  const GgufValue& as = g.get_array("t.arr_str", GgufType::STRING);
  EXPECT_EQ(as.arr_str, (std::vector<std::string>{"a", "", "xyz"}));
  EXPECT_EQ(as.to_string(), "[string x 3] {\"a\", \"\", \"xyz\"}");

  // Tensors: shapes, types, sizes, offsets, and data pointers into the image.
  ASSERT_EQ(g.tensors().size(), 3u);
  const GgufTensor* a = g.find_tensor("a.weight");
  const GgufTensor* q = g.find_tensor("b.weight");
  const GgufTensor* c = g.find_tensor("c.weight");
  ASSERT_TRUE(a && q && c);
  EXPECT_EQ(g.find_tensor("nope"), nullptr);
  EXPECT_EQ(a->n_dims, 2u);
  EXPECT_EQ(a->ne[0], 4);
  EXPECT_EQ(a->ne[1], 3);
  EXPECT_EQ(a->ne[2], 1);
  EXPECT_EQ(a->ne[3], 1);
  EXPECT_EQ(a->type, kTF32);
  EXPECT_EQ(a->n_elements, 12u);
  EXPECT_EQ(a->n_bytes, 48u);
  EXPECT_EQ(a->offset, 0u);
  EXPECT_EQ(q->type, kTQ4_0);
  EXPECT_EQ(q->n_elements, 128u);
  EXPECT_EQ(q->n_bytes, 4u * 18);
  EXPECT_EQ(q->offset, align_up(48, 32));
  EXPECT_EQ(c->n_dims, 1u);
  EXPECT_EQ(c->n_bytes, 16u);
  EXPECT_EQ(c->offset, align_up(q->offset + 72, 32));
  for (size_t k = 0; k < 3; ++k) {
    const GgufTensor& t = g.tensors()[k];
    EXPECT_EQ(t.offset, b.tensors()[k].placed_offset);
    EXPECT_EQ(t.data, img.data() + g.data_offset() + t.offset) << t.name;
    for (uint64_t j = 0; j < t.n_bytes; ++j)
      ASSERT_EQ(t.data[j], GgufBuilder::pattern(k, j)) << t.name << " byte " << j;
  }
  EXPECT_EQ(img.size(), g.data_offset() + c->offset + c->n_bytes);
}

class GgufVersion : public ::testing::TestWithParam<uint32_t> {};

}  // namespace

TEST_P(GgufVersion, ValidFileParsesExactly) {
  GgufBuilder b = small_file(GetParam());
  const Bytes img = b.build();
  auto g = parse(img);
  check_small_file(*g, img, b, GetParam());
}

TEST_P(GgufVersion, OpenFromDiskMatchesMemory) {
  GgufBuilder b = small_file(GetParam());
  const Bytes img = b.build();
  const std::string path = ::testing::TempDir() + "h1bkv_test_" + std::to_string(getpid()) + ".gguf";
  write_file(path, img);
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->path(), path);
  EXPECT_EQ(g->tensors().size(), 3u);
  EXPECT_EQ(g->get_int("t.i32"), -2000000000);
  const GgufTensor* c = g->find_tensor("c.weight");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->data[c->n_bytes - 1], GgufBuilder::pattern(2, c->n_bytes - 1));
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(V2V3, GgufVersion, ::testing::Values(2u, 3u));

TEST(Gguf, NoTensorsNoPadding) {
  // A metadata-only file may end right after the header (no data section).
  const Bytes img = GgufBuilder().kv_str("general.architecture", "x").build();
  auto g = parse(img);
  EXPECT_TRUE(g->tensors().empty());
  EXPECT_EQ(g->metadata().size(), 1u);
}

TEST(Gguf, AlignmentIsHonoured) {
  for (uint32_t align : {1u, 8u, 64u, 256u}) {
    GgufBuilder b;
    b.alignment(align).tensor("x", {3}, kTF32).tensor("y", {5}, kTF16).tensor("z", {1}, kTF32);
    const Bytes img = b.build();
    auto g = parse(img);
    EXPECT_EQ(g->alignment(), align);
    EXPECT_EQ(g->data_offset() % align, 0u);
    EXPECT_EQ(g->data_offset(), align_up(b.header_size(), align));
    for (const GgufTensor& t : g->tensors()) {
      EXPECT_EQ(t.offset % align, 0u);
      EXPECT_EQ(t.data, img.data() + g->data_offset() + t.offset);
    }
    EXPECT_EQ(g->find_tensor("y")->offset, align_up(12, align));
  }
}

TEST(Gguf, AlignmentOfOtherIntegerTypesAccepted) {
  GgufBuilder b;
  b.kv_u64("general.alignment", 16).tensor("x", {4}, kTF32);
  EXPECT_EQ(parse(b.build())->alignment(), 16u);
}

TEST(Gguf, EveryTruncationIsAnError) {
  for (uint32_t version : {2u, 3u}) {
    GgufBuilder b = small_file(version);
    const Bytes img = b.build();
    for (size_t n = 0; n < img.size(); ++n) {
      const Bytes cut(img.begin(), img.begin() + n);
      const std::string msg = parse_error(cut);
      ASSERT_THAT(msg, StartsWith(std::string(kName) + ": ")) << "cut at " << n;
      if (n < 4) {
        EXPECT_THAT(msg, HasSubstr("bad magic")) << n;
      } else if (n < b.header_size()) {
        // A cut header shows either as a short read or as a count/length the rest can't hold.
        EXPECT_THAT(msg, AnyOf(HasSubstr("truncated file reading"), HasSubstr("exceeds the")))
            << n;
      } else {
        EXPECT_THAT(msg, HasSubstr("past the end of the file")) << n;
      }
    }
  }
}

TEST(Gguf, TruncatedHeaderMessage) {
  Bytes img = small_file(3).build();
  img.resize(20);  // magic, version, tensor count, half the metadata count
  EXPECT_EQ(parse_error(img), "mem.gguf: truncated file reading metadata count (at byte 16)");
}

// ---- one test per corrupted field -------------------------------------------------------------

TEST(GgufBad, Magic) {
  Bytes img = small_file(3).magic(0x4C4D5447).build();  // "GTML"
  EXPECT_EQ(parse_error(img), "mem.gguf: not a GGUF file (bad magic) (at byte 0)");
  EXPECT_GGUF_ERROR(Bytes{}, "bad magic");
  EXPECT_GGUF_ERROR(Bytes({'G', 'G', 'U'}), "bad magic");
}

TEST(GgufBad, Version1) {
  EXPECT_EQ(parse_error(small_file(1).build()),
            "mem.gguf: unsupported GGUF version 1 (need 2 or 3) (at byte 4)");
}

TEST(GgufBad, Version4) {
  EXPECT_GGUF_ERROR(small_file(4).build(), "unsupported GGUF version 4 (need 2 or 3)");
  EXPECT_GGUF_ERROR(small_file(0).build(), "unsupported GGUF version 0");
}

TEST(GgufBad, BigEndianFile) {
  EXPECT_GGUF_ERROR(small_file(0x03000000).build(), "big-endian");
}

TEST(GgufBad, HugeTensorCount) {
  EXPECT_GGUF_ERROR(small_file(3).tensor_count(uint64_t{1} << 62).build(),
                    "tensor count 4611686018427387904 exceeds the file");
  // Plausible against the whole file, impossible after the metadata.
  EXPECT_GGUF_ERROR(small_file(3).tensor_count(40).build(), "tensor count 40 exceeds the file");
}

TEST(GgufBad, HugeKvCount) {
  EXPECT_GGUF_ERROR(small_file(3).kv_count(~uint64_t{0}).build(),
                    "metadata count 18446744073709551615 exceeds the file");
}

TEST(GgufBad, HugeKeyLength) {
  Bytes raw;
  put<uint64_t>(raw, uint64_t{1} << 40);
  put_str(raw, "padding so the file is not simply short");
  EXPECT_GGUF_ERROR(GgufBuilder().kv_bytes(raw).build(), "metadata key length 1099511627776 is too long");
}

TEST(GgufBad, HugeStringValueLength) {
  Bytes p;
  put<uint64_t>(p, ~uint64_t{0} - 3);
  put<uint64_t>(p, 0);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("general.name", kString, p).build(),
                    "string value length 18446744073709551612 exceeds the 8 bytes left");
}

TEST(GgufBad, HugeArrayLength) {
  Bytes p;
  put<uint32_t>(p, kU32);
  put<uint64_t>(p, uint64_t{1} << 61);
  put<uint32_t>(p, 1);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("k", kArray, p).build(),
                    "array of 2305843009213693952 elements exceeds the file");
  Bytes s;
  put<uint32_t>(s, kString);
  put<uint64_t>(s, uint64_t{1} << 61);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("k", kArray, s).build(),
                    "array of 2305843009213693952 strings exceeds the file");
}

TEST(GgufBad, HugeArrayStringLength) {
  Bytes s;
  put<uint32_t>(s, kString);
  put<uint64_t>(s, 2);
  put_str(s, "ok");
  put<uint64_t>(s, uint64_t{1} << 50);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("k", kArray, s).build(),
                    "array string length 1125899906842624 exceeds the 0 bytes left");
}

TEST(GgufBad, UnknownValueType) {
  EXPECT_GGUF_ERROR(GgufBuilder().kv<uint32_t>("weird", 13, 0).build(),
                    "metadata 'weird' has unknown type 13");
  EXPECT_GGUF_ERROR(GgufBuilder().kv<uint32_t>("weird", 0xFFFFFFFF, 0).build(),
                    "unknown type 4294967295");
}

TEST(GgufBad, UnknownArrayElementType) {
  Bytes p;
  put<uint32_t>(p, 99);
  put<uint64_t>(p, 0);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("k", kArray, p).build(), "unknown array element type 99");
}

TEST(GgufBad, NestedArray) {
  Bytes p;
  put<uint32_t>(p, kArray);
  put<uint64_t>(p, 1);
  put<uint32_t>(p, kU8);
  put<uint64_t>(p, 1);
  put<uint8_t>(p, 1);
  EXPECT_GGUF_ERROR(GgufBuilder().kv_raw("k", kArray, p).build(), "nested arrays are not supported");
}

TEST(GgufBad, BoolValue2) {
  EXPECT_GGUF_ERROR(GgufBuilder().kv<uint8_t>("b", kBool, 2).build(), "bool value 2 is not 0 or 1");
  EXPECT_GGUF_ERROR(GgufBuilder().kv_arr<uint8_t>("b", kBool, {0, 1, 2}).build(),
                    "bool value 2 is not 0 or 1");
}

TEST(GgufBad, DuplicateKey) {
  EXPECT_GGUF_ERROR(GgufBuilder().kv_u32("a.b", 1).kv_str("a.b", "x").build(),
                    "duplicate metadata key 'a.b'");
}

TEST(GgufBad, AlignmentNotPowerOfTwo) {
  EXPECT_GGUF_ERROR(GgufBuilder().alignment(48).tensor("x", {4}).build(),
                    "general.alignment must be a power of two, got 48");
  EXPECT_GGUF_ERROR(GgufBuilder().alignment(0).tensor("x", {4}).build(),
                    "general.alignment must be a power of two, got 0");
  EXPECT_GGUF_ERROR(GgufBuilder().kv_str("general.alignment", "32").build(),
                    "general.alignment must be");
  EXPECT_GGUF_ERROR(GgufBuilder().kv_i64("general.alignment", -32).build(),
                    "general.alignment must be");
  EXPECT_GGUF_ERROR(GgufBuilder().kv_bool("general.alignment", true).build(),
                    "general.alignment must be a power of two, got true");
  EXPECT_GGUF_ERROR(GgufBuilder().alignment(1u << 31).build(), "general.alignment must be");
}

TEST(GgufBad, UnknownTensorType) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}, 4).build(), "tensor 'w' has unknown type id 4");
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}, 1000).build(), "unknown type id 1000");
}

TEST(GgufBad, NDims0And5) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {}).build(), "tensor 'w' has 0 dims (need 1..4)");
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {1, 1, 1, 1, 1}).build(),
                    "tensor 'w' has 5 dims (need 1..4)");
}

TEST(GgufBad, ZeroDim) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4, 0}).build(), "tensor 'w' has invalid dim 0");
}

TEST(GgufBad, DimsProductOverflows) {
  const uint64_t big = uint64_t{1} << 32;
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {big, big}).build(), "tensor 'w' element count overflows");
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {1u << 20, 1u << 20, 1u << 20, 1u << 20}).build(),
                    "element count overflows");
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {~uint64_t{0}}).build(), "invalid dim 18446744073709551615");
}

TEST(GgufBad, RowNotMultipleOfBlock) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {48, 2}, kTQ4_0).build(),
                    "tensor 'w' row length 48 is not a multiple of the Q4_0 block size 32");
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {128}, kTQ4_K).build(), "Q4_K block size 256");
}

TEST(GgufBad, MisalignedOffset) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}, kTF32, 4).build(),
                    "tensor 'w' offset 4 is not aligned to 32");
  EXPECT_GGUF_ERROR(GgufBuilder().alignment(64).tensor("w", {4}, kTF32, 32).build(),
                    "offset 32 is not aligned to 64");
}

TEST(GgufBad, OverlappingTensors) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("a", {16}, kTF32, 0).tensor("b", {8}, kTF32, 0).build(),
                    "tensors 'a' [0, +64) and 'b' [0, +32) overlap in the file; it is corrupt");
  // b starts inside a's 64 bytes
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("a", {16}, kTF32, 0).tensor("b", {8}, kTF32, 32).build(),
                    "tensors 'a' [0, +64) and 'b' [32, +32) overlap");
  // adjacent is fine
  const auto img = GgufBuilder().tensor("a", {16}, kTF32, 0).tensor("b", {8}, kTF32, 64).build();
  EXPECT_EQ(GgufFile::from_memory(img.data(), img.size(), "adjacent")->tensors().size(), 2u);
}

TEST(GgufBad, TensorDataPastEof) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}).chop(1).build(),
                    "tensor 'w' data [0, +16) lies past the end of the file");
  // An offset pointing far beyond the file.
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("v", {4}).tensor("w", {4}, kTF32, uint64_t{1} << 30).build(),
                    "tensor 'w' data [1073741824, +16) lies past the end of the file");
}

TEST(GgufBad, OffsetPlusSizeOverflows) {
  const uint64_t off = ~uint64_t{0} - 31;  // a multiple of 32 near 2^64
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}, kTF32, off).build(),
                    "tensor 'w' data [18446744073709551584, +16) lies past the end of the file");
}

TEST(GgufBad, DuplicateTensorName) {
  EXPECT_GGUF_ERROR(GgufBuilder().tensor("w", {4}).tensor("w", {8}).build(),
                    "duplicate tensor name 'w'");
}

TEST(GgufBad, TypedGettersNameTheKey) {
  auto g = parse(small_file(3).build());
  auto msg = [&](auto fn) {
    try {
      fn();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("<no error>");
  };
  EXPECT_EQ(msg([&] { g->get_int("general.architecture"); }),
            "mem.gguf: metadata 'general.architecture' is not an integer");
  EXPECT_EQ(msg([&] { g->get_string("nope"); }), "mem.gguf: missing metadata 'nope'");
  EXPECT_THAT(msg([&] { g->get_array("t.arr_str", GgufType::U32); }),
              HasSubstr("'t.arr_str' is an array of string, expected u32"));
  EXPECT_THAT(msg([&] { g->get_float("t.empty"); }), HasSubstr("'t.empty' is not a number"));
}

TEST(GgufBad, OpenErrors) {
  const std::string dir = ::testing::TempDir();
  EXPECT_THROW(GgufFile::open(dir + "/definitely-not-here.gguf"), Error);
  try {
    GgufFile::open(dir + "/definitely-not-here.gguf");
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("definitely-not-here.gguf: cannot open: No such file"));
  }
  try {
    GgufFile::open(dir);
    ADD_FAILURE() << "opened a directory";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("not a regular file"));
  }
  const std::string empty = dir + "h1bkv_empty_" + std::to_string(getpid()) + ".gguf";
  write_file(empty, {});
  try {
    GgufFile::open(empty);
    ADD_FAILURE() << "opened an empty file";
  } catch (const Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("empty file, not a GGUF model"));
  }
  std::remove(empty.c_str());
}

// ---- the real model ---------------------------------------------------------------------------

TEST(GgufStories, MetadataAndTensors) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  auto g = GgufFile::open(path);
  EXPECT_EQ(g->version(), 3u);
  EXPECT_EQ(g->metadata().size(), 19u);
  EXPECT_EQ(g->get_string("general.architecture"), "llama");
  EXPECT_EQ(g->get_string("general.name"), "llama");
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g->get_int("llama.context_length"), 2048);
  EXPECT_EQ(g->get_int("llama.embedding_length"), 64);
  EXPECT_EQ(g->get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(g->get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(g->get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(g->get_int("llama.block_count"), 5);
  EXPECT_EQ(g->get_int("llama.rope.dimension_count"), 8);
  EXPECT_NEAR(g->get_float("llama.attention.layer_norm_rms_epsilon"), 1e-5, 1e-10);
  EXPECT_EQ(g->find("llama.attention.layer_norm_rms_epsilon")->type, GgufType::F32);
  EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(g->get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(g->get_int("tokenizer.ggml.padding_token_id"), 4294967295ll);
  const GgufValue& tok = g->get_array("tokenizer.ggml.tokens", GgufType::STRING);
  ASSERT_EQ(tok.arr_str.size(), 512u);
  EXPECT_EQ(tok.arr_str[0], "<unk>");
  EXPECT_EQ(tok.arr_str[1], "<s>");
  EXPECT_EQ(tok.arr_str[3], "<0x00>");
  EXPECT_EQ(g->get_array("tokenizer.ggml.scores", GgufType::F32).arr_float.size(), 512u);
  EXPECT_EQ(g->get_array("tokenizer.ggml.token_type", GgufType::I32).arr_int.size(), 512u);

  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->data_offset(), 14176u);
  ASSERT_EQ(g->tensors().size(), 48u);
  const int64_t E = 64, F = 172, V = 512, KV = 32;
  auto shape = [&](const std::string& name, std::vector<int64_t> ne) {
    const GgufTensor* t = g->find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->type, 0u) << name;  // F32
    ASSERT_EQ(t->n_dims, ne.size()) << name;
    for (size_t d = 0; d < ne.size(); ++d) EXPECT_EQ(t->ne[d], ne[d]) << name << " dim " << d;
    EXPECT_EQ(t->n_bytes, 4 * t->n_elements) << name;
  };
  shape("token_embd.weight", {E, V});
  shape("output_norm.weight", {E});
  shape("output.weight", {E, V});
  for (int l = 0; l < 5; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    shape(p + "attn_q.weight", {E, E});
    shape(p + "attn_k.weight", {E, KV});
    shape(p + "attn_v.weight", {E, KV});
    shape(p + "attn_output.weight", {E, E});
    shape(p + "attn_norm.weight", {E});
    shape(p + "ffn_gate.weight", {E, F});
    shape(p + "ffn_down.weight", {F, E});
    shape(p + "ffn_up.weight", {E, F});
    shape(p + "ffn_norm.weight", {E});
  }
  // Offsets as written by llama.cpp's converter; the last tensor ends exactly at EOF.
  EXPECT_EQ(g->find_tensor("output_norm.weight")->offset, 131072u);
  EXPECT_EQ(g->find_tensor("blk.4.ffn_norm.weight")->offset, 1170944u);
  const GgufTensor& last = g->tensors().back();
  EXPECT_EQ(g->data_offset() + last.offset + last.n_bytes, g->file_size());
  for (const GgufTensor& t : g->tensors()) {
    for (uint64_t j = 0; j < t.n_elements; ++j) {
      float x;
      std::memcpy(&x, t.data + 4 * j, 4);
      ASSERT_TRUE(std::isfinite(x)) << t.name << "[" << j << "]";
    }
  }
}

TEST(GgufStories, HeaderPrefixIsAnErrorNotACrash) {
  const std::string path = shared_dir() + "/models/stories260K.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
  std::ifstream f(path, std::ios::binary);
  const Bytes whole((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_EQ(whole.size(), 1185376u);
  EXPECT_NO_THROW(parse(whole));
  // Cut at a spread of points through the header and into the data.
  for (size_t n = 0; n < whole.size(); n += (n < 16384 ? 97 : 65521)) {
    const Bytes cut(whole.begin(), whole.begin() + n);
    EXPECT_THAT(parse_error(cut), StartsWith("mem.gguf: ")) << n;
  }
}
