// kb_bench: in-process benchmark of the knowledge base with the built-in embedder, on real text.
//
// Phases (each prints its figures):
//   1. ingest   real documents from a corpus directory until --chunks chunks are stored;
//               reports chunks/s and documents/s over the whole phase (parse+chunk+embed+commit+index).
//   2. query    --queries hybrid queries (3–6 word phrases drawn from the corpus), one thread,
//               --rounds rounds; reports p50/p95/p99 per round and the median over rounds.
//   3. restart  closes and reopens the data directory; reports time until ready and whether the
//               index was loaded (not rebuilt); then RSS after the reopen against raw text+vectors.
// Recall of the vector index against exact search is measured by index_bench.
//
// Corpus: every readable text file below --corpus (default /usr/share/doc, whose many *.gz
// changelogs are decompressed), files with NUL bytes or invalid UTF-8 skipped. Say which corpus
// and how many chunks when quoting numbers (docs/PERFORMANCE.md).
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/clock.h"
#include "common/text_util.h"
#include "service/knowledge_base.h"

namespace fs = std::filesystem;
using namespace kb;
using kb::bench::Median;
using kb::bench::Percentile;

namespace {

struct Args {
  std::string corpus = "/usr/share/doc";
  std::string data_dir;
  int64_t chunks = 100000;
  int queries = 1000;
  int rounds = 5;
  bool keep = false;
  bool reuse = false;  // query an existing --data-dir (from --keep) instead of ingesting
};

bool ReadMaybeGz(const fs::path& p, std::string* out) {
  out->clear();
  if (p.extension() == ".gz") {
    gzFile f = gzopen(p.c_str(), "rb");
    if (!f) return false;
    char buf[1 << 16];
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) out->append(buf, static_cast<size_t>(n));
    gzclose(f);
    return true;
  }
  std::ifstream in(p, std::ios::binary);
  if (!in) return false;
  out->assign(std::istreambuf_iterator<char>(in), {});
  return true;
}

// A field of /proc/self/status in bytes ("VmRSS", "RssAnon", "RssFile").
int64_t StatusBytes(const std::string& field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  return 0;
}

int64_t RssBytes() { return StatusBytes("VmRSS"); }

// "RSS 476.0 MB (anonymous 470.1 MB, file-mapped 5.9 MB)": mapped database pages that queries
// touched count in RSS but are page cache the kernel can drop, so both parts are shown.
std::string RssReport() {
  char buf[160];
  snprintf(buf, sizeof buf, "RSS %.1f MB (anonymous %.1f MB, file-mapped %.1f MB)",
           RssBytes() / 1e6, StatusBytes("RssAnon") / 1e6, StatusBytes("RssFile") / 1e6);
  return buf;
}

double Seconds(int64_t from_us) { return static_cast<double>(MonotonicMicros() - from_us) / 1e6; }

void Usage() {
  fprintf(stderr,
          "usage: kb_bench [--corpus DIR] [--data-dir DIR] [--chunks N] [--queries N] "
          "[--rounds N] [--keep] [--reuse]\n");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        Usage();
        exit(2);
      }
      return argv[++i];
    };
    if (k == "--corpus") a.corpus = next();
    else if (k == "--data-dir") a.data_dir = next();
    else if (k == "--chunks") a.chunks = std::stoll(next());
    else if (k == "--queries") a.queries = std::stoi(next());
    else if (k == "--rounds") a.rounds = std::stoi(next());
    else if (k == "--keep") a.keep = true;
    else if (k == "--reuse") a.reuse = a.keep = true;
    else {
      Usage();
      return 2;
    }
  }
  if (a.data_dir.empty()) a.data_dir = fs::temp_directory_path() / "kb_bench_data";
  if (!a.reuse) fs::remove_all(a.data_dir);

  KbOptions opts;
  opts.data_dir = a.data_dir;
  opts.enable_query_cache = false;  // measure the search, not the cache
  opts.index_save_interval_ms = 0;
  const int64_t open_us = MonotonicMicros();
  auto opened = KnowledgeBase::Open(opts);
  if (!opened.ok()) {
    fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  auto kbase = std::move(opened).value();
  if (a.reuse) {
    // A fresh process opening a kept data directory: the honest restart time and the memory of
    // a loaded server (after an in-process reopen, freed heap of the first instance inflates RSS).
    double ready_s = Seconds(open_us);
    auto st = kbase->Stats().value();
    int64_t raw = st.content_bytes + st.chunks * 384 * 4;
    printf("fresh open: ready=%s in %.3f s (index rebuilds: %lld); %s vs raw text %.1f MB "
           "+ vectors %.1f MB = %.1f MB (RSS ratio %.2f)\n",
           kbase->Ready() ? "yes" : "no", ready_s,
           static_cast<long long>(kbase->counters().index_rebuilds.load()), RssReport().c_str(),
           st.content_bytes / 1e6, st.chunks * 384 * 4 / 1e6, raw / 1e6,
           static_cast<double>(RssBytes()) / static_cast<double>(raw));
  }
  CreateProjectRequest preq;
  preq.name = "bench";
  if (auto r = a.reuse ? kbase->GetProject("bench") : kbase->CreateProject(preq, Actor{}); !r.ok()) {
    fprintf(stderr, "create: %s\n", r.status().ToString().c_str());
    return 1;
  }

  // Collect the file list in a fixed order so runs are comparable.
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(a.corpus, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    std::error_code ec;
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());

  printf("machine: %u cores; corpus: %s (%zu files)\n", std::thread::hardware_concurrency(),
         a.corpus.c_str(), files.size());

  // ---- 1. ingest
  std::vector<std::string> phrases_source;  // a sample of chunk-sized texts for queries
  int64_t docs = 0, bytes = 0, skipped = 0, chunks = 0;
  int64_t t0 = MonotonicMicros();
  double parse_free_s = 0;
  std::string content;
  for (const fs::path& p : files) {
    if (chunks >= a.chunks) break;
    int64_t r0 = MonotonicMicros();
    if (!ReadMaybeGz(p, &content) || content.empty() ||
        content.find('\0') != std::string::npos || !IsValidUtf8(content)) {
      ++skipped;
      parse_free_s += Seconds(r0);
      continue;
    }
    parse_free_s += Seconds(r0);  // file reading and decompression are not ingest work
    if (a.reuse) {
      // Same query sources as the run that built the data directory, nothing ingested.
      ++docs;
      chunks += static_cast<int64_t>(content.size() / 1000 + 1);
      if (phrases_source.size() < 5000 && docs % 3 == 0) phrases_source.push_back(content.substr(0, 2000));
      continue;
    }
    IngestRequest req;
    req.filename = p.extension() == ".gz" ? p.stem().string() : p.filename().string();
    req.source = p.string();
    req.content = content;
    auto r = kbase->Ingest("bench", req, Actor{});
    if (!r.ok()) {
      ++skipped;
      continue;
    }
    ++docs;
    bytes += static_cast<int64_t>(content.size());
    chunks += r->document.chunk_count;
    if (phrases_source.size() < 5000 && docs % 3 == 0) phrases_source.push_back(content.substr(0, 2000));
  }
  double ingest_s = Seconds(t0) - parse_free_s;
  printf("ingest: %lld documents, %lld chunks, %.1f MB of text in %.2f s -> %.0f chunks/s, "
         "%.1f MB/s (%lld files skipped: binary, invalid UTF-8 or unsupported)\n",
         static_cast<long long>(docs), static_cast<long long>(chunks), bytes / 1e6, ingest_s,
         static_cast<double>(chunks) / ingest_s, bytes / 1e6 / ingest_s,
         static_cast<long long>(skipped));

  // ---- 2. query
  std::vector<std::string> queries = kb::bench::QueryPhrases(phrases_source, a.queries, 42);
  std::vector<double> p50s, p95s, p99s;
  for (int round = 0; round < a.rounds; ++round) {
    std::vector<double> lat;
    for (const std::string& q : queries) {
      QueryRequest qr;
      qr.text = q;
      int64_t q0 = MonotonicMicros();
      auto r = kbase->Query("bench", qr);
      lat.push_back(static_cast<double>(MonotonicMicros() - q0) / 1000.0);
      if (!r.ok()) {
        fprintf(stderr, "query failed: %s\n", r.status().ToString().c_str());
        return 1;
      }
    }
    p50s.push_back(Percentile(lat, 0.5));
    p95s.push_back(Percentile(lat, 0.95));
    p99s.push_back(Percentile(lat, 0.99));
    printf("query round %d: %zu hybrid queries, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n", round + 1,
           lat.size(), p50s.back(), p95s.back(), p99s.back());
  }
  printf("query (median of %d rounds): p50 %.2f ms, p95 %.2f ms, p99 %.2f ms (min p99 %.2f, max p99 %.2f)\n",
         a.rounds, Median(p50s), Median(p95s), Median(p99s),
         *std::min_element(p99s.begin(), p99s.end()), *std::max_element(p99s.begin(), p99s.end()));

  printf("memory after the queries: %s\n", RssReport().c_str());

  // ---- 3. restart
  kbase->Close();
  kbase.reset();
  int64_t r0 = MonotonicMicros();
  auto reopened = KnowledgeBase::Open(opts);
  if (!reopened.ok()) {
    fprintf(stderr, "reopen: %s\n", reopened.status().ToString().c_str());
    return 1;
  }
  kbase = std::move(reopened).value();
  double ready_s = Seconds(r0);
  printf("restart: ready=%s in %.3f s (index rebuilds: %lld)\n", kbase->Ready() ? "yes" : "no",
         ready_s, static_cast<long long>(kbase->counters().index_rebuilds.load()));
  auto st = kbase->Stats().value();
  int64_t text_bytes = 0;
  // Raw size: chunk texts (approximated by chunks * average chunk text) + float32 vectors.
  int64_t vec_bytes = st.chunks * 384 * 4;
  text_bytes = st.content_bytes;
  int64_t rss = RssBytes();
  // In-process reopen: freed heap of the first instance may still count; --reuse (a fresh
  // process) gives the clean figure.
  printf("memory after in-process reopen: %s; raw text %.1f MB + vectors %.1f MB = %.1f MB "
         "(RSS ratio %.2f)\n",
         RssReport().c_str(), text_bytes / 1e6, vec_bytes / 1e6, (text_bytes + vec_bytes) / 1e6,
         static_cast<double>(rss) / static_cast<double>(text_bytes + vec_bytes));
  printf("disk: %.1f MB in %s\n", st.disk_bytes / 1e6, a.data_dir.c_str());

  kbase->Close();
  kbase.reset();
  if (!a.keep) fs::remove_all(a.data_dir);
  return 0;
}
