// index_bench: recall and latency of VectorIndex on embeddings of real text, the numbers behind
// the defaults in index/vector_index.h and embed/hashing_embedder.h.
//
// Random vectors say nothing about an ANN index on real data (docs/NOTES: recall ~0.1 on
// uniform 384-d vectors), so this reads real documents from the machine (HTML manuals, READMEs,
// licences under /usr/share/doc and /usr/share/common-licenses, plus any extra directories given
// with --corpus, e.g. unpacked python3.11-doc / postgresql-doc-15 / linux-doc-6.1 packages),
// cuts ~1,000-character chunks, embeds them with the HashingEmbedder, builds the index, and
// compares Search() against SearchExact() for two query sets: held-out chunks, and short
// 8-word queries cut from held-out chunks (what users type). Recall@10 is reported strictly (by
// label) and tie-aware (a hit counts if it scores at least the exact 10th score: duplicated
// boilerplate makes many exact ties). Latency is single-threaded; each query pass runs
// --reps times and the median of each figure is printed.
//
//   index_bench [--n=100000] [--queries=1000] [--m=16] [--efc=100] [--ef=50,100,200,400]
//               [--dim=384] [--weights=1,1,0.5] [--unsigned] [--reps=3]
//               [--corpus=/dir1:/dir2] [--threads=2]
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "common/file_util.h"
#include "embed/hashing_embedder.h"
#include "index/dot_product.h"
#include "index/vector_index.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Flag(int argc, char** argv, const std::string& name, const std::string& def) {
  std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) return argv[i] + prefix.size();
    if (name == argv[i] + 2 && std::strncmp(argv[i], "--", 2) == 0) return "1";
  }
  return def;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void Walk(const std::string& dir, std::vector<std::string>* files, bool all_files) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::string> entries;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") entries.push_back(name);
  }
  closedir(d);
  std::sort(entries.begin(), entries.end());  // deterministic corpus order
  for (const std::string& name : entries) {
    std::string path = dir + "/" + name;
    struct stat st;
    if (lstat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      Walk(path, files, all_files);
    } else if (S_ISREG(st.st_mode) && st.st_size > 200 && st.st_size < (8 << 20)) {
      bool text = EndsWith(name, ".html") || EndsWith(name, ".htm") || EndsWith(name, ".txt") ||
                  EndsWith(name, ".rst") || name.rfind("README", 0) == 0;
      if (all_files || text) files->push_back(path);
    }
  }
}

// Crude HTML to text: drops script/style bodies and tags, decodes the common entities.
std::string HtmlToText(const std::string& html) {
  std::string out;
  out.reserve(html.size() / 2);
  for (size_t i = 0; i < html.size();) {
    if (html[i] == '<') {
      for (const char* skip : {"script", "style"}) {
        if (html.compare(i + 1, std::strlen(skip), skip) == 0) {
          size_t end = html.find(std::string("</") + skip, i);
          i = end == std::string::npos ? html.size() : end;
          break;
        }
      }
      size_t close = html.find('>', i);
      i = close == std::string::npos ? html.size() : close + 1;
      out.push_back(' ');
    } else if (html[i] == '&') {
      static const std::pair<const char*, char> kEntities[] = {
          {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&#39;", '\''},
          {"&nbsp;", ' '}};
      bool done = false;
      for (const auto& [name, ch] : kEntities) {
        if (html.compare(i, std::strlen(name), name) == 0) {
          out.push_back(ch);
          i += std::strlen(name);
          done = true;
          break;
        }
      }
      if (!done) out.push_back(html[i++]);
    } else {
      out.push_back(html[i++]);
    }
  }
  return out;
}

// ~1,000-character chunks cut at whitespace, whitespace runs collapsed; short tails dropped.
void Chunk(const std::string& text, std::vector<std::string>* chunks) {
  std::string cur;
  bool space = false;
  for (char c : text) {
    bool ws = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (ws) {
      space = true;
      continue;
    }
    if (space && !cur.empty()) {
      if (cur.size() >= 1000) {
        chunks->push_back(std::move(cur));
        cur.clear();
      } else {
        cur.push_back(' ');
      }
    }
    space = false;
    cur.push_back(c);
  }
  if (cur.size() >= 300) chunks->push_back(std::move(cur));
}

struct Percentiles {
  double p50, p99;
};

Percentiles Measure(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms[std::min(ms.size() - 1, ms.size() * 99 / 100)]};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct QuerySet {
  std::string name;
  std::vector<kb::Vector> queries;
  std::vector<std::vector<kb::VectorHit>> truth;
};

}  // namespace

int main(int argc, char** argv) {
  const size_t n = std::stoul(Flag(argc, argv, "n", "100000"));
  const size_t nq = std::stoul(Flag(argc, argv, "queries", "1000"));
  const int reps = std::stoi(Flag(argc, argv, "reps", "3"));
  const int threads = std::stoi(Flag(argc, argv, "threads", "2"));
  constexpr size_t k = 10;
  kb::VectorIndexOptions options;  // the defaults under test
  options.m = std::stoi(Flag(argc, argv, "m", std::to_string(options.m)));
  options.ef_construction =
      std::stoi(Flag(argc, argv, "efc", std::to_string(options.ef_construction)));
  std::vector<int> efs;
  for (const auto& e : Split(Flag(argc, argv, "ef", std::to_string(options.ef_search)), ',')) {
    efs.push_back(std::stoi(e));
  }
  kb::HashingEmbedderParams params =
      kb::HashingEmbedder::DefaultParams(std::stoi(Flag(argc, argv, "dim", "384")));
  options.dimension = params.dimension;
  std::string weights = Flag(argc, argv, "weights", "");
  if (!weights.empty()) {
    auto w = Split(weights, ',');
    params.word_weight = std::stof(w.at(0));
    params.bigram_weight = std::stof(w.at(1));
    params.char3_weight = std::stof(w.at(2));
  }
  params.signed_hashing = Flag(argc, argv, "unsigned", "0") != "1";
  kb::HashingEmbedder embedder(params);

  // Corpus.
  std::vector<std::string> roots = {"/usr/share/doc", "/usr/share/common-licenses"};
  for (const auto& extra : Split(Flag(argc, argv, "corpus", ""), ':')) roots.insert(roots.begin(), extra);
  std::vector<std::string> files;
  for (const auto& root : roots) Walk(root, &files, root == "/usr/share/common-licenses");
  auto t0 = Clock::now();
  std::vector<std::string> chunks;
  std::unordered_set<std::string> seen;
  size_t duplicates = 0, files_used = 0;
  for (const auto& f : files) {
    if (chunks.size() >= n + nq) break;
    auto data = kb::ReadFile(f);
    if (!data.ok()) continue;
    std::string text = (EndsWith(f, ".html") || EndsWith(f, ".htm")) ? HtmlToText(*data) : *data;
    std::vector<std::string> cs;
    Chunk(text, &cs);
    ++files_used;
    for (auto& c : cs) {
      if (!seen.insert(c).second) {
        ++duplicates;
        continue;
      }
      chunks.push_back(std::move(c));
      if (chunks.size() >= n + nq) break;
    }
  }
  std::printf("corpus: %zu files under", files_used);
  for (const auto& r : roots) std::printf(" %s", r.c_str());
  std::printf("\n        %zu unique ~1000-char chunks (%zu duplicates skipped), %.1f s to read\n",
              chunks.size(), duplicates, Seconds(Clock::now() - t0));
  if (chunks.size() < nq + 100) {
    std::fprintf(stderr, "not enough text\n");
    return 1;
  }
  // Held-out queries: a random, seeded sample, so the indexed set is the rest.
  std::mt19937_64 rng(42);
  std::shuffle(chunks.begin(), chunks.end(), rng);
  std::vector<std::string> query_chunks(chunks.end() - static_cast<long>(nq), chunks.end());
  chunks.resize(std::min(n, chunks.size() - nq));
  std::printf("index: N=%zu chunks, queries=%zu held-out chunks + %zu short (8-word) queries, "
              "k=%zu, machine: %u hardware threads, dot kernel %s\n",
              chunks.size(), nq, nq, k, std::thread::hardware_concurrency(),
              kb::index_internal::BestDotProductName());
  std::printf("embedder: builtin-hash dim=%d weights word=%.2f bigram=%.2f char3=%.2f %s\n",
              params.dimension, params.word_weight, params.bigram_weight, params.char3_weight,
              params.signed_hashing ? "signed" : "UNSIGNED");

  // Embed (in parallel; the embedder is thread-safe).
  t0 = Clock::now();
  std::vector<kb::Vector> vectors(chunks.size());
  {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        for (size_t i = static_cast<size_t>(t); i < chunks.size(); i += static_cast<size_t>(threads)) {
          vectors[i] = embedder.EmbedOne(chunks[i]);
        }
      });
    }
    for (auto& th : pool) th.join();
  }
  double embed_s = Seconds(Clock::now() - t0);
  std::printf("embed: %.1f s (%.0f chunks/s on %d threads)\n", embed_s,
              static_cast<double>(chunks.size()) / embed_s, threads);

  // Build (single writer, as in the server).
  options.ef_search = efs.front();
  options.exact_search_below = 0;
  auto index = kb::VectorIndex::Create(options);
  t0 = Clock::now();
  for (size_t i = 0; i < vectors.size(); ++i) {
    if (!index->Upsert(static_cast<int64_t>(i), vectors[i]).ok()) return 1;
  }
  double build_s = Seconds(Clock::now() - t0);
  std::printf("build: M=%d efConstruction=%d: %.1f s (%.0f inserts/s), memory %.0f MiB\n",
              options.m, options.ef_construction, build_s,
              static_cast<double>(vectors.size()) / build_s,
              static_cast<double>(index->MemoryBytes()) / (1 << 20));

  // Query sets and exact ground truth (timed: this is what small projects and selective
  // filters run).
  std::vector<QuerySet> sets(2);
  sets[0].name = "chunk";
  sets[1].name = "short";
  for (const auto& q : query_chunks) {
    sets[0].queries.push_back(embedder.EmbedOne(q));
    std::vector<std::string> words = Split(q, ' ');
    size_t start = words.size() > 8 ? rng() % (words.size() - 8) : 0;
    std::string s;
    for (size_t w = start; w < std::min(words.size(), start + 8); ++w) s += words[w] + " ";
    sets[1].queries.push_back(embedder.EmbedOne(s));
  }
  std::vector<double> exact_ms;
  for (auto& set : sets) {
    for (const auto& q : set.queries) {
      auto s = Clock::now();
      set.truth.push_back(index->SearchExact(q, k));
      exact_ms.push_back(Seconds(Clock::now() - s) * 1e3);
    }
  }
  Percentiles ex = Measure(exact_ms);
  std::printf("exact search over %zu: p50 %.2f ms, p99 %.2f ms\n", vectors.size(), ex.p50, ex.p99);

  // Save once, reload with each ef (ef_search is a load-time option).
  std::string dir = "/tmp/kb_index_bench." + std::to_string(getpid());
  t0 = Clock::now();
  if (!index->Save(dir, 1).ok()) return 1;
  std::printf("save: %.2f s\n", Seconds(Clock::now() - t0));
  for (int ef : efs) {
    options.ef_search = ef;
    t0 = Clock::now();
    auto loaded = kb::VectorIndex::Load(dir, options);
    if (!loaded.ok()) {
      std::fprintf(stderr, "%s\n", loaded.status().ToString().c_str());
      return 1;
    }
    double load_s = Seconds(Clock::now() - t0);
    for (auto& set : sets) {
      std::vector<double> p50s, p99s, strict, tie;
      for (int r = 0; r < reps; ++r) {
        std::vector<double> ms;
        size_t hit_strict = 0, hit_tie = 0, total = 0;
        for (size_t qi = 0; qi < set.queries.size(); ++qi) {
          auto s = Clock::now();
          auto hits = (*loaded)->Search(set.queries[qi], k);
          ms.push_back(Seconds(Clock::now() - s) * 1e3);
          const auto& truth = set.truth[qi];
          float kth = truth.empty() ? 0 : truth.back().score;
          for (const auto& h : hits) {
            hit_strict += std::any_of(truth.begin(), truth.end(),
                                      [&](const kb::VectorHit& t) { return t.label == h.label; });
            hit_tie += h.score >= kth - 1e-6f;
          }
          total += truth.size();
        }
        Percentiles p = Measure(ms);
        p50s.push_back(p.p50);
        p99s.push_back(p.p99);
        strict.push_back(static_cast<double>(hit_strict) / static_cast<double>(total));
        tie.push_back(static_cast<double>(std::min(hit_tie, total)) / static_cast<double>(total));
      }
      std::printf("ef=%-4d %-5s queries: recall@10 %.4f (tie-aware %.4f)  p50 %.3f ms  p99 %.3f ms"
                  "  (median of %d; load %.1f s)\n",
                  ef, set.name.c_str(), Median(strict), Median(tie), Median(p50s), Median(p99s),
                  reps, load_s);
    }
  }
  std::filesystem::remove_all(dir);
  return 0;
}
