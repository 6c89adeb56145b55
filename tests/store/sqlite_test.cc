// Tests of the SQLite RAII layer: settings applied at open, error mapping, transactions.
#include "store/sqlite.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test_util.h"

namespace kb::sql {
namespace {

using kb::testing::TempDir;

TEST(SqliteTest, OpenAppliesWalFullSyncAndForeignKeys) {
  TempDir dir;
  auto db = Database::Open(dir.Sub("a.db"));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto mode = (*db)->Prepare("PRAGMA journal_mode");
  ASSERT_TRUE(mode.ok());
  ASSERT_TRUE(*mode->Step());
  EXPECT_EQ(mode->ColumnText(0), "wal");
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA synchronous"), 2);  // FULL
  EXPECT_EQ(*(*db)->QueryInt("PRAGMA foreign_keys"), 1);
}

TEST(SqliteTest, UncommittedTransactionRollsBackOnDestruction) {
  TempDir dir;
  auto db = std::move(Database::Open(dir.Sub("a.db")).value());
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER)").ok());
  {
    auto tx = Transaction::Begin(db.get());
    ASSERT_TRUE(tx.ok());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
  }
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM t"), 0);
  {
    auto tx = Transaction::Begin(db.get());
    ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
    ASSERT_TRUE(tx->Commit().ok());
  }
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM t"), 1);
}

TEST(SqliteTest, UniqueViolationIsAlreadyExistsAndCheckViolationIsInvalidArgument) {
  TempDir dir;
  auto db = std::move(Database::Open(dir.Sub("a.db")).value());
  ASSERT_TRUE(db->Exec("CREATE TABLE t(x INTEGER UNIQUE CHECK (x > 0))").ok());
  ASSERT_TRUE(db->Exec("INSERT INTO t VALUES (1)").ok());
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (1)").code(), Code::kAlreadyExists);
  EXPECT_EQ(db->Exec("INSERT INTO t VALUES (-1)").code(), Code::kInvalidArgument);
}

TEST(SqliteTest, StatementBindsAndReadsEveryType) {
  TempDir dir;
  auto db = std::move(Database::Open(dir.Sub("a.db")).value());
  ASSERT_TRUE(db->Exec("CREATE TABLE t(i INTEGER, d REAL, s TEXT, b BLOB, n INTEGER)").ok());
  auto ins = std::move(db->Prepare("INSERT INTO t VALUES (?1, ?2, ?3, ?4, ?5)").value());
  std::string blob("\0\x01\xff", 3);
  ins.Bind(1, int64_t{1} << 40)
      .Bind(2, 2.5)
      .Bind(3, "text")
      .BindBlob(4, blob)
      .Bind(5, std::optional<int64_t>());
  ASSERT_TRUE(ins.Run().ok());
  auto sel = std::move(db->Prepare("SELECT i, d, s, b, n FROM t").value());
  ASSERT_TRUE(*sel.Step());
  EXPECT_EQ(sel.ColumnInt64(0), int64_t{1} << 40);
  EXPECT_EQ(sel.ColumnDouble(1), 2.5);
  EXPECT_EQ(sel.ColumnText(2), "text");
  EXPECT_EQ(sel.ColumnBlob(3), blob);
  EXPECT_FALSE(sel.ColumnOptionalInt64(4).has_value());
  EXPECT_FALSE(*sel.Step());
}

TEST(SqliteTest, BindErrorIsReportedByStep) {
  TempDir dir;
  auto db = std::move(Database::Open(dir.Sub("a.db")).value());
  auto st = std::move(db->Prepare("SELECT ?1").value());
  st.Bind(5, int64_t{1});  // out of range
  EXPECT_FALSE(st.Step().ok());
}

// For a file nothing can change (a read-only file system): no -wal or -shm is created, and a
// path with URI syntax characters in it still names the file.
TEST(SqliteTest, ImmutableReadOnlyOpenCreatesNoWalOrShm) {
  TempDir dir;
  const std::string path = dir.Sub("odd?name#50%.db");
  {
    auto db = Database::Open(path);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Exec("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1)").ok());
  }  // the last connection checkpoints and removes the WAL
  ASSERT_FALSE(std::filesystem::exists(path + "-wal"));
  OpenOptions options;
  options.read_only = true;
  options.immutable = true;
  auto db = Database::Open(path, options);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  EXPECT_EQ(*(*db)->QueryInt("SELECT count(*) FROM t"), 1);
  EXPECT_FALSE((*db)->Exec("INSERT INTO t VALUES (2)").ok());
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
  EXPECT_FALSE(std::filesystem::exists(path + "-shm"));
}

TEST(SqliteTest, FileThatIsNotADatabaseIsCorruption) {
  TempDir dir;
  kb::testing::WriteTestFile(dir.Sub("junk.db"), std::string(8192, 'x'));
  auto db = Database::Open(dir.Sub("junk.db"));
  ASSERT_FALSE(db.ok());
  EXPECT_EQ(db.status().code(), Code::kCorruption) << db.status().ToString();
}

}  // namespace
// SetInterrupt: a long statement stops with Unavailable once the callback says so (what lets
// a shutdown stop the integrity check), and runs to the end without it.
TEST(SqliteInterruptTest, ALongStatementStopsWhenAskedAndRunsWithoutIt) {
  TempDir dir;
  auto db = Database::Open(dir.Sub("i.db"));
  ASSERT_TRUE(db.ok());
  const std::string count =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000000) "
      "SELECT count(*) FROM n";
  int asked = 0;
  (*db)->SetInterrupt([&] { return ++asked >= 3; });
  auto stopped = (*db)->QueryInt(count);
  EXPECT_EQ(stopped.status().code(), Code::kUnavailable) << stopped.status().ToString();
  EXPECT_EQ(asked, 3);
  (*db)->SetInterrupt({});
  auto done = (*db)->QueryInt(count);
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(*done, 2000000);
}

}  // namespace kb::sql
