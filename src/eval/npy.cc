// .npy files (format versions 1, 2 and 3; little endian, C order) and workloads loaded from them.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string_view>
#include <vector>

#include "core/check.h"
#include "hisa/numeric.h"
#include "hisa/workload.h"

namespace hisa {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr size_t kHeaderAlignment = 64;

/// Element size of a numpy dtype without byte order ("f4" -> 4); 0 when not supported.
int ItemSize(std::string_view dtype) {
  constexpr std::pair<std::string_view, int> kSizes[] = {
      {"b1", 1}, {"i1", 1}, {"u1", 1}, {"i2", 2}, {"u2", 2}, {"f2", 2},
      {"i4", 4}, {"u4", 4}, {"f4", 4}, {"i8", 8}, {"u8", 8}, {"f8", 8}};
  for (const auto& [name, size] : kSizes) {
    if (name == dtype) return size;
  }
  return 0;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

template <typename... Args>
Status FileError(const std::string& path, fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kInvalidArgument,
          fmt::format("{}: {}", path, fmt::format(f, std::forward<Args>(args)...))};
}

/// Number of elements of a shape, or -1 on overflow past int64.
int64_t ElementCount(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / 8 / dim) return -1;
    count *= dim;
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Header: a Python dict literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3,), }
// ---------------------------------------------------------------------------------------------

class HeaderParser {
 public:
  explicit HeaderParser(std::string_view text) : text_(text) {}

  /// Parses the dict into descr, fortran_order and shape; "" on success, else what is wrong.
  std::string Parse(std::string* descr, bool* fortran_order, std::vector<int64_t>* shape) {
    bool have_descr = false, have_order = false, have_shape = false;
    if (!Consume('{')) return "the header is not a dict";
    while (true) {
      if (Consume('}')) break;
      std::string key;
      if (!ParseString(&key)) return "a header key is not a quoted string";
      if (!Consume(':')) return fmt::format("no ':' after header key '{}'", key);
      if (key == "descr") {
        if (Peek() == '[') return "structured dtypes (a list descr) are not supported";
        if (!ParseString(descr)) return "'descr' is not a quoted string";
        have_descr = true;
      } else if (key == "fortran_order") {
        if (ConsumeWord("True")) {
          *fortran_order = true;
        } else if (ConsumeWord("False")) {
          *fortran_order = false;
        } else {
          return "'fortran_order' is neither True nor False";
        }
        have_order = true;
      } else if (key == "shape") {
        if (!ParseShape(shape)) return "'shape' is not a tuple of non-negative integers";
        have_shape = true;
      } else {
        return fmt::format("unexpected header key '{}'", key);
      }
      if (Consume(',')) continue;
      if (Consume('}')) break;
      return "the header dict is malformed";
    }
    if (!have_descr) return "the header has no 'descr'";
    if (!have_order) return "the header has no 'fortran_order'";
    if (!have_shape) return "the header has no 'shape'";
    return "";
  }

 private:
  void SkipSpace() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  char Peek() {
    SkipSpace();
    return pos_ < text_.size() ? text_[pos_] : '\0';
  }
  bool Consume(char c) {
    if (Peek() != c) return false;
    ++pos_;
    return true;
  }
  bool ConsumeWord(std::string_view word) {
    SkipSpace();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool ParseString(std::string* out) {
    const char quote = Peek();
    if (quote != '\'' && quote != '"') return false;
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) return false;
    *out = std::string(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return true;
  }
  bool ParseShape(std::vector<int64_t>* shape) {
    shape->clear();
    if (!Consume('(')) return false;
    while (true) {
      if (Consume(')')) return true;
      SkipSpace();
      int64_t value = 0;
      size_t digits = 0;
      while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
        if (value > (std::numeric_limits<int64_t>::max() - 9) / 10) return false;
        value = value * 10 + (text_[pos_++] - '0');
        ++digits;
      }
      if (Peek() == 'L') ++pos_;  // Python 2 long suffix
      if (digits == 0) return false;
      shape->push_back(value);
      if (Consume(',')) continue;
      if (Consume(')')) return true;
      return false;
    }
  }

  std::string_view text_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Element conversion
// ---------------------------------------------------------------------------------------------

float HalfToFloat(uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
  float value;
  if (exponent == 0) {
    value = std::ldexp(static_cast<float>(mantissa), -24);
  } else if (exponent == 0x1F) {
    value =
        mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    value = std::ldexp(static_cast<float>(mantissa + 0x400), exponent - 25);
  }
  return sign ? -value : value;
}

/// Float elements of an f4 or f2 array.
std::vector<float> FloatValues(const NpyArray& a) {
  std::vector<float> out(static_cast<size_t>(a.size()));
  if (a.dtype == "f4") {
    std::memcpy(out.data(), a.data.data(), out.size() * sizeof(float));
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t bits;
      std::memcpy(&bits, a.data.data() + 2 * i, 2);
      out[i] = HalfToFloat(bits);
    }
  }
  return out;
}

/// Integer elements of an i4 or i8 array.
std::vector<int64_t> IntValues(const NpyArray& a) {
  std::vector<int64_t> out(static_cast<size_t>(a.size()));
  for (size_t i = 0; i < out.size(); ++i) {
    if (a.dtype == "i4") {
      int32_t v;
      std::memcpy(&v, a.data.data() + 4 * i, 4);
      out[i] = v;
    } else {
      std::memcpy(&out[i], a.data.data() + 8 * i, 8);
    }
  }
  return out;
}

/// Converts rows of `dim` elements to `dtype`. Float input is quantized per row (FP8, the scale
/// is returned per row) or rounded (BF16, scale 1); FP8 codes are copied (FP8) or widened exactly
/// (BF16), keeping their scales.
void ConvertRows(const NpyArray& a, int64_t rows, int64_t dim, DType dtype, ScaleRule rule,
                 std::vector<uint8_t>* codes, std::vector<float>* scales) {
  codes->resize(static_cast<size_t>(rows * dim * DTypeSize(dtype)));
  scales->assign(static_cast<size_t>(rows), 1.0f);
  if (a.dtype == "u1") {
    if (dtype == DType::kFp8E4M3) {
      std::copy(a.data.begin(), a.data.end(), codes->begin());
    } else {
      uint16_t* out = reinterpret_cast<uint16_t*>(codes->data());
      for (int64_t i = 0; i < rows * dim; ++i) out[i] = FloatToBf16(Fp8ToFloat(a.data[i]));
    }
    return;
  }
  const std::vector<float> values = FloatValues(a);
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = values.data() + r * dim;
    if (dtype == DType::kFp8E4M3) {
      (*scales)[r] = QuantizeRowFp8(x, dim, rule, codes->data() + r * dim);
    } else {
      uint16_t* out = reinterpret_cast<uint16_t*>(codes->data()) + r * dim;
      for (int64_t d = 0; d < dim; ++d) out[d] = FloatToBf16(x[d]);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Workload files
// ---------------------------------------------------------------------------------------------

std::string PathIn(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

/// Reads `name` from dir and checks its rank and dtype.
Status ReadChecked(const std::string& dir, const char* name, size_t rank,
                   std::initializer_list<std::string_view> dtypes, NpyArray* out) {
  const std::string path = PathIn(dir, name);
  HISA_RETURN_IF_ERROR(ReadNpy(path, out));
  if (out->shape.size() != rank) {
    return FileError(path, "shape {} has {} dimensions, expected {}", ShapeString(out->shape),
                     out->shape.size(), rank);
  }
  if (std::find(dtypes.begin(), dtypes.end(), out->dtype) == dtypes.end()) {
    return FileError(path, "dtype '{}' is not supported here; expected one of {}", out->dtype,
                     fmt::join(dtypes, ", "));
  }
  return {};
}

/// Query ranges and sequences from ks.npy / ke.npy.
Status LoadRanges(const std::string& dir, int64_t num_queries, int64_t num_keys, Workload* out) {
  NpyArray ks_file, ke_file;
  HISA_RETURN_IF_ERROR(ReadChecked(dir, "ks.npy", 1, {"i4", "i8"}, &ks_file));
  HISA_RETURN_IF_ERROR(ReadChecked(dir, "ke.npy", 1, {"i4", "i8"}, &ke_file));
  for (const auto& [array, name] : {std::pair{&ks_file, "ks.npy"}, std::pair{&ke_file, "ke.npy"}}) {
    if (array->shape[0] != num_queries) {
      return FileError(PathIn(dir, name),
                       "shape {} does not match q.npy's {} queries: expected [{}]",
                       ShapeString(array->shape), num_queries, num_queries);
    }
  }
  const std::vector<int64_t> ks = IntValues(ks_file), ke = IntValues(ke_file);
  out->ks.resize(static_cast<size_t>(num_queries));
  out->ke.resize(static_cast<size_t>(num_queries));
  // Each distinct ks of a non-empty range starts a sequence reaching the furthest ke read from it.
  std::map<int64_t, int64_t> sequence_end;
  for (int64_t t = 0; t < num_queries; ++t) {
    if (ks[t] < 0 || ks[t] > ke[t] || ke[t] > num_keys) {
      return FileError(PathIn(dir, "ks.npy") + ", ke.npy",
                       "query {}: range [ks, ke) = [{}, {}) is not inside [0, N = {}] (N from "
                       "k.npy) or has ks > ke",
                       t, ks[t], ke[t], num_keys);
    }
    out->ks[t] = static_cast<int32_t>(ks[t]);
    out->ke[t] = static_cast<int32_t>(ke[t]);
    if (ks[t] < ke[t]) sequence_end[ks[t]] = std::max(sequence_end[ks[t]], ke[t]);
  }
  int64_t previous_end = 0;
  for (const auto& [start, end] : sequence_end) {
    if (start < previous_end) {
      return FileError(PathIn(dir, "ks.npy") + ", ke.npy",
                       "the queries with ks = {} start inside the rows [.., {}) that queries of "
                       "an earlier sequence read: sequences must not overlap",
                       start, previous_end);
    }
    out->seq_starts.push_back(static_cast<int32_t>(start));
    out->seq_lens.push_back(static_cast<int32_t>(end - start));
    previous_end = end;
  }
  return {};
}

}  // namespace

int64_t NpyArray::size() const {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

Status ReadNpy(const std::string& path, NpyArray* out) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return FileError(path, "cannot open the file for reading");
  file.seekg(0, std::ios::end);
  std::vector<char> bytes(static_cast<size_t>(std::max<std::streamoff>(file.tellg(), 0)));
  file.seekg(0, std::ios::beg);
  file.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!file) return FileError(path, "read error");
  if (bytes.size() < kMagicSize + 2 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0) {
    return FileError(path, "not an .npy file (the magic string \\x93NUMPY is missing)");
  }
  const int major = static_cast<uint8_t>(bytes[6]), minor = static_cast<uint8_t>(bytes[7]);
  if (major < 1 || major > 3) {
    return FileError(path, "unsupported .npy version {}.{}", major, minor);
  }
  const size_t length_size = major == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + length_size;
  if (bytes.size() < prefix) return FileError(path, "truncated header");
  size_t header_length = 0;
  for (size_t i = 0; i < length_size; ++i) {
    header_length |= size_t{static_cast<uint8_t>(bytes[kMagicSize + 2 + i])} << (8 * i);
  }
  if (bytes.size() < prefix + header_length) {
    return FileError(path, "truncated header: {} bytes announced, {} present", header_length,
                     bytes.size() - prefix);
  }
  std::string descr;
  bool fortran_order = false;
  std::vector<int64_t> shape;
  const std::string why = HeaderParser(std::string_view(bytes.data() + prefix, header_length))
                              .Parse(&descr, &fortran_order, &shape);
  if (!why.empty()) return FileError(path, "bad header: {}", why);
  if (fortran_order) {
    return FileError(path,
                     "Fortran order arrays are not supported: save it in C order "
                     "(numpy.ascontiguousarray)");
  }
  if (descr.size() < 2) return FileError(path, "bad dtype '{}'", descr);
  const char byte_order = descr[0];
  const std::string dtype = descr.substr(1);
  const int item = ItemSize(dtype);
  if ((byte_order != '<' && byte_order != '|' && byte_order != '=' && byte_order != '>') ||
      item == 0) {
    return FileError(path,
                     "bad dtype '{}': supported are b1, i1, u1, i2, u2, f2, i4, u4, f4, i8, "
                     "u8 and f8",
                     descr);
  }
  if (byte_order == '>' && item > 1) {
    return FileError(path,
                     "big-endian data ('{}') is not supported: save it little endian "
                     "(astype('<{}'))",
                     descr, dtype);
  }
  const int64_t count = ElementCount(shape);
  if (count < 0) return FileError(path, "shape {} is too large", ShapeString(shape));
  const size_t expected = static_cast<size_t>(count) * item;
  const size_t present = bytes.size() - prefix - header_length;
  if (present < expected) {
    return FileError(path, "truncated data: shape {} of {} needs {} bytes, the file holds {}",
                     ShapeString(shape), dtype, expected, present);
  }
  if (present > expected) {
    return FileError(path, "shape mismatch: shape {} of {} needs {} bytes, the file holds {}",
                     ShapeString(shape), dtype, expected, present);
  }
  out->dtype = dtype;
  out->shape = std::move(shape);
  out->data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(prefix + header_length),
                   bytes.end());
  return {};
}

Status WriteNpy(const std::string& path, const NpyArray& array) {
  const int item = ItemSize(array.dtype);
  if (item == 0) return FileError(path, "cannot write dtype '{}'", array.dtype);
  for (int64_t dim : array.shape) {
    if (dim < 0) return FileError(path, "shape {} has a negative size", ShapeString(array.shape));
  }
  const int64_t count = ElementCount(array.shape);
  if (count < 0 || array.data.size() != static_cast<size_t>(count) * item) {
    return FileError(path, "shape mismatch: shape {} of {} needs {} bytes, the data holds {}",
                     ShapeString(array.shape), array.dtype, count * item, array.data.size());
  }
  const std::string shape = array.shape.size() == 1
                                ? fmt::format("({},)", array.shape[0])
                                : fmt::format("({})", fmt::join(array.shape, ", "));
  std::string header = fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': {}, }}",
                                   item == 1 ? '|' : '<', array.dtype, shape);
  // The header, padded with spaces and ended by '\n', makes the data start 64-byte aligned.
  // Version 1 stores its length in 2 bytes; longer headers need version 2.
  const auto padded_length = [&](size_t prefix) {
    return (prefix + header.size() + 1 + kHeaderAlignment - 1) / kHeaderAlignment *
               kHeaderAlignment -
           prefix;
  };
  const int major = padded_length(kMagicSize + 4) > 65535 ? 2 : 1;
  const size_t length_size = major == 1 ? 2 : 4;
  header.resize(padded_length(kMagicSize + 2 + length_size) - 1, ' ');
  header.push_back('\n');

  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return FileError(path, "cannot open the file for writing");
  file.write(kMagic, kMagicSize);
  file.put(static_cast<char>(major));
  file.put(0);
  for (size_t i = 0; i < length_size; ++i) file.put(static_cast<char>(header.size() >> (8 * i)));
  file.write(header.data(), static_cast<std::streamsize>(header.size()));
  file.write(reinterpret_cast<const char*>(array.data.data()),
             static_cast<std::streamsize>(array.data.size()));
  if (!file) return FileError(path, "write error");
  return {};
}

Status LoadWorkloadNpy(const IndexerConfig& cfg, const std::string& dir, Workload* out) {
  NpyArray q, w, k;
  HISA_RETURN_IF_ERROR(ReadChecked(dir, "q.npy", 3, {"f4", "f2", "u1"}, &q));
  HISA_RETURN_IF_ERROR(ReadChecked(dir, "w.npy", 2, {"f4"}, &w));
  HISA_RETURN_IF_ERROR(ReadChecked(dir, "k.npy", 2, {"f4", "f2", "u1"}, &k));
  const int64_t num_queries = q.shape[0], heads = q.shape[1], dim = q.shape[2];
  const int64_t num_keys = k.shape[0];
  if (heads < 1 || dim < 1 || heads > std::numeric_limits<int32_t>::max() ||
      dim > std::numeric_limits<int32_t>::max()) {
    return FileError(PathIn(dir, "q.npy"), "shape {} needs H >= 1 and D >= 1 ([T, H, D])",
                     ShapeString(q.shape));
  }
  if (w.shape != std::vector<int64_t>{num_queries, heads}) {
    return FileError(PathIn(dir, "w.npy"), "shape {} does not match q.npy {}: expected [{}, {}]",
                     ShapeString(w.shape), ShapeString(q.shape), num_queries, heads);
  }
  if (k.shape[1] != dim) {
    return FileError(PathIn(dir, "k.npy"), "shape {} does not match q.npy {}: expected [N, {}]",
                     ShapeString(k.shape), ShapeString(q.shape), dim);
  }
  if (num_keys >= std::numeric_limits<int32_t>::max()) {
    return FileError(PathIn(dir, "k.npy"), "shape {}: N exceeds the int32 position limit",
                     ShapeString(k.shape));
  }

  Workload loaded;
  loaded.cfg = cfg;
  loaded.cfg.num_heads = static_cast<int32_t>(heads);
  loaded.cfg.head_dim = static_cast<int32_t>(dim);
  loaded.num_queries = num_queries;
  loaded.num_keys = num_keys;
  loaded.name = "npy:" + dir;

  const bool has_kscale = std::filesystem::exists(PathIn(dir, "kscale.npy"));
  if (k.dtype == "u1" && !has_kscale) {
    return FileError(PathIn(dir, "kscale.npy"),
                     "missing: k.npy holds FP8 codes (u1) and needs a per-token scale");
  }
  if (k.dtype != "u1" && has_kscale) {
    return FileError(PathIn(dir, "kscale.npy"),
                     "given, but k.npy holds {} values that are quantized here: remove it or "
                     "store k as FP8 codes (u1)",
                     k.dtype);
  }
  ConvertRows(k, num_keys, dim, cfg.k_dtype, cfg.pooled_scale_rule, &loaded.k, &loaded.kscale);
  if (has_kscale) {
    NpyArray kscale;
    HISA_RETURN_IF_ERROR(ReadChecked(dir, "kscale.npy", 1, {"f4"}, &kscale));
    if (kscale.shape[0] != num_keys) {
      return FileError(PathIn(dir, "kscale.npy"), "shape {} does not match k.npy {}: expected [{}]",
                       ShapeString(kscale.shape), ShapeString(k.shape), num_keys);
    }
    loaded.kscale = FloatValues(kscale);
  }

  std::vector<float> q_scales;
  ConvertRows(q, num_queries * heads, dim, cfg.q_dtype, cfg.pooled_scale_rule, &loaded.q,
              &q_scales);
  loaded.w = FloatValues(w);
  // Quantizing q per (token, head) moves its scale into the gate: exact, as the scale is > 0.
  for (size_t i = 0; i < loaded.w.size(); ++i) loaded.w[i] *= q_scales[i];

  const bool has_ks = std::filesystem::exists(PathIn(dir, "ks.npy"));
  const bool has_ke = std::filesystem::exists(PathIn(dir, "ke.npy"));
  if (has_ks != has_ke) {
    return FileError(PathIn(dir, has_ks ? "ke.npy" : "ks.npy"),
                     "missing: ks.npy and ke.npy come together");
  }
  if (has_ks) {
    HISA_RETURN_IF_ERROR(LoadRanges(dir, num_queries, num_keys, &loaded));
  } else {
    if (num_queries > num_keys) {
      return FileError(PathIn(dir, "q.npy"),
                       "{} queries but k.npy has only {} keys: without ks.npy/ke.npy the queries "
                       "are the last T of one sequence, so T <= N",
                       num_queries, num_keys);
    }
    for (int64_t t = 0; t < num_queries; ++t) {
      loaded.ks.push_back(0);
      loaded.ke.push_back(static_cast<int32_t>(num_keys - num_queries + t + 1));
    }
    loaded.seq_starts = {0};
    loaded.seq_lens = {static_cast<int32_t>(num_keys)};
  }
  *out = std::move(loaded);
  return {};
}

}  // namespace hisa
