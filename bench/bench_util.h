// Helpers shared by the benchmark programs: percentiles, and query phrases cut from real text
// (3–6 words of 3+ letters, the way people type searches), drawn with a fixed seed so that runs
// are comparable.
#pragma once

#include <algorithm>
#include <cctype>
#include <random>
#include <string>
#include <vector>

namespace kb::bench {

inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

inline double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

// Up to `count` phrases from `texts` (fewer if the texts are too short).
inline std::vector<std::string> QueryPhrases(const std::vector<std::string>& texts, size_t count,
                                             uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> out;
  for (size_t tries = 0; out.size() < count && tries < count * 10 && !texts.empty(); ++tries) {
    const std::string& t = texts[rng() % texts.size()];
    std::vector<std::string> words;
    std::string w;
    for (char c : t) {
      if (std::isalnum(static_cast<unsigned char>(c))) {
        w.push_back(c);
      } else if (!w.empty()) {
        if (w.size() > 2) words.push_back(w);
        w.clear();
      }
    }
    if (words.size() < 7) continue;
    size_t n = 3 + rng() % 4;  // 3..6 words, always fewer than the text has
    size_t start = rng() % (words.size() - n);
    std::string q;
    for (size_t k = 0; k < n; ++k) q += (k ? " " : "") + words[start + k];
    out.push_back(q);
  }
  return out;
}

}  // namespace kb::bench
