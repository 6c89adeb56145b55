// Journal replay is what restore and standbys rest on: replaying a store's journal into an empty
// store must reproduce the same rows and checksum, and a damaged entry must be refused loudly.
#include <gtest/gtest.h>

#include "store/content_checksum.h"
#include "store/journal_codec.h"
#include "store/project_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::kTestDimension;
using kb::testing::TempDir;
using kb::testing::TestChunks;
using kb::testing::TestDoc;

void ExpectSameDocument(const DocumentRecord& a, const DocumentRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.title, b.title);
  EXPECT_EQ(a.source, b.source);
  EXPECT_EQ(a.content_type, b.content_type);
  EXPECT_EQ(a.content_hash, b.content_hash);
  EXPECT_EQ(a.metadata_json, b.metadata_json);
  EXPECT_EQ(a.chunk_count, b.chunk_count);
  EXPECT_EQ(a.bytes, b.bytes);
  EXPECT_EQ(a.created_at_ms, b.created_at_ms);
  EXPECT_EQ(a.updated_at_ms, b.updated_at_ms);
  EXPECT_EQ(a.deleted_at_ms, b.deleted_at_ms);
  EXPECT_EQ(a.deleted_by, b.deleted_by);
}

class JournalReplayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    primary_ = Open("primary/kb.db", &primary_clock_);
    replica_ = Open("replica/kb.db", &replica_clock_);
  }

  std::unique_ptr<ProjectStore> Open(const std::string& rel, const Clock* clock) {
    auto s = ProjectStore::Open(dir_.Sub(rel), "proj-1", kTestDimension, clock);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    return s.ok() ? std::move(s).value() : nullptr;
  }

  PutDocumentResult Put(DocumentRecord doc, const std::vector<std::string>& texts, int seed) {
    primary_clock_.Advance(1234);
    auto r = primary_->PutDocument(std::move(doc), TestChunks(texts, seed), "key_w");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : PutDocumentResult{};
  }

  // A history with every kind of operation, including ones that reuse sources and ids. The
  // purge of the first document is optional: it scrubs that document's earlier entries, which
  // a copy can then no longer replay from scratch (JOURNAL.md "scrubbed").
  void BuildHistory(bool purge = false) {
    auto a = Put(TestDoc("a.md", "h1"), {"alpha one", "alpha two"}, 1);
    auto b = Put(TestDoc("b.md", "h1"), {"bravo"}, 10);
    Put(TestDoc("a.md", "h2"), {"alpha replaced"}, 20);  // replace by source
    auto c = Put(TestDoc("", "h1"), {}, 30);             // no source, no chunks
    DocumentRecord by_id = TestDoc("c-renamed.md", "h3");
    by_id.id = c.document.id;
    Put(by_id, {"charlie by id"}, 31);  // replace by id
    primary_clock_.Advance(10);
    ASSERT_TRUE(primary_->DeleteDocument(b.document.id, "key_d").ok());
    primary_clock_.Advance(10);
    ASSERT_TRUE(primary_->UndeleteDocument(b.document.id, "key_d").ok());
    primary_clock_.Advance(10);
    ASSERT_TRUE(primary_->DeleteDocument(a.document.id, "key_d").ok());
    Put(TestDoc("a.md", "h4"), {"alpha reborn"}, 40);  // new document, same source
    purge_target_ = a.document.id;
    if (purge) {
      primary_clock_.Advance(10);
      ASSERT_TRUE(primary_->PurgeDocument(a.document.id, "key_p").ok());
    }
    auto d = Put(TestDoc("d.md", "h1"), {"delta"}, 50);
    primary_clock_.Advance(10);
    ASSERT_TRUE(primary_->DeleteDocument(d.document.id, "key_d").ok());  // stays deleted
    DocumentRecord revived = TestDoc("d.md", "h5");
    revived.id = d.document.id;
    Put(revived, {"delta revived"}, 60);  // put by id revives a deleted document
    Put(TestDoc("e.md", "h1"), {"echo"}, 70);
  }

  Status ReplayAll(int64_t after = 0) {
    auto entries = primary_->ReadJournal(after, 1000);
    if (!entries.ok()) return entries.status();
    for (const JournalEntry& e : *entries) KB_RETURN_IF_ERROR(replica_->ApplyJournalEntry(e));
    return Status::OK();
  }

  std::string purge_target_;
  TempDir dir_;
  ManualClock primary_clock_{1'764'000'000'000};
  ManualClock replica_clock_{1'000};  // replay must not use it
  std::unique_ptr<ProjectStore> primary_;
  std::unique_ptr<ProjectStore> replica_;
};

TEST_F(JournalReplayTest, CopyThatFollowedAlongReplaysAPurgeAndScrubsItsOwnJournal) {
  BuildHistory(/*purge=*/false);
  ASSERT_TRUE(ReplayAll().ok());
  const int64_t followed = *replica_->LastLsn();
  ASSERT_TRUE(primary_->PurgeDocument(purge_target_, "key_p").ok());
  Status s = ReplayAll(followed);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(*replica_->ContentChecksum(), *primary_->ContentChecksum());
  EXPECT_TRUE(replica_->VerifyContentChecksum().ok());
  // The copy's own journal no longer carries the purged document's text either.
  auto journal = replica_->ReadJournal(0, 1000);
  ASSERT_TRUE(journal.ok());
  int scrubbed = 0;
  for (const JournalEntry& e : *journal) {
    EXPECT_EQ(e.payload.find("alpha one"), std::string::npos) << "lsn " << e.lsn;
    if (e.op == "scrubbed") ++scrubbed;
  }
  EXPECT_GT(scrubbed, 0);
}

TEST_F(JournalReplayTest, ReplayFromScratchStopsAtAScrubbedEntry) {
  BuildHistory(/*purge=*/true);
  Status s = ReplayAll();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.message().find("scrubbed"), std::string::npos) << s.ToString();
  EXPECT_EQ(*replica_->LastLsn(), 0);  // the very first entry was the purged document's
}

TEST_F(JournalReplayTest, ReplayIntoEmptyStoreReproducesRowsAndChecksum) {
  BuildHistory();
  ASSERT_TRUE(ReplayAll().ok());

  EXPECT_EQ(*replica_->ContentChecksum(), *primary_->ContentChecksum());
  EXPECT_NE(*primary_->ContentChecksum(), std::string(64, '0'));
  auto vp = primary_->VerifyContentChecksum();
  auto vr = replica_->VerifyContentChecksum();
  ASSERT_TRUE(vp.ok()) << vp.status().ToString();
  ASSERT_TRUE(vr.ok()) << vr.status().ToString();
  EXPECT_EQ(*vp, *vr);
  EXPECT_EQ(*replica_->LastLsn(), *primary_->LastLsn());
  EXPECT_TRUE(replica_->IntegrityCheck().ok());

  auto pdocs = primary_->DocumentsChangedSince(0, 1000);
  auto rdocs = replica_->DocumentsChangedSince(0, 1000);
  ASSERT_EQ(pdocs->size(), rdocs->size());
  ASSERT_GE(pdocs->size(), 4u);
  for (size_t i = 0; i < pdocs->size(); ++i) {
    ExpectSameDocument((*pdocs)[i], (*rdocs)[i]);
    if ((*pdocs)[i].deleted_at_ms) continue;
    auto pc = primary_->GetDocumentChunks((*pdocs)[i].id);
    auto rc = replica_->GetDocumentChunks((*pdocs)[i].id);
    ASSERT_TRUE(pc.ok() && rc.ok());
    ASSERT_EQ(pc->size(), rc->size());
    for (size_t j = 0; j < pc->size(); ++j) {
      EXPECT_EQ((*pc)[j].id, (*rc)[j].id);
      EXPECT_EQ((*pc)[j].text, (*rc)[j].text);
      EXPECT_EQ((*pc)[j].heading_path, (*rc)[j].heading_path);
      EXPECT_EQ((*pc)[j].start_offset, (*rc)[j].start_offset);
      EXPECT_EQ((*pc)[j].end_offset, (*rc)[j].end_offset);
      EXPECT_EQ((*pc)[j].embedding, (*rc)[j].embedding);
    }
  }
  auto pc = primary_->Counts();
  auto rc = replica_->Counts();
  EXPECT_EQ(pc->documents, rc->documents);
  EXPECT_EQ(pc->chunks, rc->chunks);
  EXPECT_EQ(pc->deleted_documents, rc->deleted_documents);
  // The replica's journal is a verbatim copy, so it can itself serve as a source.
  auto pj = primary_->ReadJournal(0, 1000);
  auto rj = replica_->ReadJournal(0, 1000);
  ASSERT_EQ(pj->size(), rj->size());
  for (size_t i = 0; i < pj->size(); ++i) {
    EXPECT_EQ((*pj)[i].payload, (*rj)[i].payload);
    EXPECT_EQ((*pj)[i].ts_ms, (*rj)[i].ts_ms);
    EXPECT_EQ((*pj)[i].checksum, (*rj)[i].checksum);
  }
  // Keyword search agrees too (the FTS index was rebuilt by the same triggers).
  EXPECT_EQ(replica_->KeywordSearch("alpha delta charlie", 10)->size(),
            primary_->KeywordSearch("alpha delta charlie", 10)->size());
  // Chunk ids continue from the same place on both: purged ids are not reused by either.
  auto np = primary_->PutDocument(TestDoc("z.md"), TestChunks({"z"}), "k");
  auto nr = replica_->PutDocument(TestDoc("z.md"), TestChunks({"z"}), "k");
  EXPECT_EQ(np->chunk_ids, nr->chunk_ids);
}

TEST_F(JournalReplayTest, ReplayCanResumeFromTheMiddle) {
  BuildHistory();
  auto entries = primary_->ReadJournal(0, 1000);
  for (size_t i = 0; i < 4; ++i) ASSERT_TRUE(replica_->ApplyJournalEntry((*entries)[i]).ok());
  EXPECT_EQ(*replica_->ContentChecksum(), (*entries)[3].checksum);
  ASSERT_TRUE(ReplayAll(4).ok());
  EXPECT_EQ(*replica_->ContentChecksum(), *primary_->ContentChecksum());
}

TEST_F(JournalReplayTest, GapOrRepeatIsFailedPrecondition) {
  BuildHistory();
  auto entries = primary_->ReadJournal(0, 1000);
  EXPECT_EQ(replica_->ApplyJournalEntry((*entries)[1]).code(), Code::kFailedPrecondition);
  ASSERT_TRUE(replica_->ApplyJournalEntry((*entries)[0]).ok());
  EXPECT_EQ(replica_->ApplyJournalEntry((*entries)[0]).code(), Code::kFailedPrecondition);
}

TEST_F(JournalReplayTest, TamperedPayloadIsCorruptionAndNothingIsApplied) {
  BuildHistory();
  auto entries = primary_->ReadJournal(0, 1000);
  ASSERT_TRUE(replica_->ApplyJournalEntry((*entries)[0]).ok());
  std::string before = *replica_->ContentChecksum();

  JournalEntry tampered = (*entries)[1];
  size_t pos = tampered.payload.find("bravo");
  ASSERT_NE(pos, std::string::npos);
  tampered.payload[pos] = 'B';
  Status s = replica_->ApplyJournalEntry(tampered);
  EXPECT_EQ(s.code(), Code::kCorruption) << s.ToString();
  EXPECT_EQ(*replica_->LastLsn(), 1);
  EXPECT_EQ(*replica_->ContentChecksum(), before);
  EXPECT_EQ(replica_->Counts()->documents, 1);
  EXPECT_TRUE(replica_->VerifyContentChecksum().ok());

  JournalEntry bad_sum = (*entries)[1];
  bad_sum.checksum = std::string(64, 'f');
  EXPECT_EQ(replica_->ApplyJournalEntry(bad_sum).code(), Code::kCorruption);

  JournalEntry garbage = (*entries)[1];
  garbage.payload = "{not json";
  EXPECT_EQ(replica_->ApplyJournalEntry(garbage).code(), Code::kCorruption);

  JournalEntry unknown = (*entries)[1];
  unknown.op = "drop_everything";
  EXPECT_EQ(replica_->ApplyJournalEntry(unknown).code(), Code::kCorruption);

  // The genuine entry still applies afterwards.
  EXPECT_TRUE(replica_->ApplyJournalEntry((*entries)[1]).ok());
}

TEST_F(JournalReplayTest, EntryForWrongDimensionIsCorruption) {
  auto entries = [&] {
    Put(TestDoc("a.md"), {"x"}, 1);
    return primary_->ReadJournal(0, 10).value();
  }();
  auto wide =
      ProjectStore::Open(dir_.Sub("wide/kb.db"), "proj-1", kTestDimension + 1, &replica_clock_);
  ASSERT_TRUE(wide.ok());
  EXPECT_EQ((*wide)->ApplyJournalEntry(entries[0]).code(), Code::kCorruption);
}

TEST(JournalCodecTest, EmbeddingBytesAreLittleEndianFloat32) {
  std::vector<float> v = {1.0f, 0.0f};
  std::string bytes = store::EmbeddingToBytes(v);
  EXPECT_EQ(bytes, std::string("\x00\x00\x80\x3f\x00\x00\x00\x00", 8));
  EXPECT_EQ(Base64Encode(bytes), "AACAPwAAAAA=");  // the worked example in JOURNAL.md
  EXPECT_EQ(store::EmbeddingFromBytes(bytes), v);
  EXPECT_FALSE(store::EmbeddingFromBytes("abc").has_value());
}

TEST(JournalCodecTest, UnknownPayloadVersionIsCorruption) {
  EXPECT_EQ(
      store::DecodePurgePayload(R"({"v":2,"document_id":"x","chunk_ids":[]})").status().code(),
      Code::kCorruption);
  EXPECT_EQ(store::DecodePurgePayload(R"({"v":1,"document_id":"x"})").status().code(),
            Code::kCorruption);
  EXPECT_TRUE(store::DecodePurgePayload(R"({"v":1,"document_id":"x","chunk_ids":[3]})").ok());
}

TEST(ContentChecksumTest, IsOrderIndependentAndSubtractable) {
  Sha256Digest a = Sha256("a"), b = Sha256("b");
  store::ContentChecksum x, y;
  x.Add(a);
  x.Add(b);
  y.Add(b);
  y.Add(a);
  EXPECT_EQ(x.ToHex(), y.ToHex());
  x.Subtract(a);
  x.Subtract(b);
  EXPECT_EQ(x.ToHex(), std::string(64, '0'));
  auto parsed = store::ContentChecksum::FromHex(y.ToHex());
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, y);
  // One document's checksum is its digest: lanes are little-endian, so the bytes are unchanged.
  store::ContentChecksum one;
  one.Add(a);
  EXPECT_EQ(one.ToHex(), Sha256Hex("a"));
  EXPECT_FALSE(store::ContentChecksum::FromHex("zz").has_value());
}

}  // namespace
}  // namespace kb
