// Implementation of the journal payload codec (docs/format/JOURNAL.md).
#include "store/journal_codec.h"

#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/crypto_util.h"

namespace kb::store {
namespace {

using json = nlohmann::json;

json IdsToJson(const std::vector<int64_t>& ids) {
  json a = json::array();
  for (int64_t id : ids) a.push_back(id);
  return a;
}

// Parses the envelope; nlohmann exceptions are confined to this file and become Corruption.
Result<json> ParseVersioned(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption("journal payload is not a JSON object");
  }
  auto v = j.find("v");
  if (v == j.end() || !v->is_number_integer()) {
    return Status::Corruption("journal payload has no version");
  }
  if (v->get<int64_t>() != kJournalPayloadVersion) {
    return Status::Corruption("journal payload version " + std::to_string(v->get<int64_t>()) +
                              " is not supported (this binary knows " +
                              std::to_string(kJournalPayloadVersion) + ")");
  }
  return j;
}

std::vector<float> DecodeEmbeddingField(const json& j) {
  auto bytes = Base64Decode(j.get<std::string>());
  if (!bytes) throw std::runtime_error("embedding is not base64");
  auto floats = EmbeddingFromBytes(*bytes);
  if (!floats) throw std::runtime_error("embedding size is not a multiple of 4");
  return std::move(*floats);
}

std::vector<int64_t> IdsFromJson(const json& j) {
  std::vector<int64_t> ids;
  for (const auto& e : j) ids.push_back(e.get<int64_t>());
  return ids;
}

template <typename T, typename Fn>
Result<T> Decode(std::string_view text, Fn&& fn) {
  KB_ASSIGN_OR_RETURN(json j, ParseVersioned(text));
  try {
    return fn(j);
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("journal payload: ") + e.what());
  }
}

}  // namespace

std::string EmbeddingToBytes(std::span<const float> embedding) {
  std::string out(embedding.size() * 4, '\0');
  for (size_t i = 0; i < embedding.size(); ++i) {
    uint32_t u = std::bit_cast<uint32_t>(embedding[i]);
    for (int b = 0; b < 4; ++b)
      out[i * 4 + static_cast<size_t>(b)] = static_cast<char>(u >> (8 * b));
  }
  return out;
}

std::optional<std::vector<float>> EmbeddingFromBytes(std::string_view bytes) {
  if (bytes.size() % 4 != 0) return std::nullopt;
  std::vector<float> out(bytes.size() / 4);
  for (size_t i = 0; i < out.size(); ++i) {
    uint32_t u = 0;
    for (int b = 3; b >= 0; --b) {
      u = (u << 8) | static_cast<uint8_t>(bytes[i * 4 + static_cast<size_t>(b)]);
    }
    out[i] = std::bit_cast<float>(u);
  }
  return out;
}

std::string EncodePayload(const PutPayload& p) {
  const DocumentRecord& d = p.document;
  json doc = {{"id", d.id},
              {"title", d.title},
              {"source", d.source},
              {"content_type", d.content_type},
              {"content_hash", d.content_hash},
              {"metadata", d.metadata_json},
              {"chunk_count", d.chunk_count},
              {"bytes", d.bytes},
              {"created_at_ms", d.created_at_ms},
              {"updated_at_ms", d.updated_at_ms}};
  json chunks = json::array();
  for (const ChunkRecord& c : p.chunks) {
    chunks.push_back({{"id", c.id},
                      {"ordinal", c.ordinal},
                      {"text", c.text},
                      {"heading_path", c.heading_path},
                      {"start_offset", c.start_offset},
                      {"end_offset", c.end_offset},
                      {"embedding", Base64Encode(EmbeddingToBytes(c.embedding))}});
  }
  // ordered_json keeps "v" first, as the spec shows it; readers do not depend on order.
  nlohmann::ordered_json out;
  out["v"] = kJournalPayloadVersion;
  out["document"] = doc;
  out["replaced"] = p.replaced;
  out["removed_chunk_ids"] = IdsToJson(p.removed_chunk_ids);
  out["chunks"] = chunks;
  return out.dump();
}

std::string EncodePayload(const DeletePayload& p) {
  nlohmann::ordered_json out;
  out["v"] = kJournalPayloadVersion;
  out["document_id"] = p.document_id;
  out["deleted_at_ms"] = p.deleted_at_ms;
  out["deleted_by"] = p.deleted_by;
  out["updated_at_ms"] = p.updated_at_ms;
  out["chunk_ids"] = IdsToJson(p.chunk_ids);
  return out.dump();
}

std::string EncodePayload(const UndeletePayload& p) {
  json chunks = json::array();
  for (const auto& [id, emb] : p.chunks) {
    chunks.push_back({{"id", id}, {"embedding", Base64Encode(EmbeddingToBytes(emb))}});
  }
  nlohmann::ordered_json out;
  out["v"] = kJournalPayloadVersion;
  out["document_id"] = p.document_id;
  out["updated_at_ms"] = p.updated_at_ms;
  out["chunks"] = chunks;
  return out.dump();
}

std::string EncodePayload(const PurgePayload& p) {
  nlohmann::ordered_json out;
  out["v"] = kJournalPayloadVersion;
  out["document_id"] = p.document_id;
  out["chunk_ids"] = IdsToJson(p.chunk_ids);
  return out.dump();
}

std::string EncodePayload(const ScrubbedPayload& p) {
  nlohmann::ordered_json out;
  out["v"] = kJournalPayloadVersion;
  out["document_id"] = p.document_id;
  out["original_op"] = p.original_op;
  out["purged_at_lsn"] = p.purged_at_lsn;
  out["chunk_ids"] = IdsToJson(p.chunk_ids);
  out["removed_chunk_ids"] = IdsToJson(p.removed_chunk_ids);
  return out.dump();
}

Result<ScrubbedPayload> DecodeScrubbedPayload(std::string_view text) {
  return Decode<ScrubbedPayload>(text, [](const json& j) {
    ScrubbedPayload p;
    p.document_id = j.at("document_id").get<std::string>();
    p.original_op = j.at("original_op").get<std::string>();
    p.purged_at_lsn = j.at("purged_at_lsn").get<int64_t>();
    p.chunk_ids = IdsFromJson(j.at("chunk_ids"));
    p.removed_chunk_ids = IdsFromJson(j.at("removed_chunk_ids"));
    return p;
  });
}

Result<PutPayload> DecodePutPayload(std::string_view text) {
  return Decode<PutPayload>(text, [](const json& j) {
    PutPayload p;
    const json& d = j.at("document");
    p.document.id = d.at("id").get<std::string>();
    p.document.title = d.at("title").get<std::string>();
    p.document.source = d.at("source").get<std::string>();
    p.document.content_type = d.at("content_type").get<std::string>();
    p.document.content_hash = d.at("content_hash").get<std::string>();
    p.document.metadata_json = d.at("metadata").get<std::string>();
    p.document.chunk_count = d.at("chunk_count").get<int>();
    p.document.bytes = d.at("bytes").get<int64_t>();
    p.document.created_at_ms = d.at("created_at_ms").get<int64_t>();
    p.document.updated_at_ms = d.at("updated_at_ms").get<int64_t>();
    p.replaced = j.at("replaced").get<bool>();
    p.removed_chunk_ids = IdsFromJson(j.at("removed_chunk_ids"));
    for (const auto& c : j.at("chunks")) {
      ChunkRecord r;
      r.id = c.at("id").get<int64_t>();
      r.document_id = p.document.id;
      r.ordinal = c.at("ordinal").get<int>();
      r.text = c.at("text").get<std::string>();
      r.heading_path = c.at("heading_path").get<std::string>();
      r.start_offset = c.at("start_offset").get<int64_t>();
      r.end_offset = c.at("end_offset").get<int64_t>();
      r.embedding = DecodeEmbeddingField(c.at("embedding"));
      p.chunks.push_back(std::move(r));
    }
    return p;
  });
}

Result<DeletePayload> DecodeDeletePayload(std::string_view text) {
  return Decode<DeletePayload>(text, [](const json& j) {
    DeletePayload p;
    p.document_id = j.at("document_id").get<std::string>();
    p.deleted_at_ms = j.at("deleted_at_ms").get<int64_t>();
    p.deleted_by = j.at("deleted_by").get<std::string>();
    p.updated_at_ms = j.at("updated_at_ms").get<int64_t>();
    p.chunk_ids = IdsFromJson(j.at("chunk_ids"));
    return p;
  });
}

Result<UndeletePayload> DecodeUndeletePayload(std::string_view text) {
  return Decode<UndeletePayload>(text, [](const json& j) {
    UndeletePayload p;
    p.document_id = j.at("document_id").get<std::string>();
    p.updated_at_ms = j.at("updated_at_ms").get<int64_t>();
    for (const auto& c : j.at("chunks")) {
      p.chunks.emplace_back(c.at("id").get<int64_t>(), DecodeEmbeddingField(c.at("embedding")));
    }
    return p;
  });
}

Result<PurgePayload> DecodePurgePayload(std::string_view text) {
  return Decode<PurgePayload>(text, [](const json& j) {
    PurgePayload p;
    p.document_id = j.at("document_id").get<std::string>();
    p.chunk_ids = IdsFromJson(j.at("chunk_ids"));
    return p;
  });
}

}  // namespace kb::store
