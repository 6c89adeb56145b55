// LocalBlobStore: objects as files below a root directory (see local_blob_store.h).
#include "blob/local_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/crypto_util.h"
#include "common/file_util.h"

namespace kb::blob {

namespace {

constexpr std::string_view kTempPrefix = "~tmp-";  // '~' is not a key character

Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  return Status::IOError(std::string(what) + " " + path + ": " + strerror(err));
}

// Reads exactly `length` bytes at `offset` (the caller checked they exist).
Result<std::string> PreadAll(int fd, int64_t offset, int64_t length, const std::string& path) {
  std::string out(static_cast<size_t>(length), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = pread(fd, out.data() + done, out.size() - done,
                      static_cast<off_t>(offset + static_cast<int64_t>(done)));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", path, errno);
    }
    if (n == 0) return Status::IOError("read " + path + ": file shrank while being read");
    done += static_cast<size_t>(n);
  }
  return out;
}

std::string ParentDir(const std::string& path) { return path.substr(0, path.rfind('/')); }

bool IsKeySegment(std::string_view name) {
  // ValidateKey on a single segment: also rejects temp files and anything foreign.
  return name.find('/') == std::string_view::npos && ValidateKey(name).ok();
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// An entry of one directory listing; `sort_key` is the relative path, with a trailing '/' for
// directories, so that sorting siblings by it orders the whole tree by key.
struct DirEntry {
  std::string sort_key;
  bool is_dir = false;
};

}  // namespace

Result<std::unique_ptr<LocalBlobStore>> LocalBlobStore::Open(const std::string& root, bool create) {
  if (root.empty() || root[0] != '/') {
    return Status::InvalidArgument("blob store root must be an absolute path: '" + root + "'");
  }
  std::string clean = root;
  while (!clean.empty() && clean.back() == '/') clean.pop_back();
  std::string shown = clean.empty() ? "/" : clean;
  struct stat st;
  if (stat(shown.c_str(), &st) != 0) {
    if (errno != ENOENT) return ErrnoStatus("stat", shown, errno);
    if (!create) {
      return Status::FailedPrecondition("blob store directory " + shown + " does not exist");
    }
    KB_RETURN_IF_ERROR(MakeDirs(shown, 0700));
    KB_RETURN_IF_ERROR(FsyncPath(ParentDir(shown).empty() ? "/" : ParentDir(shown)));
  } else if (!S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("blob store root " + shown + " is not a directory");
  }
  return std::unique_ptr<LocalBlobStore>(new LocalBlobStore(std::move(clean)));
}

std::string LocalBlobStore::RootPath() const { return root_.empty() ? "/" : root_; }

std::string LocalBlobStore::Describe() const { return "file://" + RootPath(); }

std::string LocalBlobStore::PathOf(std::string_view key) const {
  std::string path = root_;
  path += '/';
  path += key;
  return path;
}

Status LocalBlobStore::MakeParentDirs(std::string_view key) const {
  std::string path = root_;
  size_t start = 0;
  for (size_t slash = key.find('/'); slash != std::string_view::npos;
       start = slash + 1, slash = key.find('/', start)) {
    std::string parent = path.empty() ? "/" : path;  // root_ is "" for "/"
    path += '/';
    path += key.substr(start, slash - start);
    if (mkdir(path.c_str(), 0700) == 0) {
      KB_RETURN_IF_ERROR(FsyncPath(parent));
      continue;
    }
    if (errno == ENOENT) {
      return Status::FailedPrecondition("blob store directory " + Describe() + " disappeared");
    }
    if (errno != EEXIST) return ErrnoStatus("mkdir", path, errno);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) return ErrnoStatus("stat", path, errno);
    if (!S_ISDIR(st.st_mode)) {
      return Status::IOError("cannot store key '" + std::string(key) + "': " + path +
                             " is not a directory");
    }
  }
  return Status::OK();
}

Status LocalBlobStore::Put(std::string_view key, std::string_view data) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  KB_RETURN_IF_ERROR(MakeParentDirs(key));
  const std::string path = PathOf(key);
  const std::string dir = ParentDir(path);
  const std::string tmp = dir + "/" + std::string(kTempPrefix) + HexEncode(RandomBytes(8));
  ScopedFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    if (errno == ENOENT) {
      return Status::FailedPrecondition("blob store directory " + Describe() + " disappeared");
    }
    return ErrnoStatus("create", tmp, errno);
  }
  Status s = WriteFully(fd.get(), data, tmp);
  if (s.ok() && fsync(fd.get()) != 0) s = ErrnoStatus("fsync", tmp, errno);
  if (fd.Close() != 0 && s.ok()) s = ErrnoStatus("close", tmp, errno);
  if (s.ok() && rename(tmp.c_str(), path.c_str()) != 0) s = ErrnoStatus("rename", tmp, errno);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  return FsyncPath(dir);
}

Result<std::string> LocalBlobStore::Get(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  return GetRange(key, 0, INT64_MAX);
}

Result<std::string> LocalBlobStore::GetRange(std::string_view key, int64_t offset, int64_t length) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  if (offset < 0 || length < 0) {
    return Status::InvalidArgument("negative range of '" + std::string(key) + "'");
  }
  const std::string path = PathOf(key);
  ScopedFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status::NotFound("no object '" + std::string(key) + "' in " + Describe());
    }
    return ErrnoStatus("open", path, errno);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoStatus("stat", path, errno);
  if (!S_ISREG(st.st_mode)) {
    return Status::NotFound("no object '" + std::string(key) + "' in " + Describe());
  }
  const int64_t size = st.st_size;
  if (offset > size) {
    return Status::InvalidArgument("range of '" + std::string(key) + "' starts at " +
                                   std::to_string(offset) + ", past its end (" +
                                   std::to_string(size) + " bytes)");
  }
  return PreadAll(fd.get(), offset, std::min(length, size - offset), path);
}

Result<ObjectInfo> LocalBlobStore::Stat(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return Status::NotFound("no object '" + std::string(key) + "' in " + Describe());
    }
    return ErrnoStatus("stat", path, errno);
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::NotFound("no object '" + std::string(key) + "' in " + Describe());
  }
  return ObjectInfo{std::string(key), static_cast<int64_t>(st.st_size)};
}

Status LocalBlobStore::Delete(std::string_view key) {
  KB_RETURN_IF_ERROR(ValidateKey(key));
  const std::string path = PathOf(key);
  if (unlink(path.c_str()) != 0) {
    // Missing (or a directory, which is not an object): nothing to delete.
    if (errno == ENOENT || errno == ENOTDIR || errno == EISDIR) return Status::OK();
    return ErrnoStatus("unlink", path, errno);
  }
  return FsyncPath(ParentDir(path));
}

Status LocalBlobStore::List(std::string_view prefix,
                            const std::function<Status(const ObjectInfo&)>& visit) {
  KB_RETURN_IF_ERROR(ValidatePrefix(prefix));
  struct stat st;
  if (stat(RootPath().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::FailedPrecondition("blob store directory " + Describe() + " does not exist");
  }
  return ListDir("", prefix, visit);
}

Status LocalBlobStore::ListDir(const std::string& rel, std::string_view prefix,
                               const std::function<Status(const ObjectInfo&)>& visit) const {
  const std::string dir_path = root_ + "/" + rel;
  DIR* dir = opendir(dir_path.c_str());
  if (dir == nullptr) {
    // Deleted while we walked: it holds nothing any more.
    if (errno == ENOENT || errno == ENOTDIR) return Status::OK();
    return ErrnoStatus("opendir", dir_path, errno);
  }
  std::vector<DirEntry> entries;
  errno = 0;
  while (const dirent* e = readdir(dir)) {
    std::string_view name = e->d_name;
    if (!IsKeySegment(name)) continue;  // ".", "..", temporary files, foreign names
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
      struct stat st;
      if (stat((dir_path + std::string(name)).c_str(), &st) != 0) continue;
      is_dir = S_ISDIR(st.st_mode);
    }
    std::string sort_key = rel + std::string(name) + (is_dir ? "/" : "");
    if (sort_key.size() > kMaxKeyBytes) continue;  // nothing below can be a valid key
    // Keep a file only if it matches the prefix, a directory only if keys below it can.
    bool wanted = StartsWith(sort_key, prefix) || (is_dir && StartsWith(prefix, sort_key));
    if (wanted) entries.push_back({std::move(sort_key), is_dir});
    errno = 0;
  }
  const int read_errno = errno;
  closedir(dir);
  if (read_errno != 0) return ErrnoStatus("readdir", dir_path, read_errno);

  std::sort(entries.begin(), entries.end(),
            [](const DirEntry& a, const DirEntry& b) { return a.sort_key < b.sort_key; });
  for (const DirEntry& entry : entries) {
    if (entry.is_dir) {
      KB_RETURN_IF_ERROR(ListDir(entry.sort_key, prefix, visit));
      continue;
    }
    if (!ValidateKey(entry.sort_key).ok()) continue;  // too long to be a key
    struct stat st;
    if (stat(PathOf(entry.sort_key).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;  // deleted (or replaced by a directory) since the directory was read
    }
    KB_RETURN_IF_ERROR(visit(ObjectInfo{entry.sort_key, static_cast<int64_t>(st.st_size)}));
  }
  return Status::OK();
}

}  // namespace kb::blob
