// Encoding and decoding of journal payloads (docs/format/JOURNAL.md, version 1) and of embeddings
// as little-endian float32 bytes. Kept apart from ProjectStore so that the format has one home:
// the writer, replay and DecodeIndexDelta all go through these functions.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"
#include "store/project_store.h"

namespace kb::store {

inline constexpr int kJournalPayloadVersion = 1;
inline constexpr std::string_view kOpPutDocument = "put_document";
inline constexpr std::string_view kOpDeleteDocument = "delete_document";
inline constexpr std::string_view kOpUndeleteDocument = "undelete_document";
inline constexpr std::string_view kOpPurgeDocument = "purge_document";
// An entry whose content was removed when its document was purged (JOURNAL.md section 2).
inline constexpr std::string_view kOpScrubbed = "scrubbed";

// dimension x float32, little-endian, no header (the chunks.embedding BLOB).
std::string EmbeddingToBytes(std::span<const float> embedding);
// nullopt if the size is not a multiple of 4.
std::optional<std::vector<float>> EmbeddingFromBytes(std::string_view bytes);

struct PutPayload {
  DocumentRecord document;  // deleted_at/deleted_by are always empty
  bool replaced = false;
  std::vector<int64_t> removed_chunk_ids;
  std::vector<ChunkRecord> chunks;  // document_id filled from document.id on decode
};

struct DeletePayload {
  std::string document_id;
  int64_t deleted_at_ms = 0;
  std::string deleted_by;
  int64_t updated_at_ms = 0;
  std::vector<int64_t> chunk_ids;
};

struct UndeletePayload {
  std::string document_id;
  int64_t updated_at_ms = 0;
  std::vector<std::pair<int64_t, std::vector<float>>> chunks;  // id, embedding
};

struct PurgePayload {
  std::string document_id;
  std::vector<int64_t> chunk_ids;
};

// What remains of a put_document or undelete_document entry of a purged document: which
// document and chunks it touched (for index catch-up), never their content.
struct ScrubbedPayload {
  std::string document_id;
  std::string original_op;
  int64_t purged_at_lsn = 0;  // the purge_document entry that scrubbed it
  std::vector<int64_t> chunk_ids;          // chunks the original entry added or undeleted
  std::vector<int64_t> removed_chunk_ids;  // chunks it removed (a replacing put)
};

std::string EncodePayload(const PutPayload& p);
std::string EncodePayload(const ScrubbedPayload& p);
std::string EncodePayload(const DeletePayload& p);
std::string EncodePayload(const UndeletePayload& p);
std::string EncodePayload(const PurgePayload& p);

// Corruption if the payload is not valid JSON, has an unknown version, or misses a field.
Result<PutPayload> DecodePutPayload(std::string_view json);
Result<DeletePayload> DecodeDeletePayload(std::string_view json);
Result<UndeletePayload> DecodeUndeletePayload(std::string_view json);
Result<PurgePayload> DecodePurgePayload(std::string_view json);
Result<ScrubbedPayload> DecodeScrubbedPayload(std::string_view json);

}  // namespace kb::store
