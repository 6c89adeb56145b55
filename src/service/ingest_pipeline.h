// IngestPipeline: how one document becomes searchable. detect the type -> parse -> chunk (or
// take the caller's chunks) -> embed what the caller did not -> commit document and chunks to
// the project's store -> apply the vectors to the project's index. Everything before the commit
// runs on the caller's thread without locks; the commit and the index update happen under the
// project's write_mu, so that the index always reflects a prefix of the journal.
//
// Thread-safety: safe for concurrent use (no state of its own besides the borrowed counters).
#pragma once

#include <string>
#include <vector>

#include "common/status.h"
#include "service/project_handle.h"
#include "service/types.h"

namespace kb {

class IngestPipeline {
 public:
  // `options` and `counters` must outlive the pipeline.
  IngestPipeline(const KbOptions& options, KbCounters* counters);

  // KnowledgeBase::Ingest has the contract; `h` is the resolved project.
  Result<IngestResult> Ingest(ProjectHandle& h, const IngestRequest& req, const Actor& actor);

  // Reads `relative_path` below options.ingest_root (never outside it: symlinks and ".." are
  // resolved first) into a request. PermissionDenied (disabled, or outside the root), NotFound,
  // InvalidArgument (not a regular file), PayloadTooLarge.
  Result<IngestRequest> ReadIngestFile(const std::string& relative_path,
                                       const std::string& metadata_json);

 private:
  // Size, metadata and label checks that need no parsing.
  Status CheckRequest(const IngestRequest& req);
  // Caller-split chunks (with their vectors, for external projects) and the document they make.
  Result<std::vector<ChunkRecord>> ChunksFromCaller(ProjectHandle& h, const IngestRequest& req,
                                                    DocumentRecord* doc);
  // Detects, parses and chunks the content; `*parsed_title` is the parser's title.
  Result<std::vector<ChunkRecord>> ChunksFromContent(ProjectHandle& h, const IngestRequest& req,
                                                     DocumentRecord* doc,
                                                     std::string* parsed_title);
  // Fills in the embedding of every chunk that has none, in batches.
  Status EmbedMissing(ProjectHandle& h, std::vector<ChunkRecord>* chunks);
  // Commits under write_mu and applies the vectors to the index.
  Result<IngestResult> CommitAndIndex(ProjectHandle& h, const DocumentRecord& doc,
                                      std::vector<ChunkRecord> chunks, const Actor& actor);

  const KbOptions& options_;
  KbCounters* counters_;
};

}  // namespace kb
