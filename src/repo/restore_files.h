// Writing a snapshot's files into a directory (docs/format/BACKUP_REPOSITORY.md, "Restore
// (reader)" steps 1-2). Streamed: the positions of up to 65,536 chunks of one file (~2.6 MB), one
// tree and a few blocks in memory at a time; each batch of a file's chunks is read in pack and
// block order, so every block is fetched and decompressed once per batch however the file's
// chunks are spread over the backups that stored them. Every path is
// validated again (a manifest given by a caller may not come from ReadManifest); every file is
// created exclusively (O_EXCL | O_NOFOLLOW) inside the target; every chunk is checked against
// its id; each file's size must equal the sum of its chunks. Files and directories are fsynced.
// On any failure everything written is removed and the target is left as it was found.
//
// Thread-safety: independent calls may run concurrently (each has its own reader).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "repo/chunk_index.h"
#include "repo/pack_reader.h"
#include "repo/repository.h"
#include "repo/repository_context.h"

namespace kb::repo {

// See Repository::RestoreFiles. FailedPrecondition if `target_dir` exists and is not an empty
// directory; NotFound if a requested project is not in the manifest; Corruption naming the
// object for damaged data. `bytes_read`, when given, receives the bytes fetched from the store.
Status RestoreSnapshotFiles(const RepoContext& ctx, const SnapshotManifest& manifest,
                            const std::vector<std::string>& project_ids,
                            const std::string& target_dir, int64_t* bytes_read = nullptr);

// The bytes of one file of a snapshot, handed to `write(offset, bytes)` in pack and block order
// (a batch of `batch_chunks` chunks at a time), every chunk checked against its id; Corruption
// prefixed with `where` when a tree or chunk cannot be read or the chunks do not add up to the
// file's size. Used by the restore (write = pwrite) and by CopySnapshot (write = the
// destination backup's FileSink).
Status StreamSnapshotFile(ChunkReader& reader, const ChunkMap& map, const SnapshotFile& file,
                          const std::string& where, size_t batch_chunks,
                          const std::function<Status(int64_t, std::string_view)>& write);

}  // namespace kb::repo
