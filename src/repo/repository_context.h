// What every part of an open repository needs: the store, the clock, the parameters from
// `config`, the unwrapped master key and the chunk id hasher. The parts of src/repo (pack
// writer, index, snapshot writer, restore, verify, prune) are free functions over a
// RepoContext, so each can be read and tested on its own; RepositoryImpl (repository.cc) owns
// the context and ties them to the public interface.
//
// Thread-safety: a RepoContext is immutable after Open; its store is thread-safe, so the
// helpers may be called from several threads.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "common/status.h"
#include "repo/crypto.h"
#include "repo/pack.h"
#include "repo/repository.h"
#include "repo/repository_format.h"

namespace kb::repo {

struct RepoContext {
  blob::BlobStore* store = nullptr;
  const Clock* clock = nullptr;
  std::string repo_id;
  RepositoryParams params;
  FormatLimits limits;
  MasterKey key;
  std::unique_ptr<ChunkIdHasher> hasher;
  // Index objects are written after this many packs (the format's 64; tests lower it to see
  // several index objects from a few MB).
  int packs_per_index = kPacksPerIndex;

  std::string_view data_key() const { return key.data_key.view(); }
  int64_t NowMs() const { return clock->NowMillis(); }

  // Get; NotFound and I/O errors pass through with the key named by the store.
  Result<std::string> Get(std::string_view key) const;
  // Get + open a compressed sealed box; Corruption "<key>: <reason>".
  Result<std::string> ReadSealed(std::string_view key, std::string_view aad) const;
  // Seal (compressed) and Put. Returns the number of bytes stored.
  Result<int64_t> WriteSealed(std::string_view key, std::string_view aad,
                              std::string_view plaintext) const;

  // JSON in a sealed box with a "version" field: Corruption for malformed JSON or a missing
  // version, FailedPrecondition (VersionTooNew) for a version above `known`.
  Result<nlohmann::json> ReadSealedJson(std::string_view key, std::string_view aad,
                                        int known_version) const;
  Result<int64_t> WriteSealedJson(std::string_view key, std::string_view aad,
                                  const nlohmann::json& j) const;
};

// The context of a repository opened by Repository::Open / Init (nullptr for any other
// implementation): for the parts that work beside the interface (copies, journal segments).
const RepoContext* ContextOf(Repository& repo);

// Parses `text` as one JSON object with an integer "version" <= known. Errors name `object`.
Result<nlohmann::json> ParseVersionedJson(std::string_view object, std::string_view text,
                                          int known_version);

// Typed field readers for JSON read from the repository: Corruption naming object and field.
Result<std::string> JsonString(const nlohmann::json& j, std::string_view field,
                               std::string_view object);
Result<int64_t> JsonInt(const nlohmann::json& j, std::string_view field, std::string_view object);

}  // namespace kb::repo
