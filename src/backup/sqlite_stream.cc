// The write-only "kb-stream" VFS and StreamSqliteDatabase. Rules: sqlite_stream.h.
#include "backup/sqlite_stream.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <unordered_map>

#include "common/thread_annotations.h"
#include "store/sqlite.h"

namespace kb::backup {

namespace {

constexpr char kVfsName[] = "kb-stream";
constexpr int kMaxPathname = 512;
constexpr int kSectorSize = 4096;

// One destination file: where its pages go, and what SQLite may legitimately read back.
struct StreamState {
  repo::FileSink* sink = nullptr;
  std::string what;
  int64_t size = 0;        // the file's logical size: written end, or the last truncation
  std::string first_page;  // the newest write at offset 0 (page 1), the only one ever re-read
  Status error;            // the first failure, reported by StreamSqliteDatabase
  void Fail(Status s) {
    if (error.ok()) error = std::move(s);
  }
};

// Destination files by name: xOpen receives only the name.
Mutex registry_mu;
std::unordered_map<std::string, StreamState*>& Registry() REQUIRES(registry_mu) {
  static auto* registry = new std::unordered_map<std::string, StreamState*>();
  return *registry;
}

struct StreamFile {
  sqlite3_file base;  // first: SQLite casts between the two
  StreamState* state;
};

StreamState* StateOf(sqlite3_file* f) { return reinterpret_cast<StreamFile*>(f)->state; }

int FileClose(sqlite3_file*) { return SQLITE_OK; }

int FileRead(sqlite3_file* f, void* out, int amount, sqlite3_int64 offset) {
  StreamState* st = StateOf(f);
  char* dest = static_cast<char*>(out);
  if (offset >= st->size) {  // beyond the end: zeros, as for any file
    std::memset(dest, 0, static_cast<size_t>(amount));
    return SQLITE_IOERR_SHORT_READ;
  }
  if (offset + amount <= static_cast<sqlite3_int64>(st->first_page.size())) {
    std::memcpy(dest, st->first_page.data() + offset, static_cast<size_t>(amount));
    return SQLITE_OK;
  }
  st->Fail(Status::Internal("copy of " + st->what + ": SQLite read back " + std::to_string(amount) +
                            " bytes at offset " + std::to_string(offset) + " of a streamed copy"));
  return SQLITE_IOERR_READ;
}

int FileWrite(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  StreamState* st = StateOf(f);
  if (!st->error.ok()) return SQLITE_IOERR_WRITE;
  std::string_view bytes(static_cast<const char*>(data), static_cast<size_t>(amount));
  if (offset == 0) st->first_page.assign(bytes);
  Status s = st->sink->Write(offset, bytes);
  if (!s.ok()) {
    st->Fail(std::move(s));
    return SQLITE_IOERR_WRITE;
  }
  st->size = std::max<int64_t>(st->size, offset + amount);
  return SQLITE_OK;
}

int FileTruncate(sqlite3_file* f, sqlite3_int64 size) {
  StateOf(f)->size = size;
  return SQLITE_OK;
}

int FileSync(sqlite3_file*, int) { return SQLITE_OK; }

int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  *size = StateOf(f)->size;
  return SQLITE_OK;
}

int FileLock(sqlite3_file*, int) { return SQLITE_OK; }  // private file: nobody else opens it
int FileUnlock(sqlite3_file*, int) { return SQLITE_OK; }
int FileCheckReservedLock(sqlite3_file*, int* out) {
  *out = 0;
  return SQLITE_OK;
}
int FileControl(sqlite3_file*, int, void*) { return SQLITE_NOTFOUND; }
int FileSectorSize(sqlite3_file*) { return kSectorSize; }
int FileDeviceCharacteristics(sqlite3_file*) { return 0; }

const sqlite3_io_methods kIoMethods = {
    1,  // iVersion: no shared memory (the destination is never in WAL mode), no mmap
    FileClose,
    FileRead,
    FileWrite,
    FileTruncate,
    FileSync,
    FileSize,
    FileLock,
    FileUnlock,
    FileCheckReservedLock,
    FileControl,
    FileSectorSize,
    FileDeviceCharacteristics,
    nullptr,  // xShmMap
    nullptr,  // xShmLock
    nullptr,  // xShmBarrier
    nullptr,  // xShmUnmap
    nullptr,  // xFetch
    nullptr,  // xUnfetch
};

sqlite3_vfs* DefaultVfs() { return sqlite3_vfs_find(nullptr); }

int VfsOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  file->pMethods = nullptr;  // SQLite calls no method of a file whose open failed
  // Only the main database is ever opened: journal_mode=OFF, and the copy needs no temp files.
  if (name == nullptr || (flags & SQLITE_OPEN_MAIN_DB) == 0) return SQLITE_CANTOPEN;
  StreamState* state = nullptr;
  {
    MutexLock lock(registry_mu);
    auto it = Registry().find(name);
    if (it == Registry().end()) return SQLITE_CANTOPEN;
    state = it->second;
  }
  auto* sf = reinterpret_cast<StreamFile*>(file);
  sf->state = state;
  file->pMethods = &kIoMethods;
  if (out_flags != nullptr) *out_flags = flags;
  return SQLITE_OK;
}

int VfsDelete(sqlite3_vfs*, const char*, int) { return SQLITE_OK; }

int VfsAccess(sqlite3_vfs*, const char*, int, int* out) {
  *out = 0;  // no journal, no WAL: nothing but the open main file exists
  return SQLITE_OK;
}

int VfsFullPathname(sqlite3_vfs*, const char* name, int size, char* out) {
  if (static_cast<int>(std::strlen(name)) >= size) return SQLITE_CANTOPEN;
  std::strcpy(out, name);
  return SQLITE_OK;
}

int VfsRandomness(sqlite3_vfs*, int n, char* out) {
  return DefaultVfs()->xRandomness(DefaultVfs(), n, out);
}
int VfsSleep(sqlite3_vfs*, int micros) { return DefaultVfs()->xSleep(DefaultVfs(), micros); }
int VfsCurrentTime(sqlite3_vfs*, double* out) {
  return DefaultVfs()->xCurrentTime(DefaultVfs(), out);
}
int VfsGetLastError(sqlite3_vfs*, int, char*) { return 0; }
int VfsCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* out) {
  sqlite3_vfs* d = DefaultVfs();
  if (d->iVersion >= 2 && d->xCurrentTimeInt64 != nullptr) return d->xCurrentTimeInt64(d, out);
  double days = 0;
  int rc = d->xCurrentTime(d, &days);
  *out = static_cast<sqlite3_int64>(days * 86400000.0);
  return rc;
}

sqlite3_vfs* StreamVfs() {
  static sqlite3_vfs vfs = [] {
    sqlite3_vfs v;
    std::memset(&v, 0, sizeof v);
    v.iVersion = 2;
    v.szOsFile = sizeof(StreamFile);
    v.mxPathname = kMaxPathname;
    v.zName = kVfsName;
    v.xOpen = VfsOpen;
    v.xDelete = VfsDelete;
    v.xAccess = VfsAccess;
    v.xFullPathname = VfsFullPathname;
    v.xRandomness = VfsRandomness;
    v.xSleep = VfsSleep;
    v.xCurrentTime = VfsCurrentTime;
    v.xGetLastError = VfsGetLastError;
    v.xCurrentTimeInt64 = VfsCurrentTimeInt64;
    return v;
  }();
  static const int registered = sqlite3_vfs_register(&vfs, /*makeDflt=*/0);
  return registered == SQLITE_OK ? &vfs : nullptr;
}

// Registers `state` under a fresh name for the lifetime of the object.
class Registration {
 public:
  explicit Registration(StreamState* state) {
    static std::atomic<uint64_t> counter{0};
    name_ = std::string(kVfsName) + "-" + std::to_string(counter.fetch_add(1));
    MutexLock lock(registry_mu);
    Registry()[name_] = state;
  }
  ~Registration() {
    MutexLock lock(registry_mu);
    Registry().erase(name_);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

struct Closer {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};

}  // namespace

Result<int64_t> StreamSqliteDatabase(sqlite3* source, const std::string& what,
                                     repo::FileSink& sink) {
  sqlite3_vfs* vfs = StreamVfs();
  if (vfs == nullptr)
    return Status::Internal("cannot register the SQLite VFS " + std::string(kVfsName));
  StreamState state;
  state.sink = &sink;
  state.what = what;
  Registration registration(&state);
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(registration.name().c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_EXRESCODE, kVfsName);
  std::unique_ptr<sqlite3, Closer> dest(raw);
  auto failed = [&](int code, sqlite3* db, const std::string& doing) {
    if (!state.error.ok()) return state.error;  // the sink's (or the VFS's) own error
    return sql::StatusFromSqlite(code, db, doing + " " + what);
  };
  if (rc != SQLITE_OK) return failed(rc, raw, "open a streamed copy of");
  rc = sqlite3_exec(raw, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF", nullptr, nullptr,
                    nullptr);
  if (rc != SQLITE_OK) return failed(rc, raw, "configure a streamed copy of");
  sqlite3_backup* backup = sqlite3_backup_init(raw, "main", source, "main");
  if (backup == nullptr) return failed(sqlite3_errcode(raw), raw, "copy");
  // -1: every page in one step, under one read transaction of the source (its open one, if any).
  rc = sqlite3_backup_step(backup, -1);
  int finish_rc = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return failed(rc, raw, "copy");  // source errors land on `raw` too
  if (finish_rc != SQLITE_OK) return failed(finish_rc, raw, "copy");
  if (!state.error.ok()) return state.error;
  rc = sqlite3_close(dest.release());
  if (rc != SQLITE_OK) return Status::Internal("close the streamed copy of " + what);
  return state.size;
}

}  // namespace kb::backup
