// The soft-delete lifecycle and the key lifecycle at the service level (issue 4), on a real
// KnowledgeBase in a temp directory with an injected clock: deletes vanish at once, restores
// bring back the same ids and scores, the purge job removes what outlived the grace period
// (rows, keyword and vector index entries, bytes on disk), and keys rotate, expire, are revoked
// all at once and reinstated only after a project delete.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include "common/audit_sink.h"
#include "service/knowledge_base.h"
#include "test_util.h"

namespace kb {
namespace {

constexpr int64_t kStart = 1'795'688'400'000;  // 2026-11-26T10:20:00Z
constexpr int64_t kDay = 86'400'000;
constexpr char kMarker[] = "qwzmarkerpelican";

class RecordingSink final : public AuditSink {
 public:
  void Record(AuditEvent e) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  std::vector<AuditEvent> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::vector<AuditEvent> events_;
};

bool FileContains(const std::string& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes.find(needle) != std::string::npos;
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(int64_t purge_interval_ms = 0) {
    kb_.reset();
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.clock = &clock_;
    o.index_save_interval_ms = 0;
    o.audit = &sink_;
    o.purge_interval_ms = purge_interval_ms;
    auto r = KnowledgeBase::Open(o);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    kb_ = std::move(r).value();
  }

  ProjectRecord MakeProject(const std::string& name) {
    CreateProjectRequest req;
    req.name = name;
    auto r = kb_->CreateProject(req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : ProjectRecord{};
  }

  DocumentRecord Put(const std::string& project, const std::string& source,
                     const std::string& content) {
    clock_.Advance(1000);
    IngestRequest req;
    req.content = content;
    req.filename = source;
    auto r = kb_->Ingest(project, req, actor_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->document : DocumentRecord{};
  }

  std::vector<QueryHit> Ask(const std::string& project, const std::string& text,
                            SearchMode mode = SearchMode::kHybrid) {
    QueryRequest q;
    q.text = text;
    q.mode = mode;
    q.use_cache = false;
    auto r = kb_->Query(project, q);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->hits : std::vector<QueryHit>{};
  }

  static const QueryHit* Find(const std::vector<QueryHit>& hits, const std::string& doc_id) {
    for (const QueryHit& h : hits) {
      if (h.document_id == doc_id) return &h;
    }
    return nullptr;
  }

  int64_t LiveDocuments(const std::string& project) {
    auto page = kb_->ListDocuments(project, 100, 0);
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->total : -1;
  }

  testing::TempDir dir_;
  ManualClock clock_{kStart};
  RecordingSink sink_;
  Actor actor_{"key_tester", "tester"};
  std::unique_ptr<KnowledgeBase> kb_;
};

const char* kHerons = "# Herons\n\nGrey herons stand still in shallow water and spear fish.\n";
const char* kBadgers = "# Badgers\n\nBadgers dig burrows called setts under old woodland.\n";

TEST_F(LifecycleTest, DeleteVanishesAtOnceAndRestoreBringsBackSameIdsAndScores) {
  MakeProject("nature");
  DocumentRecord herons = Put("nature", "herons.md", kHerons);
  Put("nature", "badgers.md", kBadgers);
  const auto before_hybrid = Ask("nature", "grey herons fish");
  const auto before_keyword = Ask("nature", "herons", SearchMode::kKeyword);
  const auto before_vector = Ask("nature", "grey herons fish", SearchMode::kVector);
  const QueryHit* hit = Find(before_hybrid, herons.id);
  ASSERT_NE(hit, nullptr);
  const QueryHit original = *hit;
  ASSERT_NE(Find(before_keyword, herons.id), nullptr);
  const double keyword_score = Find(before_keyword, herons.id)->score;
  const double vector_score = Find(before_vector, herons.id)->score;

  clock_.Advance(60'000);
  const int64_t deleted_at = clock_.NowMillis();
  ASSERT_TRUE(kb_->DeleteDocument("nature", herons.id, actor_).ok());
  // Gone at once: search (every mode), listing, counts, stats.
  EXPECT_EQ(Find(Ask("nature", "grey herons fish"), herons.id), nullptr);
  EXPECT_EQ(Find(Ask("nature", "herons", SearchMode::kKeyword), herons.id), nullptr);
  EXPECT_EQ(Find(Ask("nature", "grey herons fish", SearchMode::kVector), herons.id), nullptr);
  EXPECT_EQ(LiveDocuments("nature"), 1);
  EXPECT_EQ(kb_->Stats()->documents, 1);
  EXPECT_EQ(kb_->GetDocument("nature", herons.id).status().code(), Code::kNotFound);
  auto listed = kb_->ListDeleted("nature", 10, 0);
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->documents.size(), 1u);
  EXPECT_EQ(listed->documents[0].id, herons.id);
  EXPECT_EQ(listed->documents[0].deleted_at_ms, deleted_at);
  EXPECT_EQ(listed->documents[0].deleted_by, actor_.id);

  clock_.Advance(60'000);
  RestoreDeletedRequest req;
  req.project = "nature";
  req.before_ms = deleted_at;
  auto report = kb_->RestoreDeleted(req, actor_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->project_restored);
  EXPECT_EQ(report->restored_documents, std::vector<std::string>{herons.id});
  EXPECT_TRUE(report->skipped.empty());

  // Searchable at once, same document id, same chunk, same scores.
  const auto after_hybrid = Ask("nature", "grey herons fish");
  const QueryHit* again = Find(after_hybrid, herons.id);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->chunk_id, original.chunk_id);
  EXPECT_EQ(again->rank, original.rank);
  EXPECT_NEAR(again->score, original.score, 1e-9);
  EXPECT_NEAR(Find(Ask("nature", "herons", SearchMode::kKeyword), herons.id)->score,
              keyword_score, 1e-9);
  EXPECT_NEAR(Find(Ask("nature", "grey herons fish", SearchMode::kVector), herons.id)->score,
              vector_score, 1e-9);
  EXPECT_EQ(LiveDocuments("nature"), 2);
  EXPECT_EQ(kb_->ListDeleted("nature", 10, 0)->total, 0);
  // And after a restart (index saved and reloaded, or caught up from the journal).
  Reopen();
  const auto reloaded_hits = Ask("nature", "grey herons fish");
  const QueryHit* reloaded = Find(reloaded_hits, herons.id);
  ASSERT_NE(reloaded, nullptr);
  EXPECT_NEAR(reloaded->score, original.score, 1e-9);
}

TEST_F(LifecycleTest, RestoreSkipsWhatCannotComeBackAndSaysWhy) {
  MakeProject("p");
  DocumentRecord old_a = Put("p", "a.md", kHerons);
  DocumentRecord b = Put("p", "b.md", kBadgers);
  clock_.Advance(1000);
  const int64_t t0 = clock_.NowMillis();
  ASSERT_TRUE(kb_->DeleteDocument("p", old_a.id, actor_).ok());
  DocumentRecord new_a = Put("p", "a.md", "# New\n\nA different text now owns a.md.\n");
  ASSERT_NE(new_a.id, old_a.id);

  RestoreDeletedRequest req;
  req.project = "p";
  req.document_ids = {old_a.id, b.id, "no-such-document"};
  auto r = kb_->RestoreDeleted(req, actor_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->restored_documents.empty());
  ASSERT_EQ(r->skipped.size(), 3u);
  EXPECT_EQ(r->skipped[0].reason, "source_taken");
  EXPECT_EQ(r->skipped[1].reason, "not_deleted");
  EXPECT_EQ(r->skipped[2].reason, "not_found");
  // No duplicate source: the live a.md is the new one, the old stays deleted.
  EXPECT_EQ(LiveDocuments("p"), 2);
  EXPECT_EQ(kb_->GetDocument("p", new_a.id)->source, "a.md");
  EXPECT_EQ(kb_->ListDeleted("p", 10, 0)->total, 1);

  // `before` after the deletion: too late for it.
  RestoreDeletedRequest late;
  late.project = "p";
  late.before_ms = t0 + 1;
  ASSERT_TRUE(kb_->RestoreDeleted(late, actor_).ok());
  EXPECT_EQ(kb_->ListDeleted("p", 10, 0)->total, 1);
  // Bad requests.
  RestoreDeletedRequest empty;
  empty.project = "p";
  EXPECT_EQ(kb_->RestoreDeleted(empty, actor_).status().code(), Code::kInvalidArgument);
  empty.before_ms = t0;
  empty.project = "ghost";
  EXPECT_EQ(kb_->RestoreDeleted(empty, actor_).status().code(), Code::kNotFound);
}

TEST_F(LifecycleTest, ProjectDeleteRevokesItsKeysAndOnlyReinstateBringsThemBack) {
  ProjectRecord p = MakeProject("team");
  Put("team", "herons.md", kHerons);
  auto limited =
      kb_->keys().CreateKey("team writer", KeyScope::kWrite, {p.id}, std::nullopt, actor_);
  auto global = kb_->keys().CreateKey("global reader", KeyScope::kRead, {}, std::nullopt, actor_);
  ASSERT_TRUE(limited.ok() && global.ok());
  ASSERT_TRUE(kb_->keys().Authenticate(limited->secret).ok());

  clock_.Advance(1000);
  const int64_t t = clock_.NowMillis();
  ASSERT_TRUE(kb_->DeleteProject("team", actor_).ok());
  auto refused = kb_->keys().Authenticate(limited->secret);
  EXPECT_EQ(refused.status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(kb_->keys().Authenticate(global->secret).ok());
  auto deleted = kb_->ListDeleted("", 10, 0);
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(deleted->projects.size(), 1u);
  EXPECT_EQ(deleted->projects[0].deleted_by, actor_.id);
  // Its deleted documents can be listed although the project is not loaded.
  EXPECT_EQ(kb_->ListDeleted(p.id, 10, 0)->project->id, p.id);
  // Reinstating is refused while the project is deleted.
  EXPECT_EQ(kb_->keys().ReinstateKey(limited->record.id, actor_).code(), Code::kFailedPrecondition);

  RestoreDeletedRequest req;
  req.project = p.id;
  req.before_ms = t;
  auto r = kb_->RestoreDeleted(req, actor_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->project_restored);
  EXPECT_EQ(r->project_name, "team");
  EXPECT_EQ(Ask("team", "herons").size(), 1u);
  // The undelete did not bring the key back ...
  EXPECT_EQ(kb_->keys().Authenticate(limited->secret).status().code(), Code::kUnauthenticated);
  // ... an explicit reinstate does.
  ASSERT_TRUE(kb_->keys().ReinstateKey(limited->record.id, actor_).ok());
  EXPECT_TRUE(kb_->keys().Authenticate(limited->secret).ok());
  // A key revoked by an administrator cannot be reinstated.
  ASSERT_TRUE(kb_->keys().RevokeKey(global->record.id, actor_).ok());
  EXPECT_EQ(kb_->keys().ReinstateKey(global->record.id, actor_).code(), Code::kFailedPrecondition);
  EXPECT_EQ(kb_->keys().ReinstateKey("key_0000000000000000", actor_).code(), Code::kNotFound);
}

TEST_F(LifecycleTest, RestoringAProjectWhoseNameWasTakenIsAConflict) {
  ProjectRecord old = MakeProject("shared");
  const int64_t t = clock_.NowMillis();
  ASSERT_TRUE(kb_->DeleteProject("shared", actor_).ok());
  MakeProject("shared");
  RestoreDeletedRequest req;
  req.project = old.id;
  req.before_ms = t;
  EXPECT_EQ(kb_->RestoreDeleted(req, actor_).status().code(), Code::kAlreadyExists);
  // Deleted before `before`: refused, nothing changes.
  req.before_ms = clock_.NowMillis() + 1;
  EXPECT_EQ(kb_->RestoreDeleted(req, actor_).status().code(), Code::kFailedPrecondition);
}

TEST_F(LifecycleTest, PurgeRemovesOnlyWhatOutlivedTheGracePeriod) {
  ProjectRecord p = MakeProject("archive");
  DocumentRecord secret =
      Put("archive", "secret.md", std::string("# Secret\n\nThe word is ") + kMarker + ".\n");
  DocumentRecord keep = Put("archive", "keep.md", kBadgers);
  DocumentRecord young = Put("archive", "young.md", kHerons);
  ProjectRecord gone = MakeProject("gone");
  Put("gone", "g.md", std::string("# Gone\n\n") + kMarker + " in a deleted project.\n");
  ASSERT_TRUE(kb_->DeleteDocument("archive", secret.id, actor_).ok());
  ASSERT_TRUE(kb_->DeleteProject("gone", actor_).ok());
  clock_.Advance(20 * kDay);
  ASSERT_TRUE(kb_->DeleteDocument("archive", young.id, actor_).ok());

  // Within the grace period (30 days by default) nothing is due.
  auto early = kb_->Purge(/*dry_run=*/false, Actor{"system", "system"});
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->documents.empty() && early->projects.empty());

  clock_.Advance(11 * kDay);  // 31 days after the first deletes, 11 after the young one
  auto dry = kb_->Purge(/*dry_run=*/true, Actor{"cli", "cli"});
  ASSERT_TRUE(dry.ok());
  ASSERT_EQ(dry->documents.size(), 1u);
  EXPECT_EQ(dry->documents[0].document_id, secret.id);
  ASSERT_EQ(dry->projects.size(), 1u);
  EXPECT_EQ(dry->projects[0].project_id, gone.id);
  EXPECT_EQ(kb_->ListDeleted("archive", 10, 0)->total, 2);  // a dry run changes nothing
  EXPECT_TRUE(std::filesystem::exists(kb_->ProjectDir(gone.id)));
  const std::string db = kb_->ProjectDir(p.id) + "/kb.db";
  ASSERT_TRUE(FileContains(db, kMarker) || FileContains(db + "-wal", kMarker));

  auto done = kb_->Purge(/*dry_run=*/false, Actor{"system", "system"});
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_TRUE(done->problems.empty()) << done->problems.front();
  ASSERT_EQ(done->documents.size(), 1u);
  ASSERT_EQ(done->projects.size(), 1u);
  // Rows, keyword entries, vector entries: gone. The young deletion and live data remain.
  auto listed = kb_->ListDeleted("archive", 10, 0);
  ASSERT_EQ(listed->documents.size(), 1u);
  EXPECT_EQ(listed->documents[0].id, young.id);
  EXPECT_TRUE(Ask("archive", kMarker, SearchMode::kKeyword).empty());
  RestoreDeletedRequest back;
  back.project = "archive";
  back.document_ids = {secret.id};
  EXPECT_EQ(kb_->RestoreDeleted(back, actor_)->skipped.at(0).reason, "not_found");
  auto stats = kb_->Stats();
  ASSERT_TRUE(stats.ok());
  ASSERT_EQ(stats->per_project.size(), 1u);
  EXPECT_EQ(static_cast<int64_t>(stats->per_project[0].index_vectors),
            stats->per_project[0].counts.chunks);
  EXPECT_EQ(Find(Ask("archive", "badgers setts"), keep.id)->document_id, keep.id);
  // The deleted project: directory and catalog row.
  EXPECT_FALSE(std::filesystem::exists(kb_->ProjectDir(gone.id)));
  EXPECT_TRUE(kb_->ListDeleted("", 10, 0)->projects.empty());
  EXPECT_EQ(kb_->ListDeleted(gone.id, 10, 0).status().code(), Code::kNotFound);
  // No byte of the purged text in the live database files.
  EXPECT_FALSE(FileContains(db, kMarker));
  EXPECT_FALSE(FileContains(db + "-wal", kMarker));
  // Recorded as background work by "system".
  int purge_events = 0;
  for (const AuditEvent& e : sink_.events()) {
    if (e.action != "purge") continue;
    ++purge_events;
    EXPECT_EQ(e.actor_id, "system");
    EXPECT_EQ(e.method, "SYSTEM");
    EXPECT_EQ(e.outcome, "ok");
  }
  EXPECT_EQ(purge_events, 2);  // the project's documents, the deleted project
  // Everything still checks out, also after a restart.
  auto check = kb_->RunIntegrityCheck();
  ASSERT_TRUE(check.ok());
  EXPECT_FALSE(check->found_problem()) << check->Problems(false).front();
  Reopen();
  EXPECT_EQ(Find(Ask("archive", "grey herons"), young.id), nullptr);  // still soft-deleted
  EXPECT_EQ(LiveDocuments("archive"), 1);
}

// The server's background job: with purge_interval set, what is due goes without any call.
TEST_F(LifecycleTest, BackgroundPurgeJobRunsOnItsOwn) {
  MakeProject("bg");
  DocumentRecord d = Put("bg", "d.md", kHerons);
  ASSERT_TRUE(kb_->DeleteDocument("bg", d.id, actor_).ok());
  clock_.Advance(31 * kDay);
  Reopen(/*purge_interval_ms=*/20);
  // The audit event is recorded once the run has also compacted the project.
  auto recorded = [&] {
    for (const AuditEvent& e : sink_.events()) {
      if (e.action == "purge" && e.actor_id == "system" && e.document_ids.size() == 1 &&
          e.document_ids[0] == d.id) {
        return true;
      }
    }
    return false;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!recorded() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(recorded());
  EXPECT_EQ(kb_->ListDeleted("bg", 10, 0)->total, 0);
  kb_->Close();  // stops the job promptly
}

TEST_F(LifecycleTest, RotationWithAndWithoutOverlap) {
  auto key = kb_->keys().CreateKey("rotating", KeyScope::kWrite, {}, std::nullopt, actor_);
  ASSERT_TRUE(key.ok());
  // Without overlap the old secret stops at once.
  auto r1 = kb_->keys().RotateKey(key->record.id, 0, actor_);
  ASSERT_TRUE(r1.ok()) << r1.status().ToString();
  EXPECT_EQ(r1->record.id, key->record.id);
  EXPECT_NE(r1->secret, key->secret);
  EXPECT_EQ(kb_->keys().Authenticate(key->secret).status().code(), Code::kUnauthenticated);
  EXPECT_EQ(kb_->keys().Authenticate(r1->secret)->id, key->record.id);
  // With an overlap both work until it ends; then only the new one.
  auto r2 = kb_->keys().RotateKey(key->record.id, 600, actor_);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->record.previous_expires_at_ms, clock_.NowMillis() + 600'000);
  EXPECT_TRUE(kb_->keys().Authenticate(r1->secret).ok());
  EXPECT_TRUE(kb_->keys().Authenticate(r2->secret).ok());
  clock_.Advance(600'000);
  EXPECT_EQ(kb_->keys().Authenticate(r1->secret).status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(kb_->keys().Authenticate(r2->secret).ok());
  EXPECT_EQ(kb_->keys().Authenticate(key->secret).status().code(), Code::kUnauthenticated);
  // Bounds and refusals.
  EXPECT_EQ(
      kb_->keys().RotateKey(key->record.id, kMaxRotationOverlapSeconds + 1, actor_).status().code(),
      Code::kInvalidArgument);
  EXPECT_EQ(kb_->keys().RotateKey(key->record.id, -1, actor_).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(kb_->keys().RotateKey("key_0000000000000000", 0, actor_).status().code(),
            Code::kNotFound);
  ASSERT_TRUE(kb_->keys().RevokeKey(key->record.id, actor_).ok());
  EXPECT_EQ(kb_->keys().RotateKey(key->record.id, 0, actor_).status().code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(kb_->keys().Authenticate(r2->secret).status().code(), Code::kUnauthenticated);
}

TEST_F(LifecycleTest, KeysExpireByTimeGivenAsInstantOrDays) {
  auto at = kb_->keys().CreateKey("short", KeyScope::kRead, {}, std::nullopt, actor_,
                                  clock_.NowMillis() + 5000);
  ASSERT_TRUE(at.ok()) << at.status().ToString();
  EXPECT_TRUE(kb_->keys().Authenticate(at->secret).ok());
  clock_.Advance(5000);
  auto expired = kb_->keys().Authenticate(at->secret);
  EXPECT_EQ(expired.status().code(), Code::kUnauthenticated);
  EXPECT_NE(expired.status().message().find("expired"), std::string::npos);
  EXPECT_EQ(kb_->keys()
                .CreateKey("past", KeyScope::kRead, {}, std::nullopt, actor_, clock_.NowMillis())
                .status()
                .code(),
            Code::kInvalidArgument);
  EXPECT_EQ(kb_->keys()
                .CreateKey("both", KeyScope::kRead, {}, 3, actor_, clock_.NowMillis() + 10)
                .status()
                .code(),
            Code::kInvalidArgument);
}

TEST_F(LifecycleTest, RevokeAllSparesTheCallerOrReplacesEveryKey) {
  auto caller = kb_->keys().CreateKey("admin a", KeyScope::kAdmin, {}, std::nullopt, actor_);
  auto other_admin = kb_->keys().CreateKey("admin b", KeyScope::kAdmin, {}, std::nullopt, actor_);
  auto reader = kb_->keys().CreateKey("reader", KeyScope::kRead, {}, std::nullopt, actor_);
  ASSERT_TRUE(caller.ok() && other_admin.ok() && reader.ok());
  auto r = kb_->keys().RevokeAllKeys(caller->record.id, /*include_admin=*/false, actor_);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->revoked.size(), 2u);
  EXPECT_FALSE(r->new_admin.has_value());
  EXPECT_TRUE(kb_->keys().Authenticate(caller->secret).ok());
  EXPECT_FALSE(kb_->keys().Authenticate(other_admin->secret).ok());
  EXPECT_FALSE(kb_->keys().Authenticate(reader->secret).ok());
  // Revoked by revoke-all: not reinstatable (it may follow a compromise).
  EXPECT_EQ(kb_->keys().ReinstateKey(reader->record.id, actor_).code(), Code::kFailedPrecondition);

  auto all = kb_->keys().RevokeAllKeys(caller->record.id, /*include_admin=*/true, actor_);
  ASSERT_TRUE(all.ok());
  ASSERT_TRUE(all->new_admin.has_value());
  EXPECT_EQ(all->revoked, std::vector<std::string>{caller->record.id});
  EXPECT_FALSE(kb_->keys().Authenticate(caller->secret).ok());
  auto fresh = kb_->keys().Authenticate(all->new_admin->secret);
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->scope, KeyScope::kAdmin);
  // Without a calling key (direct-mode CLI), include_admin is required.
  EXPECT_EQ(kb_->keys().RevokeAllKeys("", false, Actor{"cli", "cli"}).status().code(),
            Code::kInvalidArgument);
}

// Many threads authenticate with their keys while revoke-all runs: no authentication that
// started after RevokeAllKeys returned may succeed with a revoked key.
TEST_F(LifecycleTest, RevokeAllIsSeenByEveryThreadAtOnce) {
  auto caller = kb_->keys().CreateKey("caller", KeyScope::kAdmin, {}, std::nullopt, actor_);
  ASSERT_TRUE(caller.ok());
  std::vector<std::string> secrets;
  for (int i = 0; i < 8; ++i) {
    auto k =
        kb_->keys().CreateKey("k" + std::to_string(i), KeyScope::kWrite, {}, std::nullopt, actor_);
    ASSERT_TRUE(k.ok());
    secrets.push_back(k->secret);
  }
  std::atomic<bool> revoked{false}, stop{false};
  std::atomic<int> before_ok{0}, after_attempts{0}, violations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const bool started_after = revoked.load();
        auto r = kb_->keys().Authenticate(secrets[static_cast<size_t>(t + i) % secrets.size()]);
        if (started_after) {
          ++after_attempts;
          if (r.ok()) ++violations;
        } else if (r.ok()) {
          ++before_ok;
        }
      }
    });
  }
  while (before_ok.load() < 200) std::this_thread::yield();
  auto r = kb_->keys().RevokeAllKeys(caller->record.id, false, actor_);
  revoked = true;
  ASSERT_TRUE(r.ok());
  while (after_attempts.load() < 500) std::this_thread::yield();
  stop = true;
  for (auto& th : threads) th.join();
  EXPECT_EQ(r->revoked.size(), secrets.size());
  EXPECT_EQ(violations.load(), 0);
}

}  // namespace
}  // namespace kb
