// Sealed boxes as the repository uses them (docs/format/BACKUP_REPOSITORY.md, "Common
// encodings"): the plaintext is zstd-compressed, then sealed with AES-256-GCM under the data key
// with the object's AAD. Opening reverses it and refuses anything that does not authenticate or
// decompress exactly, as Corruption (the caller adds the object's name).
//
// Thread-safety: all functions may be called concurrently (zstd contexts are per thread).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kb::repo {

// zstd at `level`, one frame with its content size recorded.
std::string ZstdCompress(std::string_view data, int level);

// Decompresses exactly one zstd frame whose content size is recorded and at most `max_size`
// bytes; Corruption otherwise.
Result<std::string> ZstdDecompress(std::string_view frame, size_t max_size);

// zstd(level) then SealRaw.
std::string SealCompressed(std::string_view key, std::string_view aad, std::string_view plaintext,
                           int level);

// OpenRaw then ZstdDecompress(max_size).
Result<std::string> OpenCompressed(std::string_view key, std::string_view aad, std::string_view box,
                                   size_t max_size);

}  // namespace kb::repo
