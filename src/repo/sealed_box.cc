// zstd with one reusable context per thread: a fresh context per 1 MiB block would allocate and
// clear several megabytes each time.
#include "repo/sealed_box.h"

#include <zstd.h>

#include <cstdio>
#include <cstdlib>

#include "repo/crypto.h"
#include "repo/repository_format.h"

namespace kb::repo {

namespace {

struct CCtxHolder {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  int level = 0;  // the parameters set on ctx, 0 = none yet
  ~CCtxHolder() { ZSTD_freeCCtx(ctx); }
};
struct DCtxHolder {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  ~DCtxHolder() { ZSTD_freeDCtx(ctx); }
};

}  // namespace

std::string ZstdCompress(std::string_view data, int level) {
  thread_local CCtxHolder holder;
  if (holder.level != level) {
    // The level's parameters with a shorter minimum match ("Compression" in the format doc).
    // Parameters stay set across frames; ZSTD_compress2 writes the content size, as before.
    ZSTD_CCtx_reset(holder.ctx, ZSTD_reset_session_and_parameters);
    ZSTD_CCtx_setParameter(holder.ctx, ZSTD_c_compressionLevel, level);
    ZSTD_CCtx_setParameter(holder.ctx, ZSTD_c_minMatch, kZstdMinMatch);
    holder.level = level;
  }
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(holder.ctx, out.data(), out.size(), data.data(), data.size());
  if (ZSTD_isError(n)) {
    // Only possible with a broken library or no memory: a backup must not continue silently.
    fprintf(stderr, "fatal: zstd compression failed: %s\n", ZSTD_getErrorName(n));
    abort();
  }
  out.resize(n);
  return out;
}

Result<std::string> ZstdDecompress(std::string_view frame, size_t max_size) {
  thread_local DCtxHolder holder;
  size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size) || frame_size != frame.size()) {
    return Status::Corruption("not exactly one zstd frame");
  }
  unsigned long long content = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (content == ZSTD_CONTENTSIZE_UNKNOWN || content == ZSTD_CONTENTSIZE_ERROR) {
    return Status::Corruption("zstd frame without a content size");
  }
  if (content > max_size) {
    return Status::Corruption("zstd frame of " + std::to_string(content) +
                              " bytes exceeds the limit of " + std::to_string(max_size));
  }
  std::string out(static_cast<size_t>(content), '\0');
  size_t n = ZSTD_decompressDCtx(holder.ctx, out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != out.size()) {
    return Status::Corruption("zstd decompression failed");
  }
  return out;
}

std::string SealCompressed(std::string_view key, std::string_view aad, std::string_view plaintext,
                           int level) {
  return SealRaw(key, aad, ZstdCompress(plaintext, level));
}

Result<std::string> OpenCompressed(std::string_view key, std::string_view aad, std::string_view box,
                                   size_t max_size) {
  KB_ASSIGN_OR_RETURN(std::string frame, OpenRaw(key, aad, box));
  return ZstdDecompress(frame, max_size);
}

}  // namespace kb::repo
