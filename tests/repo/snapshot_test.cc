// CreateSnapshot + RestoreFiles on real files (generated trees with real SQLite databases):
// byte-identical round trips, deduplication across snapshots and at SQLite page granularity,
// the write order and statistics, listing and forgetting, the lock protocol, and the checks
// RestoreFiles makes on its target and on the manifest it is given.
#include "repo/snapshot.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "faulty_blob_store.h"
#include "repo/chunk_index.h"
#include "repo/locks.h"
#include "repo/repository.h"
#include "repo/repository_format.h"
#include "repo/restore_files.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

namespace fs = std::filesystem;
using kb::testing::DirContents;
using kb::testing::MemoryRepo;

class SnapshotTest : public ::testing::Test {
 protected:
  SnapshotManifest Backup(const SnapshotSource& source, BackupOptions options = {}) {
    auto m = r_.repo->CreateSnapshot(source, options);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    return m.ok() ? *m : SnapshotManifest{};
  }
  std::string Target(const std::string& name) { return dir_.Sub(name); }

  kb::testing::TempDir dir_;
  MemoryRepo r_;
};

TEST_F(SnapshotTest, RoundTripRestoresIdenticalBytesAndModes) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  BackupOptions options;
  options.tags = {"nightly"};
  SnapshotManifest m = Backup(tree.source, options);
  EXPECT_EQ(m.scope, "full");
  EXPECT_EQ(m.tags, std::vector<std::string>{"nightly"});
  EXPECT_EQ(m.stats.files, 7);
  ASSERT_EQ(m.projects.size(), 2u);
  EXPECT_EQ(m.projects[0].lsn, 42);  // metadata from source.projects[i].meta
  EXPECT_EQ(m.projects[0].embedder["dimension"], 384);

  auto read = r_.repo->ReadSnapshot(m.id);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->ToJson(), m.ToJson());
  Status restored = r_.repo->RestoreFiles(*read, {}, Target("out"));
  ASSERT_TRUE(restored.ok()) << restored.ToString();
  EXPECT_EQ(DirContents(Target("out")), kb::testing::ExpectedRestore(tree));
  EXPECT_EQ(fs::status(Target("out") + "/projects/p-beta/notes.txt").permissions() & fs::perms::all,
            fs::perms(0640));
  EXPECT_EQ(fs::status(Target("out") + "/projects/p-alpha/index/VECTOR_INDEX").permissions() &
                fs::perms::all,
            fs::perms(0644));
  EXPECT_EQ(fs::file_size(Target("out") + "/projects/p-beta/empty.txt"), 0u);
}

TEST_F(SnapshotTest, RestoresOneProjectWithoutTheCatalog) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest m = Backup(tree.source);
  ASSERT_TRUE(r_.repo->RestoreFiles(m, {"p-beta"}, Target("out")).ok());
  auto got = DirContents(Target("out"));
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(got.count("catalog.db"), 0u);
  EXPECT_EQ(got["projects/p-beta/notes.txt"], "ten bytes!");
  EXPECT_EQ(r_.repo->RestoreFiles(m, {"nope"}, Target("none")).code(), Code::kNotFound);
  EXPECT_FALSE(fs::exists(Target("none")));
}

TEST_F(SnapshotTest, SecondSnapshotOfUnchangedDataAddsNoChunks) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest first = Backup(tree.source);
  EXPECT_GT(first.stats.new_chunks, 100);
  size_t packs = r_.store->Keys("data/").size();
  SnapshotManifest second = Backup(tree.source);
  EXPECT_EQ(second.stats.new_chunks, 0);
  EXPECT_EQ(second.stats.added_bytes, 0);
  EXPECT_EQ(second.stats.chunks, first.stats.chunks);
  EXPECT_EQ(r_.store->Keys("data/").size(), packs);
  // Only the manifest was added (no pack, no index object).
  EXPECT_EQ(second.stats.added_stored_bytes,
            static_cast<int64_t>(r_.store->Raw(SnapshotKey(second.id)).size()));
  ASSERT_TRUE(r_.repo->RestoreFiles(second, {}, Target("out")).ok());
  EXPECT_EQ(DirContents(Target("out")), kb::testing::ExpectedRestore(tree));
}

TEST_F(SnapshotTest, ChangedSqlitePagesAreTheOnlyNewChunks) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"), 2000);  // kb.db ~ 2.3 MB
  SnapshotManifest first = Backup(tree.source);
  // Rewrite 5 rows spread over the file: each lives in one page (1 KB rows, 4 KiB pages).
  kb::testing::UpdateSqliteRows(tree.ProjectPath("p-alpha", "kb.db"), {3, 500, 1000, 1500, 1990},
                                77);
  SnapshotManifest second = Backup(tree.source);
  const int64_t data_pages = second.stats.new_chunks;
  // 5 leaf pages + the header page (change counter) + the trees above them (at most one per
  // changed page, fanout 64) — a tiny fraction of the ~580 chunks of the file.
  EXPECT_GE(data_pages, 6);
  EXPECT_LE(data_pages, 6 + 6);
  EXPECT_LT(second.stats.added_bytes, 13 * 4096);
  ASSERT_TRUE(r_.repo->RestoreFiles(second, {}, Target("out")).ok());
  EXPECT_EQ(DirContents(Target("out")), kb::testing::ExpectedRestore(tree));
  // The first snapshot still restores the old database.
  ASSERT_TRUE(r_.repo->RestoreFiles(first, {}, Target("old")).ok());
  EXPECT_NE(DirContents(Target("old"))["projects/p-alpha/kb.db"],
            DirContents(Target("out"))["projects/p-alpha/kb.db"]);
}

TEST_F(SnapshotTest, LargeFileIsStreamedThroughManyPacksAndTrees) {
  kb::testing::WriteBytes(dir_.Sub("big.bin"), kb::testing::TestBytes(5'000'000, 11, false));
  SnapshotSource source;
  source.catalog_files.push_back(kb::testing::Src("big.bin", dir_.Sub("big.bin")));
  SnapshotManifest m = Backup(source);
  // 5 MB of incompressible data: >= 5 packs of 1 MiB; 4 KiB chunks, fanout 64 -> 20 trees.
  EXPECT_GE(r_.store->Keys("data/").size(), 5u);
  EXPECT_EQ(m.catalog_files[0].trees.size(), (5'000'000 / 4096 + 1 + 63) / 64);
  EXPECT_EQ(m.catalog_files[0].size, 5'000'000);
  ASSERT_TRUE(r_.repo->RestoreFiles(m, {}, Target("out")).ok());
  EXPECT_TRUE(kb::testing::ReadBytes(Target("out") + "/big.bin") ==
              kb::testing::ReadBytes(dir_.Sub("big.bin")));
}

TEST_F(SnapshotTest, RepeatedContentWithinOneBackupIsStoredOnce) {
  std::string page = kb::testing::TestBytes(4096, 5, false);
  std::string same;
  for (int i = 0; i < 50; ++i) same += page;
  kb::testing::WriteBytes(dir_.Sub("a"), same);
  kb::testing::WriteBytes(dir_.Sub("b"), same);
  SnapshotSource source;
  source.catalog_files = {kb::testing::Src("a", dir_.Sub("a")),
                          kb::testing::Src("b", dir_.Sub("b"))};
  SnapshotManifest m = Backup(source);
  EXPECT_EQ(m.stats.new_chunks, 2);  // one data chunk, one tree (both files share it)
  EXPECT_EQ(m.stats.chunks, 2 * (50 + 1));
  EXPECT_EQ(m.catalog_files[0].trees, m.catalog_files[1].trees);
  ASSERT_TRUE(r_.repo->RestoreFiles(m, {}, Target("out")).ok());
  EXPECT_EQ(kb::testing::ReadBytes(Target("out") + "/b"), same);
}

TEST_F(SnapshotTest, WorkerThreadsProduceTheSameSnapshot) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"), 1500);
  BackupOptions one;
  one.threads = 1;
  SnapshotManifest a = Backup(tree.source, one);
  MemoryRepo other;
  BackupOptions four;
  four.threads = 4;
  auto b = other.repo->CreateSnapshot(tree.source, four);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a.stats.new_chunks, b->stats.new_chunks);
  EXPECT_EQ(a.stats.added_bytes, b->stats.added_bytes);
  ASSERT_TRUE(other.repo->RestoreFiles(*b, {}, Target("out")).ok());
  EXPECT_EQ(DirContents(Target("out")), kb::testing::ExpectedRestore(tree));
}

TEST_F(SnapshotTest, StatsAndProgressDescribeTheRun) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"), 5000);  // kb.db ~ 5.7 MB
  int64_t total = 0, calls = 0, last = 0;
  BackupOptions options;
  options.progress = [&](int64_t done, int64_t all) {
    EXPECT_GE(done, last);
    last = done;
    total = all;
    ++calls;
  };
  auto before = r_.store->Snapshot();
  SnapshotManifest m = Backup(tree.source, options);
  EXPECT_GE(calls, 2);
  EXPECT_EQ(last, m.stats.bytes);
  EXPECT_EQ(total, m.stats.bytes);
  int64_t bytes = 0;
  for (const auto& f : m.catalog_files) bytes += f.size;
  for (const auto& p : m.projects) {
    for (const auto& f : p.files) bytes += f.size;
  }
  EXPECT_EQ(m.stats.bytes, bytes);
  // added_stored_bytes is exactly the size of every object the backup added.
  int64_t added = 0;
  for (const auto& [key, value] : r_.store->Snapshot()) {
    if (!before.count(key)) added += static_cast<int64_t>(value.size());
  }
  EXPECT_EQ(m.stats.added_stored_bytes, added);
  EXPECT_GE(m.stats.duration_ms, 0);
  EXPECT_FALSE(m.finished.empty());
  EXPECT_TRUE(r_.store->Keys("locks/").empty());  // released
}

TEST_F(SnapshotTest, WriteOrderIsLockDataIndexManifestThenUnlock) {
  kb::testing::WriteBytes(dir_.Sub("big.bin"), kb::testing::TestBytes(3'000'000, 12, false));
  SnapshotSource source;
  source.catalog_files.push_back(kb::testing::Src("big.bin", dir_.Sub("big.bin")));
  auto faults = std::make_shared<kb::testing::Faults>();
  auto repo =
      Repository::Open(std::make_unique<kb::testing::FaultyBlobStore>(r_.store->Handle(), faults),
                       kb::testing::Passphrase(), &r_.clock);
  ASSERT_TRUE(repo.ok());
  auto m = (*repo)->CreateSnapshot(source, {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  std::vector<std::string> kinds;
  for (const std::string& entry : faults->log) {
    std::string kind = entry.substr(0, entry.find('/'));
    if (kinds.empty() || kinds.back() != kind) kinds.push_back(kind);
  }
  EXPECT_EQ(kinds, (std::vector<std::string>{"put locks", "put data", "put index", "put snapshots",
                                             "delete locks"}))
      << kb::testing::Joined(faults->log);
}

TEST_F(SnapshotTest, ListReadAndForget) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest a = Backup(tree.source);
  r_.clock.Advance(2000);
  BackupOptions api;
  api.trigger = "api";
  SnapshotManifest b = Backup(tree.source, api);
  auto list = r_.repo->ListSnapshots();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, a.id);  // newest last
  EXPECT_EQ((*list)[1].id, b.id);
  EXPECT_EQ((*list)[1].trigger, "api");
  EXPECT_EQ((*list)[1].projects, (std::vector<std::string>{"alpha", "beta"}));
  EXPECT_EQ((*list)[1].verified, "");
  EXPECT_TRUE((*list)[1].problem.empty());

  ASSERT_TRUE(r_.repo->Verify({a.id}, {}).ok());
  list = r_.repo->ListSnapshots();
  EXPECT_FALSE((*list)[0].verified.empty());
  EXPECT_EQ((*list)[1].verified, "");

  ASSERT_TRUE(r_.repo->ForgetSnapshot(a.id).ok());
  EXPECT_FALSE(r_.store->Stat(VerifiedKey(a.id)).ok());
  EXPECT_EQ(r_.repo->ReadSnapshot(a.id).status().code(), Code::kNotFound);
  EXPECT_EQ(r_.repo->ForgetSnapshot(a.id).code(), Code::kNotFound);
  EXPECT_EQ(r_.repo->ForgetSnapshot("../config").code(), Code::kInvalidArgument);
  EXPECT_EQ(r_.repo->ListSnapshots()->size(), 1u);
}

TEST_F(SnapshotTest, AnUnreadableManifestIsListedWithItsProblem) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest a = Backup(tree.source);
  r_.store->FlipByte(SnapshotKey(a.id), 40);
  auto list = r_.repo->ListSnapshots();
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->size(), 1u);
  EXPECT_NE((*list)[0].problem.find("snapshots/" + a.id), std::string::npos);
}

TEST_F(SnapshotTest, InvalidSourcesAreRefusedBeforeAnythingIsWritten) {
  auto before = r_.store->Snapshot();
  SnapshotSource bad;
  bad.catalog_files.push_back(kb::testing::Src("../escape", dir_.Sub("x")));
  EXPECT_EQ(r_.repo->CreateSnapshot(bad, {}).status().code(), Code::kInvalidArgument);
  SnapshotSource dup;
  ProjectSource p;
  p.meta.id = "a/b";
  dup.projects.push_back(p);
  EXPECT_EQ(r_.repo->CreateSnapshot(dup, {}).status().code(), Code::kInvalidArgument);
  SnapshotSource projects_with_catalog;
  projects_with_catalog.scope = "projects";
  projects_with_catalog.catalog_files.push_back(kb::testing::Src("catalog.db", dir_.Sub("x")));
  EXPECT_EQ(r_.repo->CreateSnapshot(projects_with_catalog, {}).status().code(),
            Code::kInvalidArgument);
  BackupOptions trigger;
  trigger.trigger = "whenever";
  EXPECT_EQ(r_.repo->CreateSnapshot(SnapshotSource{}, trigger).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(r_.store->Snapshot(), before);
}

TEST_F(SnapshotTest, AMissingSourceFileFailsAndCommitsNothing) {
  SnapshotSource source;
  source.catalog_files.push_back(kb::testing::Src("catalog.db", dir_.Sub("absent.db")));
  auto m = r_.repo->CreateSnapshot(source, {});
  EXPECT_EQ(m.status().code(), Code::kIOError);
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
  EXPECT_TRUE(r_.store->Keys("locks/").empty());
}

// ---------------------------------------------------------------------------------------------
// Produced files (SourceFile::produce): bytes arrive at any offsets, in any order, in pieces

// A producer that writes `content` as `size` bytes in a hostile order: whole chunks back to
// front, some chunks in two pieces, one chunk first with garbage and then for real, and the
// ranges in `holes` never (they must restore as zeros).
struct ScrambledProducer {
  std::string content;
  std::vector<std::pair<size_t, size_t>> holes;  // [begin, end)
  int64_t lsn = 0;
  FileProducer Producer() const {
    return [this](FileSink& sink, ProjectSnapshot* meta) -> Result<int64_t> {
      const size_t chunk = 4096;
      const size_t chunks = (content.size() + chunk - 1) / chunk;
      auto in_hole = [&](size_t at) {
        for (auto [b, e] : holes) {
          if (at >= b && at < e) return true;
        }
        return false;
      };
      // Garbage first where chunk 2 goes; the real bytes replace it later.
      KB_RETURN_IF_ERROR(sink.Write(2 * chunk, std::string(chunk, 'G')));
      for (size_t i = chunks; i-- > 0;) {
        const size_t begin = i * chunk, end = std::min(content.size(), begin + chunk);
        // Byte runs outside the holes, written as they come (halves for odd chunks).
        std::vector<std::pair<size_t, size_t>> runs;
        for (size_t at = begin; at < end;) {
          if (in_hole(at)) {
            ++at;
            continue;
          }
          size_t stop = at;
          while (stop < end && !in_hole(stop)) ++stop;
          runs.emplace_back(at, stop);
          at = stop;
        }
        for (auto [b, e] : runs) {
          if (i % 2 == 1 && e - b > 100) {
            const size_t mid = b + (e - b) / 3;
            KB_RETURN_IF_ERROR(sink.Write(static_cast<int64_t>(mid),
                                          std::string_view(content).substr(mid, e - mid)));
            KB_RETURN_IF_ERROR(
                sink.Write(static_cast<int64_t>(b), std::string_view(content).substr(b, mid - b)));
          } else {
            KB_RETURN_IF_ERROR(
                sink.Write(static_cast<int64_t>(b), std::string_view(content).substr(b, e - b)));
          }
        }
      }
      if (meta != nullptr) meta->lsn = lsn;
      return static_cast<int64_t>(content.size());
    };
  }
};

TEST_F(SnapshotTest, AProducedFileArrivingOutOfOrderRestoresExactly) {
  // 9 whole chunks and a short tail; chunk 5 is a hole, and so is part of chunk 7.
  std::string content = kb::testing::TestBytes(9 * 4096 + 1234, 77);
  ScrambledProducer producer{content, {{5 * 4096, 6 * 4096}, {7 * 4096 + 100, 7 * 4096 + 900}}, 31};
  for (auto [b, e] : producer.holes) std::fill(content.begin() + b, content.begin() + e, '\0');

  SnapshotSource source;
  source.scope = "projects";
  ProjectSource p;
  p.meta.id = "p-made";
  p.meta.lsn = 1;
  p.files.push_back(SourceFile{"kb.db", dir_.Sub("not-read"), 0600, producer.Producer()});
  source.projects.push_back(p);
  SnapshotManifest m = Backup(source);
  ASSERT_EQ(m.projects.size(), 1u);
  EXPECT_EQ(m.projects[0].lsn, 31);  // completed by the producer
  ASSERT_EQ(m.projects[0].files.size(), 1u);
  EXPECT_EQ(m.projects[0].files[0].size, static_cast<int64_t>(content.size()));
  EXPECT_EQ(m.stats.bytes, static_cast<int64_t>(content.size()));
  ASSERT_TRUE(r_.repo->RestoreFiles(m, {}, Target("out")).ok());
  EXPECT_TRUE(kb::testing::ReadBytes(Target("out") + "/projects/p-made/kb.db") == content);
  auto check = r_.repo->Check(/*read_data=*/true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
}

TEST_F(SnapshotTest, AProducedFileHasTheChunksOfTheSameBytesReadFromDisk) {
  const std::string content = kb::testing::TestBytes(20 * 4096 + 17, 5);
  kb::testing::WriteBytes(dir_.Sub("plain/kb.db"), content);
  auto make = [&](SourceFile file) {
    SnapshotSource source;
    source.scope = "projects";
    ProjectSource p;
    p.meta.id = "p-same";
    p.files.push_back(std::move(file));
    source.projects.push_back(p);
    return source;
  };
  SnapshotManifest from_disk = Backup(make(kb::testing::Src("kb.db", dir_.Sub("plain/kb.db"))));
  ScrambledProducer producer{content, {}, 0};
  SnapshotManifest produced =
      Backup(make(SourceFile{"kb.db", dir_.Sub("plain/kb.db"), 0600, producer.Producer()}));
  EXPECT_EQ(produced.projects[0].files[0].trees, from_disk.projects[0].files[0].trees);
  // Only the garbage version of chunk 2 was new: every other chunk and every tree deduplicated.
  EXPECT_EQ(produced.stats.new_chunks, 1);
  EXPECT_EQ(produced.stats.chunks, from_disk.stats.chunks);
}

TEST_F(SnapshotTest, AFailingProducerCommitsNothingAndTheNextBackupSucceeds) {
  SnapshotSource source;
  source.scope = "projects";
  ProjectSource p;
  p.meta.id = "p-fail";
  p.files.push_back(
      SourceFile{"kb.db", "", 0600, [](FileSink& sink, ProjectSnapshot*) -> Result<int64_t> {
                   KB_RETURN_IF_ERROR(sink.Write(0, kb::testing::TestBytes(64 * 4096, 9, false)));
                   return Status::Unavailable("the source went away");
                 }});
  source.projects.push_back(p);
  auto failed = r_.repo->CreateSnapshot(source, {});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), Code::kUnavailable);
  EXPECT_EQ(failed.status().message(), "the source went away");
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
  EXPECT_TRUE(r_.store->Keys("locks/").empty());
  auto check = r_.repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);

  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest next = Backup(tree.source);
  EXPECT_FALSE(next.id.empty());
}

// After many incremental backups a file's chunks are spread over all of them, interleaved. The
// restore reads them block by block: every block once, not once per chunk.
TEST_F(SnapshotTest, AFileSpreadOverManyBackupsIsRestoredReadingEachBlockOnce) {
  const std::string path = dir_.Sub("spread/data.bin");
  std::string content = kb::testing::TestBytes(256 * 4096, 1, /*compressible=*/false);
  kb::testing::WriteBytes(path, content);
  SnapshotSource source;
  source.catalog_files.push_back(kb::testing::Src("data.bin", path));
  SnapshotManifest m = Backup(source);
  for (int round = 1; round <= 7; ++round) {  // chunks i with i % 8 == round change
    for (size_t i = static_cast<size_t>(round); i < 256; i += 8) {
      std::string fresh = kb::testing::TestBytes(4096, 1000 * round + i, false);
      content.replace(i * 4096, 4096, fresh);
    }
    kb::testing::WriteBytes(path, content);
    m = Backup(source);
  }
  auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
  ASSERT_TRUE(ctx != nullptr);
  int64_t bytes_read = 0;
  ASSERT_TRUE(RestoreSnapshotFiles(*ctx, m, {}, Target("out"), &bytes_read).ok());
  EXPECT_TRUE(kb::testing::ReadBytes(Target("out") + "/data.bin") == content);
  // 1 MiB of (incompressible) data in 8 backups: read in file order through a 4-block cache,
  // every chunk would fetch a 64 KiB block (16 MiB); block by block it is about the data size.
  EXPECT_LT(bytes_read, 2 * static_cast<int64_t>(content.size())) << bytes_read;
}

// ---------------------------------------------------------------------------------------------
// Stored files (SourceFile::stored): an earlier snapshot's files named again

TEST_F(SnapshotTest, StoredFilesAreNamedAgainWithoutBeingRead) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest first = Backup(tree.source);
  SnapshotSource again = tree.source;
  ProjectSource& alpha = again.projects[0];
  for (size_t i = 1; i < alpha.files.size(); ++i) {                       // the index files
    alpha.files[i].local_path = dir_.Sub("gone/" + alpha.files[i].path);  // never read
    alpha.files[i].stored = first.projects[0].files[i];
  }
  fs::remove_all(tree.ProjectPath("p-alpha", "index"));
  SnapshotManifest second = Backup(again);
  EXPECT_EQ(second.projects[0].files, first.projects[0].files);
  EXPECT_EQ(second.projects[0].index_lsn, 40);
  EXPECT_EQ(second.stats.new_chunks, 0);
  EXPECT_EQ(second.stats.chunks, first.stats.chunks);
  EXPECT_EQ(second.stats.bytes, first.stats.bytes);
  ASSERT_TRUE(r_.repo->RestoreFiles(second, {}, Target("out")).ok());
  auto got = DirContents(Target("out"));
  ASSERT_TRUE(r_.repo->RestoreFiles(first, {}, Target("first")).ok());
  EXPECT_EQ(got, DirContents(Target("first")));
}

TEST_F(SnapshotTest, StoredFilesWhoseChunksAreNotStoredAreLeftOutWithTheIndexLsn) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest first = Backup(tree.source);
  SnapshotSource again = tree.source;
  ProjectSource& alpha = again.projects[0];
  alpha.meta.index_checksum = std::string(64, 'c');
  for (size_t i = 1; i < alpha.files.size(); ++i)
    alpha.files[i].stored = first.projects[0].files[i];
  // The graph's first tree is one no index holds (as if its pack were planned for deletion).
  alpha.files[2].stored->trees[0] = std::string(32, '7');
  SnapshotManifest second = Backup(again);
  ASSERT_FALSE(second.id.empty());
  const ProjectSnapshot& p = second.projects[0];
  ASSERT_EQ(p.files.size(), 1u) << "none of the project's stored files";
  EXPECT_EQ(p.files[0].path, "kb.db");
  EXPECT_EQ(p.index_lsn, 0);
  EXPECT_EQ(p.index_checksum, "");
  EXPECT_EQ(second.projects[1].files.size(), 3u);  // the other project is untouched
  auto check = r_.repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
}

TEST_F(SnapshotTest, ABackupWhoseLockWentStaleWritesNoManifest) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  auto faults = std::make_shared<kb::testing::Faults>();
  auto repo =
      Repository::Open(std::make_unique<kb::testing::FaultyBlobStore>(r_.store->Handle(), faults),
                       kb::testing::Passphrase(), &r_.clock);
  ASSERT_TRUE(repo.ok());
  // While the data is written, 26 minutes pass without a refresh (a suspended process): past
  // stale_after - max_clock_skew, another host may already consider the lock dead.
  faults->hook_prefix = "index/";
  faults->hook = [&](const std::string&) { r_.clock.Advance(26 * 60 * 1000); };
  auto m = (*repo)->CreateSnapshot(tree.source, {});
  ASSERT_EQ(m.status().code(), Code::kUnavailable);
  EXPECT_NE(m.status().message().find("lock"), std::string::npos);
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
}

TEST_F(SnapshotTest, ABackupWhoseLockWasRemovedWritesNoManifest) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  auto faults = std::make_shared<kb::testing::Faults>();
  auto repo =
      Repository::Open(std::make_unique<kb::testing::FaultyBlobStore>(r_.store->Handle(), faults),
                       kb::testing::Passphrase(), &r_.clock);
  ASSERT_TRUE(repo.ok());
  faults->hook_prefix = "index/";
  faults->hook = [&](const std::string&) {
    for (const std::string& lock : r_.store->Keys("locks/")) r_.store->Remove(lock);
  };
  auto m = (*repo)->CreateSnapshot(tree.source, {});
  ASSERT_EQ(m.status().code(), Code::kUnavailable);
  EXPECT_TRUE(r_.store->Keys("snapshots/").empty());
}

TEST_F(SnapshotTest, LockRefreshKeepsTheLockAndNeverRecreatesARemovedOne) {
  auto ctx = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
  // Refreshes 200 ms apart: the removal below lands right after a refresh, not inside the
  // window between a refresh's existence check and its write (locks.h), even on a loaded machine.
  LockTiming timing;
  timing.refresh_ms = 200;
  auto lock = LockKeeper::Acquire(*ctx, "backup", timing);
  ASSERT_TRUE(lock.ok());
  std::string key = LockKey((*lock)->record().id);
  int64_t created = (*lock)->record().created_ms;
  r_.clock.Advance(60'000);
  Result<LockRecord> stored = Status::NotFound("not read yet");
  for (int spin = 0; spin < 5000; ++spin) {  // the refresh thread runs every 200 ms
    stored = ReadLock(*ctx, (*lock)->record().id);
    if (stored.ok() && stored->refreshed_ms == created + 60'000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->created_ms, created);
  EXPECT_EQ(stored->refreshed_ms, created + 60'000);
  EXPECT_TRUE((*lock)->CheckHeld().ok());
  r_.store->Remove(key);
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * timing.refresh_ms));
  EXPECT_FALSE(r_.store->Stat(key).ok()) << "a removed lock was re-created";
  EXPECT_EQ((*lock)->CheckHeld().code(), Code::kUnavailable);
}

// --- RestoreFiles: its target and the manifest it is handed ---

TEST_F(SnapshotTest, RestoreRefusesANonEmptyTargetAndTouchesNothing) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest m = Backup(tree.source);
  kb::testing::WriteBytes(Target("busy") + "/keep.txt", "mine");
  EXPECT_EQ(r_.repo->RestoreFiles(m, {}, Target("busy")).code(), Code::kFailedPrecondition);
  EXPECT_EQ(DirContents(Target("busy")).size(), 1u);
  kb::testing::WriteBytes(Target("file"), "x");
  EXPECT_EQ(r_.repo->RestoreFiles(m, {}, Target("file")).code(), Code::kFailedPrecondition);
  fs::create_directories(Target("empty"));
  EXPECT_TRUE(r_.repo->RestoreFiles(m, {}, Target("empty")).ok());
}

TEST_F(SnapshotTest, RestoreRefusesHostileManifestPaths) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest good = Backup(tree.source);
  for (const std::string bad : {"../x", "/etc/passwd", "a//b", "../../../../tmp/evil", "."}) {
    SnapshotManifest m = good;
    m.catalog_files[0].path = bad;
    Status s = r_.repo->RestoreFiles(m, {}, Target("out"));
    EXPECT_EQ(s.code(), Code::kCorruption) << bad;
    EXPECT_TRUE(kb::testing::DirIsEmptyOrAbsent(Target("out"))) << bad;
    SnapshotManifest p = good;
    p.projects[0].id = bad;
    EXPECT_EQ(r_.repo->RestoreFiles(p, {}, Target("out")).code(), Code::kCorruption) << bad;
  }
  EXPECT_FALSE(fs::exists(dir_.path() + "/x"));
  EXPECT_FALSE(fs::exists("/tmp/evil"));
}

TEST_F(SnapshotTest, RestoreRefusesASizeThatDisagreesWithTheChunks) {
  auto tree = kb::testing::MakeSourceTree(dir_.Sub("src"));
  SnapshotManifest m = Backup(tree.source);
  m.projects[1].files[2].size += 1;  // notes.txt
  Status s = r_.repo->RestoreFiles(m, {}, Target("out"));
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_NE(s.message().find("notes.txt"), std::string::npos);
  EXPECT_FALSE(fs::exists(Target("out")));
  m.projects[1].files[2].size -= 2;
  EXPECT_EQ(r_.repo->RestoreFiles(m, {}, Target("out")).code(), Code::kCorruption);
  // Two files with one path: the second cannot be created over the first.
  SnapshotManifest twice = Backup(tree.source);
  twice.catalog_files.push_back(twice.catalog_files[0]);
  EXPECT_FALSE(r_.repo->RestoreFiles(twice, {}, Target("out")).ok());
  EXPECT_FALSE(fs::exists(Target("out")));
}

}  // namespace
}  // namespace kb::repo
