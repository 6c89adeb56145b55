// Little-endian binary writing and bounds-checked reading for the repository's binary structures
// (pack headers, tables and footers, index objects). Readers never read past the end: every Get
// returns false instead, and the caller turns that into Corruption naming the object.
//
// Thread-safety: values; one object per thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace kb::repo {

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void Bytes(std::string_view b) { out_->append(b); }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v) {
    uint64_t x;
    if (!Le(&x, 1)) return false;
    *v = static_cast<uint8_t>(x);
    return true;
  }
  bool U16(uint16_t* v) {
    uint64_t x;
    if (!Le(&x, 2)) return false;
    *v = static_cast<uint16_t>(x);
    return true;
  }
  bool U32(uint32_t* v) {
    uint64_t x;
    if (!Le(&x, 4)) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  bool U64(uint64_t* v) { return Le(v, 8); }
  bool Bytes(size_t n, std::string_view* out) {
    if (remaining() < n) return false;
    *out = in_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

 private:
  bool Le(uint64_t* v, int n) {
    if (remaining() < static_cast<size_t>(n)) return false;
    uint64_t x = 0;
    for (int i = 0; i < n; ++i) {
      x |= static_cast<uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += static_cast<size_t>(n);
    *v = x;
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

}  // namespace kb::repo
