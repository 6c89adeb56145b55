// One document from bytes (or caller chunks) to the store and the index: see ingest_pipeline.h.
#include "service/ingest_pipeline.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/crypto_util.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "ingest/parser.h"

namespace kb {

using nlohmann::json;

namespace {

constexpr size_t kMaxProvidedChunks = 100000;
constexpr size_t kEmbedBatch = 256;

std::string ChunkField(size_t i, const std::string& rest) {
  return "chunks[" + std::to_string(i) + "]." + rest;
}

}  // namespace

IngestPipeline::IngestPipeline(const KbOptions& options, KbCounters* counters)
    : options_(options), counters_(counters) {}

Result<IngestResult> IngestPipeline::Ingest(ProjectHandle& h, const IngestRequest& req,
                                            const Actor& actor) {
  KB_RETURN_IF_ERROR(CheckRequest(req));
  DocumentRecord doc;
  std::string parsed_title;
  std::vector<ChunkRecord> chunks;
  if (!req.chunks.empty()) {
    KB_ASSIGN_OR_RETURN(chunks, ChunksFromCaller(h, req, &doc));
  } else {
    KB_ASSIGN_OR_RETURN(chunks, ChunksFromContent(h, req, &doc, &parsed_title));
  }
  KB_RETURN_IF_ERROR(EmbedMissing(h, &chunks));

  doc.title = !req.title.empty() ? req.title : !parsed_title.empty() ? parsed_title : req.filename;
  if (doc.title.size() > kMaxTitleBytes || !IsValidUtf8(doc.title)) {
    doc.title = SanitizeUtf8(doc.title.substr(0, kMaxTitleBytes));
  }
  doc.source = !req.source.empty() ? req.source : req.filename;
  doc.metadata_json = CanonicalJson(req.metadata_json);
  doc.chunk_count = static_cast<int>(chunks.size());
  return CommitAndIndex(h, doc, std::move(chunks), actor);
}

Status IngestPipeline::CheckRequest(const IngestRequest& req) {
  if (static_cast<int64_t>(req.content.size()) > options_.max_document_bytes) {
    return Status::PayloadTooLarge("document is larger than " +
                                   std::to_string(options_.max_document_bytes) + " bytes");
  }
  KB_RETURN_IF_ERROR(ValidateMetadata(req.metadata_json));
  KB_RETURN_IF_ERROR(ValidateLabel("title", req.title, kMaxTitleBytes));
  KB_RETURN_IF_ERROR(ValidateLabel("source", req.source, kMaxSourceBytes));
  KB_RETURN_IF_ERROR(ValidateLabel("filename", req.filename, kMaxSourceBytes));
  return Status::OK();
}

Result<std::vector<ChunkRecord>> IngestPipeline::ChunksFromCaller(ProjectHandle& h,
                                                                  const IngestRequest& req,
                                                                  DocumentRecord* doc) {
  if (req.chunks.size() > kMaxProvidedChunks) {
    return Status::InvalidArgument("at most " + std::to_string(kMaxProvidedChunks) +
                                   " chunks per document");
  }
  const bool external = h.external();
  const int dim = h.embedder->Dimension();
  std::vector<ChunkRecord> chunks;
  // Caller-split chunks: the document text is their concatenation, so offsets stay truthful.
  std::string hash_input;
  size_t offset = 0;
  for (size_t i = 0; i < req.chunks.size(); ++i) {
    const ProvidedChunk& pc = req.chunks[i];
    if (TrimWhitespace(pc.text).empty()) {
      return Status::InvalidArgument(ChunkField(i, "text is empty"));
    }
    if (!IsValidUtf8(pc.text)) {
      return Status::InvalidArgument(ChunkField(i, "text is not valid UTF-8"));
    }
    ChunkRecord c;
    c.ordinal = static_cast<int>(i);
    c.text = pc.text;
    c.start_offset = static_cast<int64_t>(offset);
    c.end_offset = static_cast<int64_t>(offset + pc.text.size());
    offset += pc.text.size() + 2;
    if (!pc.embedding.empty()) {
      if (!external) {
        return Status::InvalidArgument(
            "this project embeds text with '" + h.embedder->Name() +
            "'; caller vectors are accepted only by projects created with embedder kind "
            "'external'");
      }
      if (static_cast<int>(pc.embedding.size()) != dim) {
        return Status::InvalidArgument(ChunkField(i, "embedding has ") +
                                       std::to_string(pc.embedding.size()) +
                                       " dimensions; the project expects " + std::to_string(dim));
      }
      c.embedding = pc.embedding;
      if (!AllFinite(c.embedding) || !NormalizeL2(&c.embedding)) {
        return Status::InvalidArgument(ChunkField(i, "embedding must be finite and non-zero"));
      }
    } else if (external) {
      return Status::InvalidArgument(ChunkField(i,
                                                "embedding is required: this project takes "
                                                "vectors from the caller"));
    }
    hash_input += pc.text;
    hash_input.push_back('\0');
    hash_input.append(reinterpret_cast<const char*>(c.embedding.data()),
                      c.embedding.size() * sizeof(float));
    chunks.push_back(std::move(c));
  }
  doc->content_type = "application/x-kb-chunks";
  doc->content_hash = Sha256Hex(hash_input);
  doc->bytes = static_cast<int64_t>(offset >= 2 ? offset - 2 : 0);
  return chunks;
}

Result<std::vector<ChunkRecord>> IngestPipeline::ChunksFromContent(ProjectHandle& h,
                                                                   const IngestRequest& req,
                                                                   DocumentRecord* doc,
                                                                   std::string* parsed_title) {
  if (h.external()) {
    return Status::FailedPrecondition(
        "this project takes vectors from the caller: send \"chunks\" with embeddings");
  }
  KB_ASSIGN_OR_RETURN(ContentType type,
                      DetectContentType(req.declared_mime, req.filename, req.content));
  KB_ASSIGN_OR_RETURN(ParsedDocument parsed, ParseDocument(type, req.content));
  *parsed_title = parsed.title;
  std::vector<TextChunk> text_chunks = ChunkDocument(parsed, h.chunking);
  if (text_chunks.empty()) return Status::Unprocessable("the document has no text");
  std::vector<ChunkRecord> chunks;
  for (size_t i = 0; i < text_chunks.size(); ++i) {
    ChunkRecord c;
    c.ordinal = static_cast<int>(i);
    c.text = std::move(text_chunks[i].text);
    c.heading_path = std::move(text_chunks[i].heading_path);
    c.start_offset = static_cast<int64_t>(text_chunks[i].start);
    c.end_offset = static_cast<int64_t>(text_chunks[i].end);
    chunks.push_back(std::move(c));
  }
  doc->content_type = std::string(ContentTypeMime(type));
  doc->content_hash = Sha256Hex(req.content);
  doc->bytes = static_cast<int64_t>(req.content.size());
  return chunks;
}

Status IngestPipeline::EmbedMissing(ProjectHandle& h, std::vector<ChunkRecord>* chunks) {
  std::vector<size_t> to_embed;
  for (size_t i = 0; i < chunks->size(); ++i)
    if ((*chunks)[i].embedding.empty()) to_embed.push_back(i);
  for (size_t start = 0; start < to_embed.size(); start += kEmbedBatch) {
    size_t end = std::min(to_embed.size(), start + kEmbedBatch);
    std::vector<std::string> texts;
    for (size_t k = start; k < end; ++k) texts.push_back((*chunks)[to_embed[k]].text);
    KB_ASSIGN_OR_RETURN(auto vectors, h.embedder->Embed(texts));
    if (vectors.size() != texts.size()) {
      return Status::Internal("embedder returned " + std::to_string(vectors.size()) +
                              " vectors for " + std::to_string(texts.size()) + " texts");
    }
    for (size_t k = start; k < end; ++k)
      (*chunks)[to_embed[k]].embedding = std::move(vectors[k - start]);
  }
  return Status::OK();
}

Result<IngestResult> IngestPipeline::CommitAndIndex(ProjectHandle& h, const DocumentRecord& doc,
                                                    std::vector<ChunkRecord> chunks,
                                                    const Actor& actor) {
  // Keep the embeddings for the index: the store takes ownership of the chunk records.
  std::vector<std::vector<float>> embeddings;
  embeddings.reserve(chunks.size());
  for (const auto& c : chunks) embeddings.push_back(c.embedding);

  MutexLock lock(h.write_mu);
  KB_ASSIGN_OR_RETURN(PutDocumentResult put,
                      h.store->PutDocument(doc, std::move(chunks), actor.id));
  IngestResult result;
  result.document = put.document;
  result.outcome = put.outcome;
  result.lsn = put.lsn;
  if (put.outcome == PutOutcome::kUnchanged) {
    counters_->documents_unchanged++;
    return result;
  }
  for (int64_t id : put.removed_chunk_ids) h.index->Remove(id);
  embeddings.resize(std::min(embeddings.size(), put.chunk_ids.size()));
  Status indexed = h.index->UpsertBatch(put.chunk_ids, embeddings);
  if (!indexed.ok()) {
    // The document is durable; only the derived index is behind. It is rebuilt from the
    // database at the next start (the saved index's LSN is not advanced past this entry).
    LogError("index update failed after commit", json{{"error", indexed.ToString()}}.dump());
    h.index_stale = true;
    h.generation++;
    return result;
  }
  h.applied_lsn = put.lsn;
  h.dirty = true;
  h.generation++;
  counters_->documents_ingested++;
  counters_->chunks_ingested += static_cast<int64_t>(put.chunk_ids.size());
  return result;
}

Result<IngestRequest> IngestPipeline::ReadIngestFile(const std::string& relative_path,
                                                     const std::string& metadata_json) {
  if (options_.ingest_root.empty()) {
    return Status::PermissionDenied("file ingestion is disabled (no ingest root is configured)");
  }
  if (relative_path.empty()) return Status::InvalidArgument("file_path is empty");
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path root = fs::canonical(options_.ingest_root, ec);
  if (ec) return Status::FailedPrecondition("ingest root does not exist: " + options_.ingest_root);
  fs::path requested =
      fs::path(relative_path).is_absolute() ? fs::path(relative_path) : root / relative_path;
  // canonical() resolves symlinks and "..": whatever the caller wrote, the real file must lie
  // inside the root.
  fs::path real = fs::canonical(requested, ec);
  if (ec) return Status::NotFound("file not found: " + relative_path);
  auto rel = real.lexically_relative(root);
  if (rel.empty() || *rel.begin() == "..") {
    return Status::PermissionDenied("file_path is outside the ingest root");
  }
  if (!fs::is_regular_file(real, ec))
    return Status::InvalidArgument("not a regular file: " + relative_path);
  auto size = fs::file_size(real, ec);
  if (!ec && static_cast<int64_t>(size) > options_.max_document_bytes) {
    return Status::PayloadTooLarge("file is larger than " +
                                   std::to_string(options_.max_document_bytes) + " bytes");
  }
  KB_ASSIGN_OR_RETURN(std::string content, ReadFile(real.string()));
  IngestRequest req;
  req.content = std::move(content);
  req.filename = real.filename().string();
  req.source = rel.string();
  req.metadata_json = metadata_json.empty() ? "{}" : metadata_json;
  return req;
}

}  // namespace kb
