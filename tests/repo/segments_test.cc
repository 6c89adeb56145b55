// Journal segments in the repository engine (docs/format/SHIPPING.md): names sort in log order,
// a segment round-trips, a damaged or renamed one is Corruption, and following a chain stops at
// (and names) a missing or unreadable segment instead of skipping it.
#include "repo/segments.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdio>

#include "repository_test_util.h"

namespace kb::repo {
namespace {

using testing::MemoryRepo;

std::string Checksum(int64_t lsn, char history = 'a') {
  // A distinct 64-hex state per LSN and history.
  std::string s(64, history);
  std::string n = std::to_string(lsn);
  s.replace(64 - n.size(), n.size(), n);
  return s;
}

SegmentEntry Entry(int64_t lsn, char history = 'a') {
  return {lsn,
          1'000'000 + lsn * 1000,
          "cli",
          "put_document",
          "{\"v\":1,\"n\":" + std::to_string(lsn) + "}",
          Checksum(lsn, history)};
}

Segment MakeSegment(const std::string& project, int64_t first, int64_t last, char history = 'a',
                    char base_history = 'a') {
  Segment s;
  s.project_id = project;
  s.first_lsn = first;
  s.last_lsn = last;
  s.base_checksum = first == 1 ? "" : Checksum(first - 1, base_history);
  for (int64_t l = first; l <= last; ++l) s.entries.push_back(Entry(l, history));
  s.checksum = s.entries.back().checksum;
  s.first_ts_ms = s.entries.front().ts_ms;
  s.last_ts_ms = s.entries.back().ts_ms;
  return s;
}

class SegmentsTest : public ::testing::Test {
 protected:
  MemoryRepo m;
  Repository& repo() { return *m.repo; }

  SegmentName Write(const Segment& s) {
    auto name = WriteSegment(repo(), s);
    EXPECT_TRUE(name.ok()) << name.status().ToString();
    return name.ok() ? *name : SegmentName{};
  }
  ChainWalk Walk(const ChainPoint& start, ChainLimit limit = {},
                 std::vector<int64_t>* applied = nullptr) {
    auto w = FollowChain(repo(), "p1", start, limit, [&](const SegmentEntry& e) {
      if (applied) applied->push_back(e.lsn);
      return Status::OK();
    });
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? *w : ChainWalk{};
  }
};

TEST_F(SegmentsTest, NamesSortInLogOrderAndParseBack) {
  // LSN 16 after LSN 9 and 255 after 16: decimal names would sort 16 < 255 < 9.
  Write(MakeSegment("p1", 1, 9));
  Write(MakeSegment("p1", 10, 16));
  Write(MakeSegment("p1", 17, 255));
  auto names = ListSegments(repo(), "p1");
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 3u);
  std::vector<std::string> keys;
  ASSERT_TRUE(repo()
                  .store()
                  .List("segments/p1/",
                        [&](const blob::ObjectInfo& o) {
                          keys.push_back(o.key);
                          return Status::OK();
                        })
                  .ok());
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
  EXPECT_EQ((*names)[0].first_lsn, 1);
  EXPECT_EQ((*names)[1].first_lsn, 10);
  EXPECT_EQ((*names)[2].first_lsn, 17);
  EXPECT_EQ((*names)[2].last_lsn, 255);
  auto parsed = ParseSegmentKey(keys[2]);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->project_id, "p1");
  EXPECT_EQ(parsed->first_lsn, 17);
  EXPECT_EQ(parsed->end_tag, StateTag(repo(), "p1", 255, Checksum(255)));
  EXPECT_FALSE(ParseSegmentKey("segments/p1/0000000000000001").has_value());
  EXPECT_FALSE(ParseSegmentKey("segments/../0000000000000001-0000000000000001-"
                               "0000000000000000-0000000000000000")
                   .has_value());
  auto projects = ListSegmentProjects(repo());
  ASSERT_TRUE(projects.ok());
  EXPECT_EQ(*projects, std::vector<std::string>{"p1"});
}

TEST_F(SegmentsTest, RoundTripKeepsEveryField) {
  Segment s = MakeSegment("p1", 5, 7);
  s.entries[1].payload = "{\"v\":1,\"text\":\"caf\xc3\xa9 \\\"quoted\\\"\"}";
  SegmentName name = Write(s);
  auto back = ReadSegment(repo(), name);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->entries, s.entries);
  EXPECT_EQ(back->base_checksum, s.base_checksum);
  EXPECT_EQ(back->checksum, Checksum(7));
  EXPECT_EQ(back->first_ts_ms, s.first_ts_ms);
  EXPECT_EQ(back->last_ts_ms, s.last_ts_ms);
  EXPECT_EQ(back->generation, 0);
  // Nothing of the content is visible in the stored bytes.
  auto stored = repo().store().Get(name.key);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->find("put_document"), std::string::npos);
  EXPECT_EQ(stored->find(Checksum(7)), std::string::npos);
}

TEST_F(SegmentsTest, WriterRefusesInconsistentSegments) {
  Segment gap = MakeSegment("p1", 1, 3);
  gap.entries[1].lsn = 5;
  EXPECT_EQ(WriteSegment(repo(), gap).status().code(), Code::kInvalidArgument);
  Segment wrong_end = MakeSegment("p1", 1, 3);
  wrong_end.checksum = Checksum(2);
  EXPECT_EQ(WriteSegment(repo(), wrong_end).status().code(), Code::kInvalidArgument);
  Segment bad_project = MakeSegment("../x", 1, 1);
  EXPECT_EQ(WriteSegment(repo(), bad_project).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(WriteSegment(repo(), Segment{}).status().code(), Code::kInvalidArgument);
}

TEST_F(SegmentsTest, FlippedByteIsCorruptionNamingTheSegment) {
  SegmentName name = Write(MakeSegment("p1", 1, 4));
  auto& objects = m.store->state()->objects;
  std::string& bytes = objects[name.key];
  bytes[bytes.size() / 2] ^= 0x01;
  auto back = ReadSegment(repo(), name);
  ASSERT_EQ(back.status().code(), Code::kCorruption);
  EXPECT_NE(back.status().message().find(name.key), std::string::npos);
}

TEST_F(SegmentsTest, SegmentMovedToAnotherNameDoesNotOpen) {
  SegmentName a = Write(MakeSegment("p1", 1, 4));
  SegmentName b = Write(MakeSegment("p1", 5, 8));
  auto& objects = m.store->state()->objects;
  objects[b.key] = objects[a.key];  // a's box under b's name: the AAD binds the name
  EXPECT_EQ(ReadSegment(repo(), b).status().code(), Code::kCorruption);
}

TEST_F(SegmentsTest, ChainFromEmptyProjectReachesItsEnd) {
  Write(MakeSegment("p1", 1, 4));
  Write(MakeSegment("p1", 5, 8));
  std::vector<int64_t> applied;
  ChainWalk w = Walk({0, "", 0}, {}, &applied);
  EXPECT_TRUE(w.complete()) << w.gap;
  EXPECT_EQ(w.reached.lsn, 8);
  EXPECT_EQ(w.reached.checksum, Checksum(8));
  EXPECT_EQ(applied, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(w.segments.size(), 2u);
}

TEST_F(SegmentsTest, ChainStartsInsideASegmentAtASnapshotsPoint) {
  Write(MakeSegment("p1", 1, 4));
  Write(MakeSegment("p1", 5, 8));
  std::vector<int64_t> applied;
  ChainWalk w = Walk({6, Checksum(6), 0}, {}, &applied);
  EXPECT_TRUE(w.complete()) << w.gap;
  EXPECT_EQ(applied, (std::vector<int64_t>{7, 8}));
  // A snapshot of another history at LSN 6 is not continued by these segments.
  ChainWalk other = Walk({6, Checksum(6, 'z'), 0});
  EXPECT_EQ(other.reached.lsn, 6);
  EXPECT_EQ(other.entries, 0);
}

TEST_F(SegmentsTest, LimitsStopAtLsnAndAtTime) {
  Write(MakeSegment("p1", 1, 4));
  Write(MakeSegment("p1", 5, 8));
  ChainLimit by_lsn;
  by_lsn.lsn = 6;
  EXPECT_EQ(Walk({0, "", 0}, by_lsn).reached.lsn, 6);
  ChainLimit by_time;
  by_time.at_ms = Entry(3).ts_ms + 999;  // after entry 3, before entry 4
  ChainWalk w = Walk({0, "", 0}, by_time);
  EXPECT_TRUE(w.complete());
  EXPECT_EQ(w.reached.lsn, 3);
  EXPECT_EQ(w.reached.ts_ms, Entry(3).ts_ms);
}

TEST_F(SegmentsTest, MissingSegmentIsAGapNamedWithWhatIsUnreachable) {
  Write(MakeSegment("p1", 1, 4));
  SegmentName missing = Write(MakeSegment("p1", 5, 8));
  Write(MakeSegment("p1", 9, 12));
  ASSERT_TRUE(repo().store().Delete(missing.key).ok());
  std::vector<int64_t> applied;
  ChainWalk w = Walk({0, "", 0}, {}, &applied);
  ASSERT_FALSE(w.complete());
  EXPECT_EQ(w.reached.lsn, 4);
  EXPECT_EQ(applied.back(), 4);  // nothing past the gap was applied
  EXPECT_NE(w.gap.find("missing"), std::string::npos) << w.gap;
  EXPECT_EQ(w.unreachable_first_lsn, 5);
  EXPECT_EQ(w.unreachable_last_lsn, 12);
  EXPECT_EQ(w.unreachable_until_ms, Entry(12).ts_ms);
  // A limit before the gap needs nothing beyond it.
  ChainLimit before;
  before.lsn = 3;
  EXPECT_TRUE(Walk({0, "", 0}, before).complete());
}

TEST_F(SegmentsTest, CorruptSegmentStopsTheChainAndIsNamed) {
  Write(MakeSegment("p1", 1, 4));
  SegmentName bad = Write(MakeSegment("p1", 5, 8));
  auto& objects = m.store->state()->objects;
  objects[bad.key][40] ^= 0x20;
  ChainWalk w = Walk({0, "", 0});
  ASSERT_FALSE(w.complete());
  EXPECT_EQ(w.reached.lsn, 4);
  EXPECT_NE(w.gap.find(bad.key), std::string::npos) << w.gap;
  EXPECT_EQ(w.unreachable_last_lsn, 8);
}

TEST_F(SegmentsTest, RestoredProjectsNewHistoryIsFollowedByTime) {
  // History a: 1..8. The project is restored to LSN 4 and writes history b: 5..6, later.
  Write(MakeSegment("p1", 1, 4));
  Write(MakeSegment("p1", 5, 8));
  Segment b = MakeSegment("p1", 5, 6, 'b', 'a');
  for (SegmentEntry& e : b.entries) e.ts_ms += 100'000;
  b.first_ts_ms = b.entries.front().ts_ms;
  b.last_ts_ms = b.entries.back().ts_ms;
  Write(b);
  // Before the restore: history a; after it: history b; no gap either way.
  ChainLimit early;
  early.at_ms = Entry(7).ts_ms;
  ChainWalk wa = Walk({0, "", 0}, early);
  EXPECT_TRUE(wa.complete()) << wa.gap;
  EXPECT_EQ(wa.reached.checksum, Checksum(7));
  ChainWalk wb = Walk({0, "", 0});
  EXPECT_TRUE(wb.complete()) << wb.gap;
  EXPECT_EQ(wb.reached.checksum, Checksum(6, 'b'));
}

}  // namespace
}  // namespace kb::repo

namespace kb::repo {
namespace {

TEST_F(SegmentsTest, RepoCheckKnowsSegmentsAndStillReportsStrangers) {
  Write(MakeSegment("p1", 1, 4));
  auto check = repo().Check(false);
  ASSERT_TRUE(check.ok()) << check.status().ToString();
  EXPECT_TRUE(check->ok) << (check->problems.empty() ? "" : check->problems[0]);
  ASSERT_TRUE(repo().store().Put("segments/p1/not-a-segment", "x").ok());
  check = repo().Check(false);
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->ok);
}

// The state tag is HMAC-SHA-256(id key, "kb1:state:<project>:<lsn>:<checksum>"), first 8 bytes
// in hex (docs/format/SHIPPING.md): computed here with OpenSSL directly, not with the engine's
// hasher.
TEST_F(SegmentsTest, StateTagIsTheDocumentedHmac) {
  auto ctx = testing::OpenTestContext(m.store.get(), &m.clock);
  ASSERT_TRUE(ctx);
  const std::string id_key(ctx->key.id_key.view());
  const std::string text = "kb1:state:p1:7:" + Checksum(7);
  unsigned char mac[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), id_key.data(), static_cast<int>(id_key.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  std::string hex;
  for (int i = 0; i < 8; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", mac[i]);
    hex += b;
  }
  EXPECT_EQ(StateTag(repo(), "p1", 7, Checksum(7)), hex);
}

}  // namespace
}  // namespace kb::repo

namespace kb::repo {
namespace {

TEST(SegmentFormatTest, TestVectorFromTheFormatDoc) {
  std::string key;
  for (int i = 0; i < 32; ++i) key.push_back(static_cast<char>(i));
  ChunkIdHasher hasher(key);
  EXPECT_EQ(StateTagFor(hasher, "p1", 0, ""), "319e278efba9d5cb");
  EXPECT_EQ(StateTagFor(hasher, "p1", 1,
                        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
            "b541e0bc78f95b93");
}

}  // namespace
}  // namespace kb::repo

namespace kb::repo {
namespace {

TEST_F(SegmentsTest, HistoryBranchingInsideASegmentIsFollowedFromItsTime) {
  // History a: 1..8 in one segment. Restored to LSN 5, the project writes history b: 6..7.
  Write(MakeSegment("p1", 1, 8));
  Segment b = MakeSegment("p1", 6, 7, 'b', 'a');
  for (SegmentEntry& e : b.entries) e.ts_ms += 100'000;
  b.first_ts_ms = b.entries.front().ts_ms;
  b.last_ts_ms = b.entries.back().ts_ms;
  Write(b);
  std::vector<int64_t> applied;
  ChainWalk now = Walk({0, "", 0}, {}, &applied);
  EXPECT_TRUE(now.complete()) << now.gap;
  EXPECT_EQ(now.reached.checksum, Checksum(7, 'b'));
  EXPECT_EQ(applied, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
  ChainLimit before_branch;
  before_branch.at_ms = Entry(8).ts_ms;
  ChainWalk then = Walk({0, "", 0}, before_branch);
  EXPECT_TRUE(then.complete()) << then.gap;
  EXPECT_EQ(then.reached.checksum, Checksum(8));
}

}  // namespace
}  // namespace kb::repo
