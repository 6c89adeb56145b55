// The built-in feature-hashing embedder; see hashing_embedder.h for the design and its reasons.
#include "embed/hashing_embedder.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "common/crypto_util.h"

namespace kb {
namespace {

// Block tags are hashed first so that the word "ab" and the 3-gram "ab" are different features.
constexpr uint8_t kWordTag = 'w';
constexpr uint8_t kBigramTag = 'b';
constexpr uint8_t kChar3Tag = 'c';
// Boundary markers for 3-grams: bytes that never occur inside a word.
constexpr char kWordBegin = '^';
constexpr char kWordEnd = '$';

// FNV-1a, 64-bit: fixed constants, so the same bytes hash the same everywhere.
class Fnv1a {
 public:
  explicit Fnv1a(uint8_t tag) { Add(tag); }
  void Add(uint8_t byte) {
    h_ ^= byte;
    h_ *= 0x100000001b3ULL;
  }
  void Add(std::string_view bytes) {
    for (char c : bytes) Add(static_cast<uint8_t>(c));
  }
  // FNV's low bits mix poorly for short keys; the murmur3 finaliser spreads every input bit over
  // the bucket (low bits) and the sign (top bit).
  uint64_t Finish() const {
    uint64_t h = h_;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
  }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Splits `text` into lower-cased words (see the header for the rule).
void Tokenize(std::string_view text, std::vector<std::string>* words) {
  words->clear();
  std::string current;
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (IsWordByte(c)) {
      current.push_back((c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : ch);
    } else if (!current.empty()) {
      words->push_back(std::move(current));
      current.clear();
    }
  }
  if (!current.empty()) words->push_back(std::move(current));
}

// Appends the hashes of the boundary-marked character 3-grams of `word` (by code point: a
// UTF-8 continuation byte never starts a character).
void AddChar3Grams(const std::string& word, std::vector<uint64_t>* out) {
  std::vector<std::string_view> chars;
  chars.reserve(word.size() + 2);
  static const char kBegin[1] = {kWordBegin};
  static const char kEnd[1] = {kWordEnd};
  chars.emplace_back(kBegin, 1);
  for (size_t i = 0; i < word.size();) {
    size_t j = i + 1;
    while (j < word.size() && (static_cast<unsigned char>(word[j]) & 0xC0) == 0x80) ++j;
    chars.push_back(std::string_view(word).substr(i, j - i));
    i = j;
  }
  chars.emplace_back(kEnd, 1);
  for (size_t i = 0; i + 3 <= chars.size(); ++i) {
    Fnv1a h(kChar3Tag);
    h.Add(chars[i]);
    h.Add(chars[i + 1]);
    h.Add(chars[i + 2]);
    out->push_back(h.Finish());
  }
}

// Adds one block's features to `v`: equal hashes are one feature with tf = run length.
void Accumulate(std::vector<uint64_t>* hashes, float block_weight, bool signed_hashing,
                Vector* v) {
  if (block_weight == 0) return;
  std::sort(hashes->begin(), hashes->end());
  const uint64_t dim = v->size();
  for (size_t i = 0; i < hashes->size();) {
    size_t j = i + 1;
    while (j < hashes->size() && (*hashes)[j] == (*hashes)[i]) ++j;
    uint64_t h = (*hashes)[i];
    float weight = block_weight * (1.0f + std::log(static_cast<float>(j - i)));
    float sign = (signed_hashing && (h >> 63)) ? -1.0f : 1.0f;
    (*v)[(h & 0xffffffffULL) % dim] += sign * weight;
    i = j;
  }
}

}  // namespace

HashingEmbedderParams HashingEmbedder::DefaultParams(int dimension) {
  HashingEmbedderParams params;
  params.dimension = dimension;
  return params;
}

HashingEmbedder::HashingEmbedder(const HashingEmbedderParams& params) : params_(params) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "builtin-hash|v%d|dim=%d|word=%.4f|bigram=%.4f|char3=%.4f|signed=%d",
                kAlgorithmVersion, params_.dimension, params_.word_weight, params_.bigram_weight,
                params_.char3_weight, params_.signed_hashing ? 1 : 0);
  fingerprint_ = Sha256Hex(buf).substr(0, 32);
}

Vector HashingEmbedder::EmbedOne(std::string_view text) const {
  Vector v(static_cast<size_t>(params_.dimension), 0.0f);
  std::vector<std::string> words;
  Tokenize(text, &words);
  std::vector<uint64_t> hashes;
  hashes.reserve(words.size() * 8);

  for (const std::string& w : words) {
    Fnv1a h(kWordTag);
    h.Add(w);
    hashes.push_back(h.Finish());
  }
  Accumulate(&hashes, params_.word_weight, params_.signed_hashing, &v);

  hashes.clear();
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    Fnv1a h(kBigramTag);
    h.Add(words[i]);
    h.Add(static_cast<uint8_t>(' '));
    h.Add(words[i + 1]);
    hashes.push_back(h.Finish());
  }
  Accumulate(&hashes, params_.bigram_weight, params_.signed_hashing, &v);

  hashes.clear();
  for (const std::string& w : words) AddChar3Grams(w, &hashes);
  Accumulate(&hashes, params_.char3_weight, params_.signed_hashing, &v);

  if (!NormalizeL2(&v)) {
    std::fill(v.begin(), v.end(), 0.0f);
    v[0] = 1.0f;
  }
  return v;
}

Result<std::vector<Vector>> HashingEmbedder::Embed(const std::vector<std::string>& texts) {
  std::vector<Vector> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) out.push_back(EmbedOne(t));
  return out;
}

}  // namespace kb
