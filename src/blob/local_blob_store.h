// LocalBlobStore: a BlobStore on a local (or mounted) directory, for repositories on a disk, a
// NAS or a removable drive. A key "a/b/c" is the file <root>/a/b/c.
//
// Put writes a temporary file in the target directory whose name is not a valid key segment
// ("~tmp-<random>", so List never returns it), fsyncs it, renames it over the final name and
// fsyncs the directory; directories it creates are fsynced into their parents. A crash therefore
// leaves the old object, the new one, or a temporary leftover that List skips. List walks the
// tree depth-first in key order, holding one sorted directory listing per level.
//
// A key segment longer than the filesystem's name limit (255 bytes on ext4, xfs, btrfs) cannot be
// stored: Put fails with IOError. Empty directories left behind by Delete are kept (removing them
// would race with a concurrent Put into the same directory).
//
// Thread-safety: every method may be called concurrently; the object holds no mutable state.
#pragma once

#include <memory>
#include <string>

#include "blob/blob_store.h"

namespace kb::blob {

class LocalBlobStore final : public BlobStore {
 public:
  // `root` must be an absolute path. If it does not exist: created (with parents) when `create`
  // is true, else FailedPrecondition. InvalidArgument for a relative path or a non-directory.
  static Result<std::unique_ptr<LocalBlobStore>> Open(const std::string& root, bool create);

  std::string Describe() const override;
  Status Put(std::string_view key, std::string_view data) override;
  Result<std::string> Get(std::string_view key) override;
  Result<std::string> GetRange(std::string_view key, int64_t offset, int64_t length) override;
  Result<ObjectInfo> Stat(std::string_view key) override;
  Status Delete(std::string_view key) override;
  Status List(std::string_view prefix,
              const std::function<Status(const ObjectInfo&)>& visit) override;

 private:
  explicit LocalBlobStore(std::string root) : root_(std::move(root)) {}

  std::string RootPath() const;  // root_, or "/" for the filesystem root
  std::string PathOf(std::string_view key) const;
  // Creates the missing directories between root_ and the parent of `key`, each fsynced into
  // its parent. FailedPrecondition if root_ itself has disappeared.
  Status MakeParentDirs(std::string_view key) const;
  // Visits the objects below directory `rel` ("" or "a/b/") that match `prefix`, in key order.
  Status ListDir(const std::string& rel, std::string_view prefix,
                 const std::function<Status(const ObjectInfo&)>& visit) const;

  const std::string root_;  // absolute, without trailing '/'
};

}  // namespace kb::blob
