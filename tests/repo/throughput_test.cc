// Throughput of CreateSnapshot (a measurement, not a check: disabled by default).
//   build-core/tests/repo/repo_throughput_test --gtest_also_run_disabled_tests
// Backs up one 200 MB file into the in-memory store with 1 and 2 worker threads, default
// repository parameters, and prints MB/s (median of 3 runs) for two kinds of content: like a
// store database (float32 embeddings, which barely compress, and text), and incompressible; then
// the store-like file into a store whose Puts take as long as an upload at 100 MB/s (S3 on
// loopback in NOTES.md), where uploads overlapping compression is what counts.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "common/clock.h"
#include "repo/repository.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

constexpr size_t kFileBytes = 200'000'000;

// Alternating 4 KiB pages of float32 "embeddings" and English-like text.
std::string StoreLikeBytes(size_t n) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  static const char* kWords[] = {"backup ",  "restore ", "the ",   "of ",  "encrypted ", "chunk ",
                                 "project ", "page ",    "index ", "and ", "document ",  "vector "};
  std::string out;
  out.reserve(n);
  while (out.size() < n) {
    if ((out.size() / 4096) % 2 == 0) {
      for (int i = 0; i < 1024; ++i) {
        float f = normal(rng) * 0.05f;
        char b[4];
        memcpy(b, &f, 4);
        out.append(b, 4);
      }
    } else {
      size_t end = out.size() + 4096;
      while (out.size() < end) out += kWords[rng() % 12];
      out.resize(end);
    }
  }
  out.resize(n);
  return out;
}

// The in-memory store, with each Put taking size / 100 MB/s.
class ThrottledStore : public kb::testing::MemoryBlobStore {
 public:
  explicit ThrottledStore(std::shared_ptr<Objects> state) : MemoryBlobStore(std::move(state)) {}
  Status Put(std::string_view key, std::string_view data) override {
    std::this_thread::sleep_for(std::chrono::microseconds(data.size() / 100));
    return MemoryBlobStore::Put(key, data);
  }
};

double MedianMBps(const std::string& path, int threads, bool throttled = false) {
  std::vector<double> rates;
  for (int run = 0; run < 3; ++run) {
    RepositoryParams params;  // defaults: 4 KiB chunks, 256 KiB blocks, 16 MiB packs, zstd 3
    params.scrypt_log2_n = 14;
    kb::testing::MemoryBlobStore store;
    std::unique_ptr<blob::BlobStore> handle = store.Handle();
    if (throttled) handle = std::make_unique<ThrottledStore>(store.state());
    auto repo = Repository::Init(std::move(handle), kb::testing::Passphrase(), "bench", params);
    EXPECT_TRUE(repo.ok());
    SnapshotSource source;
    source.catalog_files.push_back(kb::testing::Src("big.bin", path));
    BackupOptions options;
    options.threads = threads;
    int64_t start = MonotonicMicros();
    auto m = (*repo)->CreateSnapshot(source, options);
    double secs = static_cast<double>(MonotonicMicros() - start) / 1e6;
    EXPECT_TRUE(m.ok());
    rates.push_back(static_cast<double>(kFileBytes) / 1e6 / secs);
    if (run == 0) {
      printf("    stored %.1f MB of %.1f MB\n",
             static_cast<double>(m->stats.added_stored_bytes) / 1e6,
             static_cast<double>(kFileBytes) / 1e6);
    }
  }
  std::sort(rates.begin(), rates.end());
  printf("    threads=%d: %.0f MB/s (runs %.0f..%.0f)\n", threads, rates[1], rates[0], rates[2]);
  return rates[1];
}

TEST(ThroughputTest, DISABLED_CreateSnapshotOf200MBFile) {
  kb::testing::TempDir dir;
  for (const char* kind : {"store-like", "incompressible"}) {
    std::string path = dir.Sub(kind);
    kb::testing::WriteBytes(path, std::string(kind) == "store-like"
                                      ? StoreLikeBytes(kFileBytes)
                                      : kb::testing::TestBytes(kFileBytes, 1, false));
    printf("  %s:\n", kind);
    MedianMBps(path, 1);
    MedianMBps(path, 2);
  }
  printf("  store-like, Puts at 100 MB/s:\n");
  MedianMBps(dir.Sub("store-like"), 2, /*throttled=*/true);
}

}  // namespace
}  // namespace kb::repo
