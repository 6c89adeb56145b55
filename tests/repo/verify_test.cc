// Damage and its detection: a flipped byte in a pack's data block or tree block, in an index
// object or a manifest; a truncated or missing pack; objects of a newer version; hostile sealed
// manifests. Verify names each damaged snapshot and object, RestoreFiles fails and leaves its
// target clean, Check reports the repository's problems. The restore test runs the caller's
// check (VerifyOptions::restored_check) on a restored copy; the check of real databases is tested
// in tests/backup/restore_check_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "common/crypto_util.h"
#include "faulty_blob_store.h"
#include "repo/chunk_index.h"
#include "repo/repository.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"
#include "repo/snapshot.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

namespace fs = std::filesystem;
using kb::testing::MemoryRepo;
using ::testing::HasSubstr;

bool AnyContains(const std::vector<std::string>& problems, const std::string& needle) {
  for (const std::string& p : problems) {
    if (p.find(needle) != std::string::npos) return true;
  }
  return false;
}

class VerifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = kb::testing::MakeSourceTree(dir_.Sub("src"), 1200);
    auto a = r_.repo->CreateSnapshot(tree_.source, {});
    ASSERT_TRUE(a.ok()) << a.status().ToString();
    a_ = *a;
    // b: the same data plus one new file, so it shares every pack of a and has its own.
    kb::testing::WriteBytes(dir_.Sub("extra.bin"), kb::testing::TestBytes(200'000, 21, false));
    SnapshotSource more = tree_.source;
    more.catalog_files.push_back(kb::testing::Src("extra.bin", dir_.Sub("extra.bin")));
    r_.clock.Advance(1000);
    auto b = r_.repo->CreateSnapshot(more, {});
    ASSERT_TRUE(b.ok());
    b_ = *b;
    ctx_ = kb::testing::OpenTestContext(r_.store.get(), &r_.clock);
    ChunkMap map;
    ASSERT_TRUE(LoadChunkMap(*ctx_, {}, false, &map).ok());
    for (const PackInfo& p : map.packs()) packs_.push_back(p);
  }

  // The first pack of a's with a block of `kind`, and that block's offset and length.
  std::pair<std::string, BlockInfo> BlockOf(ChunkKind kind) {
    ChunkMap map;
    EXPECT_TRUE(LoadChunkMap(*ctx_, {}, false, &map).ok());
    auto tree = ChunkIdFromHex(a_.projects[0].files[0].trees[0]);
    const ChunkLocation* loc = map.Find(*tree);  // a pack that a surely uses
    EXPECT_NE(loc, nullptr);
    const PackInfo& pack = map.pack(loc->pack);
    for (const BlockInfo& b : pack.blocks) {
      if (b.kind == kind) return {PackKey(pack.id), b};
    }
    ADD_FAILURE() << "no block of that kind";
    return {};
  }

  std::vector<VerifyReport> Verify(VerifyOptions::Data data = VerifyOptions::Data::kAll) {
    VerifyOptions o;
    o.data = data;
    auto reports = r_.repo->Verify({}, o);
    EXPECT_TRUE(reports.ok()) << reports.status().ToString();
    return reports.ok() ? *reports : std::vector<VerifyReport>{};
  }

  void ExpectRestoreFailsCleanly(const SnapshotManifest& m, const std::string& needle,
                                 Code code = Code::kCorruption) {
    std::string target = dir_.Sub("restore-" + std::to_string(++restores_));
    Status s = r_.repo->RestoreFiles(m, {}, target);
    EXPECT_EQ(s.code(), code) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr(needle));
    EXPECT_FALSE(fs::exists(target));
    fs::create_directories(target + "-existing");
    EXPECT_FALSE(r_.repo->RestoreFiles(m, {}, target + "-existing").ok());
    EXPECT_TRUE(fs::is_empty(target + "-existing"));
  }

  kb::testing::TempDir dir_;
  MemoryRepo r_;
  kb::testing::SourceTree tree_;
  SnapshotManifest a_, b_;
  std::unique_ptr<RepoContext> ctx_;
  std::vector<PackInfo> packs_;
  int restores_ = 0;
};

TEST_F(VerifyTest, AHealthyRepositoryVerifiesAtEveryLevelAndRecordsIt) {
  for (auto level :
       {VerifyOptions::Data::kStructure, VerifyOptions::Data::kSubset, VerifyOptions::Data::kAll}) {
    auto reports = Verify(level);
    ASSERT_EQ(reports.size(), 2u);
    for (const VerifyReport& r : reports) {
      EXPECT_TRUE(r.ok) << kb::testing::Joined(r.problems);
      EXPECT_GT(r.bytes_read, 0);
    }
  }
  auto check = r_.repo->Check(true);
  ASSERT_TRUE(check.ok());
  EXPECT_TRUE(check->ok) << kb::testing::Joined(check->problems);
  EXPECT_EQ(check->snapshots, 2);
  EXPECT_EQ(check->packs, static_cast<int64_t>(r_.store->Keys("data/").size()));
  EXPECT_EQ(check->keys, 1);
  EXPECT_EQ(check->unreferenced_packs, 0);
  auto list = r_.repo->ListSnapshots();
  EXPECT_FALSE((*list)[0].verified.empty());
  auto record = ctx_->ReadSealedJson(VerifiedKey(a_.id), VerifiedAad(a_.id), 1);
  ASSERT_TRUE(record.ok());
  EXPECT_EQ((*record)["level"], "read-data");
  EXPECT_EQ((*record)["ok"], true);
}

TEST_F(VerifyTest, FlippedByteInADataBlockIsFoundByReadDataAndStopsRestore) {
  auto [pack, block] = BlockOf(ChunkKind::kData);
  r_.store->FlipByte(pack, block.offset + block.length / 2);
  // Structure does not read data blocks; it still passes.
  for (const VerifyReport& r : Verify(VerifyOptions::Data::kStructure)) EXPECT_TRUE(r.ok);
  auto reports = Verify(VerifyOptions::Data::kAll);
  ASSERT_EQ(reports.size(), 2u);
  for (const VerifyReport& r : reports) {  // both snapshots use that pack
    EXPECT_FALSE(r.ok) << r.snapshot_id;
    EXPECT_TRUE(AnyContains(r.problems, pack + ": block ")) << kb::testing::Joined(r.problems);
    EXPECT_TRUE(AnyContains(r.problems, "fails authentication"));
    EXPECT_TRUE(AnyContains(r.problems, pack + ": content does not match its name"));
  }
  ExpectRestoreFailsCleanly(a_, pack);
  auto list = r_.repo->ListSnapshots();
  EXPECT_EQ((*list)[0].verified, "");  // the last verify failed
  auto check = r_.repo->Check(true);
  EXPECT_FALSE(check->ok);
  EXPECT_TRUE(AnyContains(check->problems, pack));
}

// Slices n/t read disjoint sets of packs that together are all of them: over t runs every pack
// is read exactly once (what the scheduled verification's cycle relies on). Measured by the bytes
// read: a slice reads the structure (as a structure-only run does) plus its packs' data.
TEST_F(VerifyTest, SlicesReadEveryPackExactlyOnceOverACycle) {
  ASSERT_GE(packs_.size(), 2u) << "the fixture should make several packs";
  auto bytes = [&](VerifyOptions o) {
    auto reports = r_.repo->Verify({a_.id}, o);
    EXPECT_TRUE(reports.ok()) << reports.status().ToString();
    EXPECT_EQ(reports->size(), 1u);
    EXPECT_TRUE(reports->front().ok) << kb::testing::Joined(reports->front().problems);
    return reports->front().bytes_read;
  };
  VerifyOptions structure;
  const int64_t walk = bytes(structure);
  VerifyOptions all;
  all.data = VerifyOptions::Data::kAll;
  const int64_t everything = bytes(all) - walk;
  ASSERT_GT(everything, 0);
  for (int t : {1, 2, 3, 7}) {
    int64_t sum = 0;
    for (int n = 0; n < t; ++n) {
      VerifyOptions o;
      o.data = VerifyOptions::Data::kSubset;
      o.subset_slices = t;
      o.subset_slice = n;
      sum += bytes(o) - walk;
    }
    EXPECT_EQ(sum, everything) << t << " slices";
  }
  VerifyOptions bad;
  bad.data = VerifyOptions::Data::kSubset;
  bad.subset_slices = 4;
  bad.subset_slice = 4;
  EXPECT_EQ(r_.repo->Verify({}, bad).status().code(), Code::kInvalidArgument);
}

// A damaged data block is found by exactly one slice of a cycle.
TEST_F(VerifyTest, ADamagedPackIsFoundByExactlyOneSliceOfACycle) {
  auto [pack, block] = BlockOf(ChunkKind::kData);
  r_.store->FlipByte(pack, block.offset + block.length / 2);
  int found = 0;
  for (int n = 0; n < 4; ++n) {
    VerifyOptions o;
    o.data = VerifyOptions::Data::kSubset;
    o.subset_slices = 4;
    o.subset_slice = n;
    auto reports = r_.repo->Verify({a_.id}, o);
    ASSERT_TRUE(reports.ok());
    if (!reports->front().ok) {
      ++found;
      EXPECT_TRUE(AnyContains(reports->front().problems, pack));
    }
  }
  EXPECT_EQ(found, 1);
}

TEST_F(VerifyTest, FlippedByteInATreeBlockIsFoundByTheStructureCheck) {
  auto [pack, block] = BlockOf(ChunkKind::kTree);
  r_.store->FlipByte(pack, block.offset + block.length / 2);
  auto reports = Verify(VerifyOptions::Data::kStructure);
  for (const VerifyReport& r : reports) {
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(AnyContains(r.problems, "snapshots/" + r.snapshot_id + ": file"));
    EXPECT_TRUE(AnyContains(r.problems, pack + ": block ")) << kb::testing::Joined(r.problems);
  }
  ExpectRestoreFailsCleanly(a_, pack);
  EXPECT_FALSE(r_.repo->Check(false)->ok);
}

TEST_F(VerifyTest, FlippedByteInAnIndexObjectIsNamed) {
  ASSERT_EQ(r_.store->Keys("index/").size(), 2u);
  // The index object of a's backup: both snapshots lose those chunks.
  ChunkMap map;
  auto loaded = LoadChunkMap(*ctx_, {}, false, &map);
  ASSERT_TRUE(loaded.ok());
  const ChunkLocation* loc = map.Find(*ChunkIdFromHex(a_.projects[0].files[0].trees[0]));
  ASSERT_NE(loc, nullptr);
  std::vector<std::string> indexes;
  for (const auto& [index_id, pack_ids] : loaded->objects) {
    for (const std::string& p : pack_ids) {
      if (p == map.pack(loc->pack).id) indexes.push_back(IndexKey(index_id));
    }
  }
  ASSERT_EQ(indexes.size(), 1u);
  r_.store->FlipByte(indexes[0], 100);
  auto reports = Verify(VerifyOptions::Data::kStructure);
  for (const VerifyReport& r : reports) {
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(AnyContains(r.problems, "not in any index")) << kb::testing::Joined(r.problems);
    EXPECT_TRUE(AnyContains(r.problems, indexes[0] + ": content does not match its name"));
  }
  ExpectRestoreFailsCleanly(a_, indexes[0]);
  auto check = r_.repo->Check(false);
  EXPECT_TRUE(AnyContains(check->problems, indexes[0]));
}

TEST_F(VerifyTest, FlippedByteInAManifestNamesOnlyThatSnapshot) {
  r_.store->FlipByte(SnapshotKey(a_.id), 50);
  auto reports = Verify();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_FALSE(reports[0].ok);
  EXPECT_THAT(reports[0].problems[0], HasSubstr("snapshots/" + a_.id + ": fails authentication"));
  EXPECT_TRUE(reports[1].ok) << kb::testing::Joined(reports[1].problems);
  EXPECT_EQ(r_.repo->ReadSnapshot(a_.id).status().code(), Code::kCorruption);
  EXPECT_TRUE(AnyContains(r_.repo->Check(false)->problems, "snapshots/" + a_.id));
}

TEST_F(VerifyTest, AManifestMovedToAnotherNameDoesNotOpen) {
  std::string other = "20300101T000000Z-00000000";
  r_.store->SetRaw(SnapshotKey(other), r_.store->Raw(SnapshotKey(a_.id)));
  auto m = r_.repo->ReadSnapshot(other);
  EXPECT_EQ(m.status().code(), Code::kCorruption);
  EXPECT_THAT(m.status().message(), HasSubstr("snapshots/" + other));
}

TEST_F(VerifyTest, TruncatedPackIsNamedAndStopsRestore) {
  auto [pack, block] = BlockOf(ChunkKind::kData);
  r_.store->Truncate(pack, r_.store->Raw(pack).size() / 2);
  auto reports = Verify(VerifyOptions::Data::kStructure);
  for (const VerifyReport& r : reports) {
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(AnyContains(r.problems, pack + ": is ")) << kb::testing::Joined(r.problems);
  }
  ExpectRestoreFailsCleanly(a_, pack);
}

TEST_F(VerifyTest, TruncatedReadsAreCaughtEvenWhenTheStoreLies) {
  auto [pack, block] = BlockOf(ChunkKind::kData);
  auto faults = std::make_shared<kb::testing::Faults>();
  auto repo =
      Repository::Open(std::make_unique<kb::testing::FaultyBlobStore>(r_.store->Handle(), faults),
                       kb::testing::Passphrase(), &r_.clock);
  ASSERT_TRUE(repo.ok());
  faults->truncate_prefix = pack;  // Stat says the right size; reads come back short
  std::string target = dir_.Sub("t");
  Status s = (*repo)->RestoreFiles(a_, {}, target);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_THAT(s.message(), HasSubstr(pack));
  EXPECT_FALSE(fs::exists(target));
  faults->truncate_prefix.clear();
  faults->corrupt_prefix = "data/";  // every read of every pack altered in transit
  s = (*repo)->RestoreFiles(a_, {}, target);
  EXPECT_EQ(s.code(), Code::kCorruption);
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(VerifyTest, MissingPackIsNamedInEverySnapshotThatUsesIt) {
  auto [pack, block] = BlockOf(ChunkKind::kData);
  r_.store->Remove(pack);
  auto reports = Verify(VerifyOptions::Data::kStructure);
  for (const VerifyReport& r : reports) {
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(AnyContains(r.problems, pack + ": missing")) << kb::testing::Joined(r.problems);
  }
  // Absent, not damaged: an incomplete snapshot (docs/format/BACKUP_REPOSITORY.md, "Incomplete
  // snapshots"), still naming the pack.
  ExpectRestoreFailsCleanly(a_, pack + ": missing", Code::kUnavailable);
  ExpectRestoreFailsCleanly(a_, "incomplete snapshot " + a_.id, Code::kUnavailable);
  for (const VerifyReport& r : reports) {
    EXPECT_THAT(r.problems.front(), HasSubstr("incomplete snapshot " + r.snapshot_id));
  }
  auto check = r_.repo->Check(false);
  EXPECT_TRUE(AnyContains(check->problems, "which does not exist"));
}

TEST_F(VerifyTest, NewerObjectVersionsAreRefusedNamingTheObject) {
  // A manifest and an index object of version 3, sealed with the right key.
  nlohmann::json j = a_.ToJson();
  j["version"] = 3;
  std::string id = "20300101T000000Z-0000000a";
  ASSERT_TRUE(ctx_->WriteSealedJson(SnapshotKey(id), SnapshotAad(id), j).ok());
  auto m = r_.repo->ReadSnapshot(id);
  ASSERT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(m.status().message(), "repository object snapshots/" + id +
                                      " has format version 3; this binary reads version 2");
  auto reports = r_.repo->Verify({id}, {});
  ASSERT_TRUE(reports.ok());
  EXPECT_THAT((*reports)[0].problems[0], HasSubstr("format version 3"));

  std::string plain = EncodeIndex({});
  plain[4] = 3;
  std::string box = SealCompressed(ctx_->data_key(), kIndexAad, plain, 1);
  std::string name = IndexKey(Sha256Hex(box));
  r_.store->SetRaw(name, box);
  auto check = r_.repo->Check(false);
  EXPECT_TRUE(AnyContains(check->problems, "repository object " + name +
                                               " has format version 3; this binary reads "
                                               "version 2"))
      << kb::testing::Joined(check->problems);
}

TEST_F(VerifyTest, HostileSealedManifestsAreRefusedOnRead) {
  for (const std::string bad : {"../x", "/etc/passwd", "a//b"}) {
    nlohmann::json j = a_.ToJson();
    std::string id = "20300101T000000Z-0000000b";
    j["id"] = id;
    j["catalog"]["files"][0]["path"] = bad;
    ASSERT_TRUE(ctx_->WriteSealedJson(SnapshotKey(id), SnapshotAad(id), j).ok());
    auto m = r_.repo->ReadSnapshot(id);
    EXPECT_EQ(m.status().code(), Code::kCorruption) << bad;
    EXPECT_THAT(m.status().message(), HasSubstr("snapshots/" + id));
    EXPECT_THAT(m.status().message(), HasSubstr("invalid path"));
  }
}

TEST_F(VerifyTest, CheckReportsUnknownObjectsAndCountsUnreferencedPacks) {
  r_.store->SetRaw("snapshots/not-a-snapshot", "x");
  r_.store->SetRaw("stray", "x");
  ASSERT_TRUE(r_.repo->ForgetSnapshot(b_.id).ok());
  auto check = r_.repo->Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->ok);
  EXPECT_TRUE(AnyContains(check->problems, "unknown object 'snapshots/not-a-snapshot'"));
  EXPECT_TRUE(AnyContains(check->problems, "unknown object 'stray'"));
  EXPECT_EQ(check->problems.size(), 2u) << kb::testing::Joined(check->problems);
  EXPECT_GE(check->unreferenced_packs, 1);  // b's own pack: prune's business, not an error
}

TEST_F(VerifyTest, VerifyOfAnUnknownSnapshotIsNotFound) {
  EXPECT_EQ(r_.repo->Verify({"20300101T000000Z-0000000c"}, {}).status().code(), Code::kNotFound);
  EXPECT_EQ(r_.repo->Verify({"../x"}, {}).status().code(), Code::kInvalidArgument);
}

// --- the restore test runs the caller's check ---

TEST_F(VerifyTest, ARestoreTestWithoutACheckIsRefused) {
  VerifyOptions o;
  o.restore_test = true;
  EXPECT_EQ(r_.repo->Verify({a_.id}, o).status().code(), Code::kInvalidArgument);
}

TEST_F(VerifyTest, TheRestoreTestHandsTheRestoredFilesToTheCheckAndReportsItsProblems) {
  VerifyOptions o;
  o.restore_test = true;
  o.temp_dir = dir_.Sub("tmp");
  fs::create_directories(o.temp_dir);
  std::vector<std::string> seen;
  o.restored_check = [&](const std::string& dir, const SnapshotManifest& m) {
    EXPECT_EQ(m.id, a_.id);
    for (const SnapshotFile& f : m.catalog_files) {
      EXPECT_EQ(static_cast<int64_t>(fs::file_size(fs::path(dir) / f.path)), f.size) << f.path;
      seen.push_back(f.path);
    }
    return std::vector<std::string>{"kb.db: made-up problem"};
  };
  auto reports = r_.repo->Verify({a_.id}, o);
  ASSERT_TRUE(reports.ok()) << reports.status().ToString();
  ASSERT_EQ(reports->size(), 1u);
  EXPECT_FALSE((*reports)[0].ok);
  EXPECT_THAT((*reports)[0].problems,
              ::testing::ElementsAre("restore test: kb.db: made-up problem"));
  EXPECT_EQ(seen.size(), a_.catalog_files.size());
  EXPECT_TRUE(fs::is_empty(o.temp_dir));  // the restored copy is removed
}

}  // namespace
}  // namespace kb::repo
