// Implementation of the SQLite RAII layer; see sqlite.h for why it exists.
#include "store/sqlite.h"

#include <sqlite3.h>

#include <utility>

namespace kb::sql {

Status StatusFromSqlite(int rc, sqlite3* db, std::string_view context) {
  std::string message(context);
  message += ": ";
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (sqlite ";
  message += std::to_string(rc);
  message += ")";
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
      return Status::OK();
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(std::move(message));
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return Status::AlreadyExists(std::move(message));
      }
      return Status::InvalidArgument(std::move(message));
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_INTERRUPT:
      return Status::Unavailable(std::move(message));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return Status::IOError(std::move(message));
    default:
      return Status::Internal(std::move(message));
  }
}

// ---- Database ----

namespace {
constexpr int64_t kMmapSizeBytes = int64_t{1} << 30;  // address space, not memory
constexpr int kCacheSizePragma = -16384;              // negative = KiB: 16 MiB per connection
}  // namespace

Result<Database::FullScan> Database::BeginFullScan() {
  KB_RETURN_IF_ERROR(Exec("PRAGMA mmap_size=0"));
  return FullScan(this);
}

Database::FullScan::~FullScan() {
  // Best effort: a failure leaves the connection reading through read(), which is correct.
  if (db_ != nullptr) (void)db_->Exec("PRAGMA mmap_size=" + std::to_string(kMmapSizeBytes));
}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                 const OpenOptions& options) {
  int flags = SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE;
  flags |= options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  std::string name = path;
  if (options.read_only && options.immutable) {
    // A URI filename; '%', '?' and '#' would be read as URI syntax, so they are escaped.
    name = "file:";
    for (char c : path) {
      if (c == '%' || c == '?' || c == '#') {
        static constexpr char kHex[] = "0123456789ABCDEF";
        name += '%';
        name += kHex[(static_cast<unsigned char>(c) >> 4) & 0xF];
        name += kHex[static_cast<unsigned char>(c) & 0xF];
      } else {
        name += c;
      }
    }
    name += "?immutable=1";
    flags |= SQLITE_OPEN_URI;
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = StatusFromSqlite(rc, raw, "open " + path);
    sqlite3_close_v2(raw);
    return s;
  }
  std::unique_ptr<Database> db(new Database(raw, path));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  // Reading the schema here makes "not a database" surface at open rather than at first use.
  KB_RETURN_IF_ERROR(db->Exec("SELECT count(*) FROM sqlite_schema"));
  if (!options.read_only) {
    KB_ASSIGN_OR_RETURN(auto stmt, db->Prepare("PRAGMA journal_mode=WAL"));
    KB_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row || stmt.ColumnText(0) != "wal") {
      return Status::IOError("cannot switch " + path + " to WAL mode");
    }
  }
  KB_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON"));
  // Reads dominate queries: map the file (no read() syscall and copy per page) and keep a
  // larger page cache per connection. Both only change how pages are read, never what is written.
  KB_RETURN_IF_ERROR(db->Exec("PRAGMA mmap_size=" + std::to_string(kMmapSizeBytes) +
                              "; PRAGMA cache_size=" + std::to_string(kCacheSizePragma) +
                              "; PRAGMA temp_store=MEMORY"));
  return db;
}

Database::~Database() {
  for (auto& [sql, cached] : cache_) sqlite3_finalize(cached.stmt);
  sqlite3_close_v2(db_);
}

Result<Statement> Database::PrepareCached(std::string_view sql) {
  {
    MutexLock lock(cache_mu_);
    auto it = cache_.find(sql);
    if (it != cache_.end() && !it->second.in_use) {
      it->second.in_use = true;
      return Statement(it->second.stmt, db_, this);
    }
    if (it != cache_.end()) return Prepare(sql);  // in use by an enclosing caller
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return StatusFromSqlite(rc, db_, "prepare");
  }
  MutexLock lock(cache_mu_);
  auto [it, inserted] = cache_.emplace(std::string(sql), CachedStatement{stmt, true});
  if (!inserted) {
    // Raced with another thread preparing the same text: keep theirs, use ours once.
    return Statement(stmt, db_);
  }
  return Statement(stmt, db_, this);
}

void Database::ReturnToCache(sqlite3_stmt* stmt) {
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  MutexLock lock(cache_mu_);
  for (auto& [sql, cached] : cache_) {
    if (cached.stmt == stmt) {
      cached.in_use = false;
      return;
    }
  }
}

Status Database::Exec(std::string_view sql) {
  std::string owned(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, owned.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return StatusFromSqlite(rc, db_, "exec");
  return Status::OK();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return StatusFromSqlite(rc, db_, "prepare");
  }
  return Statement(stmt, db_);
}

Result<int64_t> Database::QueryInt(std::string_view sql) {
  KB_ASSIGN_OR_RETURN(auto stmt, Prepare(sql));
  KB_ASSIGN_OR_RETURN(bool row, stmt.Step());
  if (!row) return Status::Internal("query returned no row: " + std::string(sql));
  return stmt.ColumnInt64(0);
}

void Database::SetInterrupt(std::function<bool()> interrupt) {
  interrupt_ = std::move(interrupt);
  if (!interrupt_) {
    sqlite3_progress_handler(db_, 0, nullptr, nullptr);
    return;
  }
  constexpr int kStepsBetweenAsks = 10000;  // ~0.1 ms of work: cheap to ask, quick to stop
  sqlite3_progress_handler(
      db_, kStepsBetweenAsks,
      [](void* self) -> int { return static_cast<Database*>(self)->interrupt_() ? 1 : 0; }, this);
}

int64_t Database::LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
int64_t Database::Changes() const { return sqlite3_changes64(db_); }

// ---- Statement ----

Statement::Statement(Statement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      db_(other.db_),
      cache_owner_(std::exchange(other.cache_owner_, nullptr)),
      bind_status_(std::move(other.bind_status_)) {}

Statement& Statement::operator=(Statement&& other) noexcept {
  if (this != &other) {
    Release();
    stmt_ = std::exchange(other.stmt_, nullptr);
    db_ = other.db_;
    cache_owner_ = std::exchange(other.cache_owner_, nullptr);
    bind_status_ = std::move(other.bind_status_);
  }
  return *this;
}

Statement::~Statement() { Release(); }

void Statement::Release() {
  if (stmt_ == nullptr) return;
  if (cache_owner_ != nullptr) {
    cache_owner_->ReturnToCache(stmt_);
  } else {
    sqlite3_finalize(stmt_);
  }
  stmt_ = nullptr;
}

void Statement::NoteBind(int rc, int index) {
  if (rc != SQLITE_OK && bind_status_.ok()) {
    bind_status_ = StatusFromSqlite(rc, db_, "bind parameter " + std::to_string(index));
  }
}

Statement& Statement::Bind(int index, int64_t value) {
  NoteBind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}
Statement& Statement::Bind(int index, double value) {
  NoteBind(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}
Statement& Statement::Bind(int index, std::string_view text) {
  NoteBind(
      sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
      index);
  return *this;
}
Statement& Statement::Bind(int index, const std::optional<int64_t>& value) {
  return value.has_value() ? Bind(index, *value) : BindNull(index);
}
Statement& Statement::BindBlob(int index, std::string_view bytes) {
  // A zero-length blob must still be a blob, not NULL: data() may be null for an empty view.
  static const char kEmpty = 0;
  NoteBind(sqlite3_bind_blob64(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(),
                               SQLITE_TRANSIENT),
           index);
  return *this;
}
Statement& Statement::BindNull(int index) {
  NoteBind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

Result<bool> Statement::Step() {
  if (!bind_status_.ok()) return bind_status_;
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return StatusFromSqlite(rc, db_, "step");
}

Status Statement::Run() {
  while (true) {
    KB_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) return Status::OK();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  bind_status_ = Status::OK();
}

int64_t Statement::ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Statement::ColumnText(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(p), n);
}
std::string Statement::ColumnBlob(int col) const { return std::string(ColumnBlobView(col)); }
std::string_view Statement::ColumnBlobView(int col) const {
  const void* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(p), n);
}
bool Statement::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
std::optional<int64_t> Statement::ColumnOptionalInt64(int col) const {
  if (ColumnIsNull(col)) return std::nullopt;
  return ColumnInt64(col);
}

// ---- Transaction ----

Result<Transaction> Transaction::Begin(Database* db, Mode mode) {
  KB_RETURN_IF_ERROR(db->Exec(mode == Mode::kImmediate ? "BEGIN IMMEDIATE" : "BEGIN"));
  return Transaction(db);
}

Transaction::Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_ != nullptr) (void)Rollback();
}

Status Transaction::Commit() {
  if (db_ == nullptr) return Status::Internal("transaction already finished");
  Status s = db_->Exec("COMMIT");
  if (!s.ok()) {
    // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); never leave it dangling.
    (void)Rollback();
    return s;
  }
  db_ = nullptr;
  return Status::OK();
}

Status Transaction::Rollback() {
  if (db_ == nullptr) return Status::OK();
  Database* db = std::exchange(db_, nullptr);
  if (sqlite3_get_autocommit(db->handle()) != 0) return Status::OK();  // already rolled back
  return db->Exec("ROLLBACK");
}

}  // namespace kb::sql
