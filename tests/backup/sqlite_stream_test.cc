// StreamSqliteDatabase: the streamed copy is byte for byte what SQLite's backup API writes into a
// new file, for every page size (smaller and larger than the repository's chunks), round-trips
// through a repository, is the source transaction's state while writers go on, and reports the
// sink's own error when the sink fails.
#include "backup/sqlite_stream.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <map>
#include <memory>

#include "backup/source.h"
#include "repository_test_util.h"

namespace kb::backup {
namespace {

namespace fs = std::filesystem;
using kb::testing::Exec;
using kb::testing::ReadBytes;

// Collects writes into a string, growing it as needed (never-written bytes stay zero).
class StringSink : public repo::FileSink {
 public:
  Status Write(int64_t offset, std::string_view data) override {
    writes_++;
    if (fail_at_ > 0 && writes_ == fail_at_) return Status::IOError("sink disk is full");
    const size_t end = static_cast<size_t>(offset) + data.size();
    if (bytes_.size() < end) bytes_.resize(end, '\0');
    bytes_.replace(static_cast<size_t>(offset), data.size(), data);
    return Status::OK();
  }
  std::string Bytes(int64_t size) const {
    std::string out = bytes_;
    out.resize(static_cast<size_t>(size), '\0');
    return out;
  }
  int writes() const { return writes_; }
  void FailAt(int write) { fail_at_ = write; }

 private:
  std::string bytes_;
  int writes_ = 0;
  int fail_at_ = 0;
};

struct Db {
  sqlite3* db = nullptr;
  explicit Db(const std::string& path) { EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK); }
  ~Db() { sqlite3_close(db); }
};

// A WAL-mode database with `page_size` pages and enough rows to span many pages. The returned
// connection keeps it open, so the commits stay in the WAL (nothing is checkpointed).
std::unique_ptr<Db> MakeWalDb(const std::string& path, int page_size, int rows) {
  fs::create_directories(fs::path(path).parent_path());
  auto owner = std::make_unique<Db>(path);
  Db& d = *owner;
  Exec(d.db, "PRAGMA page_size=" + std::to_string(page_size) + "; PRAGMA journal_mode=WAL;" +
                 "PRAGMA wal_autocheckpoint=0;" +
                 "CREATE TABLE t(id INTEGER PRIMARY KEY, payload BLOB NOT NULL)");
  for (int i = 0; i < rows; ++i) {
    Exec(d.db, "INSERT INTO t(payload) VALUES(randomblob(" + std::to_string(300 + i % 700) + "))");
  }
  return owner;
}

std::string StreamToString(const std::string& path, StringSink* sink) {
  Db d(path);
  auto size = StreamSqliteDatabase(d.db, path, *sink);
  EXPECT_TRUE(size.ok()) << size.status().ToString();
  return size.ok() ? sink->Bytes(*size) : "";
}

class SqliteStreamTest : public ::testing::TestWithParam<int> {
 protected:
  kb::testing::TempDir dir_;
};

TEST_P(SqliteStreamTest, TheStreamIsWhatTheBackupApiWritesToAFileAndRoundTrips) {
  const int page_size = GetParam();
  const std::string live = dir_.Sub("live.db");
  auto keep_open = MakeWalDb(live, page_size, 400);
  ASSERT_TRUE(fs::exists(live + "-wal"));
  StringSink sink;
  const std::string streamed = StreamToString(live, &sink);
  ASSERT_FALSE(streamed.empty());
  EXPECT_EQ(streamed.size() % static_cast<size_t>(page_size), 0u);

  const std::string plain = dir_.Sub("plain.db");
  ASSERT_TRUE(CopySqliteDatabase(live, plain).ok());
  EXPECT_TRUE(ReadBytes(plain) == streamed) << "the streamed copy differs from a file copy";

  // Through a repository with 4 KiB chunks (pages smaller, equal and larger), and back.
  kb::testing::MemoryRepo r;
  repo::SnapshotSource source;
  source.scope = "projects";
  repo::ProjectSource p;
  p.meta.id = "p-pages";
  p.files.push_back(repo::SourceFile{
      "kb.db", live, 0600, [&](repo::FileSink& s, repo::ProjectSnapshot*) -> Result<int64_t> {
        Db d(live);
        return StreamSqliteDatabase(d.db, live, s);
      }});
  source.projects.push_back(p);
  auto m = r.repo->CreateSnapshot(source, {});
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_TRUE(r.repo->RestoreFiles(*m, {}, dir_.Sub("out")).ok());
  const std::string restored = dir_.Sub("out/projects/p-pages/kb.db");
  EXPECT_TRUE(ReadBytes(restored) == streamed);
  Db check(restored);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(check.db, "SELECT count(*) FROM t", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 400);
  sqlite3_finalize(st);
}

INSTANTIATE_TEST_SUITE_P(PageSizes, SqliteStreamTest,
                         ::testing::Values(512, 1024, 4096, 8192, 65536));

TEST(SqliteStream, TheCopyIsTheOpenTransactionsStateWhileAWriterGoesOn) {
  kb::testing::TempDir dir;
  const std::string live = dir.Sub("live.db");
  auto keep_open = MakeWalDb(live, 4096, 100);
  Db reader(live);
  Exec(reader.db, "BEGIN");
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(reader.db, "SELECT count(*) FROM t", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);  // the read transaction's snapshot starts here
  EXPECT_EQ(sqlite3_column_int(st, 0), 100);
  sqlite3_finalize(st);
  {
    Db writer(live);
    Exec(writer.db, "INSERT INTO t(payload) VALUES(randomblob(5000))");
  }
  StringSink sink;
  auto size = StreamSqliteDatabase(reader.db, live, sink);
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  Exec(reader.db, "COMMIT");
  const std::string copy = dir.Sub("copy.db");
  kb::testing::WriteBytes(copy, sink.Bytes(*size));
  Db c(copy);
  ASSERT_EQ(sqlite3_prepare_v2(c.db, "SELECT count(*) FROM t", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(st, 0), 100) << "the copy must not see the later commit";
  sqlite3_finalize(st);
}

TEST(SqliteStream, ASinkFailureIsReportedAsTheSinksOwnError) {
  kb::testing::TempDir dir;
  const std::string live = dir.Sub("live.db");
  auto keep_open = MakeWalDb(live, 4096, 300);
  StringSink sink;
  sink.FailAt(5);
  Db d(live);
  auto size = StreamSqliteDatabase(d.db, live, sink);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), Code::kIOError);
  EXPECT_EQ(size.status().message(), "sink disk is full");
  EXPECT_EQ(sink.writes(), 5) << "no write after the failure";
  // The source connection is unharmed.
  Exec(d.db, "INSERT INTO t(payload) VALUES(x'00')");
}

TEST(SqliteStream, ANonDatabaseSourceIsAnError) {
  kb::testing::TempDir dir;
  const std::string path = dir.Sub("garbage.db");
  kb::testing::WriteBytes(path, std::string(8192, 'x'));
  Db d(path);
  StringSink sink;
  auto size = StreamSqliteDatabase(d.db, path, sink);
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), Code::kCorruption) << size.status().ToString();
  EXPECT_NE(size.status().message().find(path), std::string::npos);
}

}  // namespace
}  // namespace kb::backup
