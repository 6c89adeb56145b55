// A small RAII layer over the SQLite C API, so that the rest of `store` never touches raw
// handles or result codes: every failure becomes a kb::Status (Corruption stays distinguishable
// from I/O errors and constraint clashes), statements and transactions clean up on every path.
//
// Connection settings (WAL, synchronous=FULL, foreign keys, busy timeout) and the error mapping
// are specified in docs/format/DATABASE.md section 1.
//
// Thread-safety: a Database and its Statements/Transactions must be used by one thread at a time
// (callers hold a mutex or lease a connection from a pool). Different Database objects on the same
// file may be used concurrently from different threads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/thread_annotations.h"

struct sqlite3;
struct sqlite3_stmt;

namespace kb::sql {

// How long a connection waits for another process's write lock before giving up (Unavailable).
inline constexpr int kDefaultBusyTimeoutMs = 5000;

// Maps a SQLite result code (extended or primary) to a Status; `db` supplies the message.
Status StatusFromSqlite(int rc, sqlite3* db, std::string_view context);

class Statement;

struct OpenOptions {
  bool read_only = false;  // reader connections: no schema changes, no journal_mode switch
  // With read_only: open with SQLite's `immutable=1`: no locks, no -wal or -shm file is created
  // or read. Only for a file nothing can change while it is open (one on a read-only file
  // system); a writer's changes would be missed or misread.
  bool immutable = false;
  int busy_timeout_ms = kDefaultBusyTimeoutMs;
};

class Database {
 public:
  // Opens (creating unless read_only) and applies the connection settings. Corruption if the
  // file is not a database.
  static Result<std::unique_ptr<Database>> Open(const std::string& path,
                                                const OpenOptions& options = {});
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows of interest.
  Status Exec(std::string_view sql);
  Result<Statement> Prepare(std::string_view sql);
  // Like Prepare, but the compiled statement is kept and reused by later calls with the same
  // text (hot read paths: compiling FTS5 and fts5vocab statements costs more than running
  // them). The Statement returns it to the cache, reset, when destroyed. If the cached one is
  // in use (a nested call), a fresh statement is prepared instead.
  Result<Statement> PrepareCached(std::string_view sql);
  // Runs `sql` (which must return one row with one integer column), e.g. a PRAGMA.
  Result<int64_t> QueryInt(std::string_view sql);
  // Reads through read() instead of the memory map for as long as the returned object lives
  // (not inside a transaction): for full scans, whose mapped pages would all count in the
  // process's RSS, which then grows with the database; queries touch few pages and keep the map.
  class FullScan {
   public:
    ~FullScan();
    FullScan(FullScan&& other) noexcept : db_(other.db_) { other.db_ = nullptr; }
    FullScan(const FullScan&) = delete;
    FullScan& operator=(const FullScan&) = delete;

   private:
    friend class Database;
    explicit FullScan(Database* db) : db_(db) {}
    Database* db_;
  };
  Result<FullScan> BeginFullScan();

  // While set, SQLite asks `interrupt` every few thousand virtual-machine steps of a running
  // statement; true aborts it (SQLITE_INTERRUPT, reported as Unavailable). For long read-only
  // work (the integrity check) that a shutdown must be able to stop. Empty: none.
  void SetInterrupt(std::function<bool()> interrupt);

  int64_t LastInsertRowid() const;
  int64_t Changes() const;  // rows changed by the last statement
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  friend class Statement;
  Database(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void ReturnToCache(sqlite3_stmt* stmt) EXCLUDES(cache_mu_);

  sqlite3* db_;
  std::string path_;
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  Mutex cache_mu_;
  std::map<std::string, CachedStatement, std::less<>> cache_ GUARDED_BY(cache_mu_);
  std::function<bool()> interrupt_;  // SetInterrupt: used by the connection's own thread
};

// A prepared statement. Binds are 1-based, columns 0-based (as in SQLite). Bind errors are
// remembered and reported by the next Step/Run, so binds can be chained without checks.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&& other) noexcept;
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, int value) { return Bind(index, static_cast<int64_t>(value)); }
  Statement& Bind(int index, double value);
  Statement& Bind(int index, std::string_view text);
  Statement& Bind(int index, const char* text) { return Bind(index, std::string_view(text)); }
  Statement& Bind(int index, const std::string& text) {
    return Bind(index, std::string_view(text));
  }
  Statement& Bind(int index, const std::optional<int64_t>& value);  // nullopt -> NULL
  Statement& BindBlob(int index, std::string_view bytes);
  Statement& BindNull(int index);

  // true: a row is available; false: done.
  Result<bool> Step();
  // Steps to completion, ignoring rows.
  Status Run();
  // Ready for re-execution with new bindings.
  void Reset();

  int64_t ColumnInt64(int col) const;
  double ColumnDouble(int col) const;
  std::string ColumnText(int col) const;
  std::string ColumnBlob(int col) const;
  std::string_view ColumnBlobView(int col) const;  // valid until the next Step/Reset
  bool ColumnIsNull(int col) const;
  std::optional<int64_t> ColumnOptionalInt64(int col) const;

 private:
  friend class Database;
  Statement(sqlite3_stmt* stmt, sqlite3* db, Database* cache_owner = nullptr)
      : stmt_(stmt), db_(db), cache_owner_(cache_owner) {}
  void NoteBind(int rc, int index);
  void Release();

  sqlite3_stmt* stmt_ = nullptr;
  sqlite3* db_ = nullptr;
  Database* cache_owner_ = nullptr;  // set when stmt_ belongs to the owner's statement cache
  Status bind_status_;
};

// BEGIN [IMMEDIATE] ... COMMIT; rolls back on destruction unless committed.
class Transaction {
 public:
  enum class Mode { kDeferred, kImmediate };
  // Immediate takes the write lock up front (writers); deferred gives readers one snapshot.
  static Result<Transaction> Begin(Database* db, Mode mode = Mode::kImmediate);
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();

  Status Commit();
  Status Rollback();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_;
};

}  // namespace kb::sql
