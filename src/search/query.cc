// The one check of a query's limits: see query.h.
#include "search/query.h"

#include "common/text_util.h"

namespace kb {

namespace {

std::string FieldName(std::string_view naming, std::string_view field) {
  std::string out;
  if (!naming.empty()) out.append(naming).append(" ");
  return out.append("'").append(field).append("'");
}

}  // namespace

Status ValidateTopK(int64_t top_k, std::string_view naming) {
  if (top_k < 1 || top_k > kMaxTopK) {
    return Status::InvalidArgument(FieldName(naming, "top_k") + " must be between 1 and " +
                                   std::to_string(kMaxTopK));
  }
  return Status::OK();
}

Status ValidateOffset(int64_t offset, std::string_view naming) {
  if (offset < 0 || offset > kMaxQueryOffset) {
    return Status::InvalidArgument(FieldName(naming, "offset") + " must be between 0 and " +
                                   std::to_string(kMaxQueryOffset));
  }
  return Status::OK();
}

Status ValidateQuery(const QueryRequest& q, std::string_view naming) {
  const bool blank = TrimWhitespace(q.text).empty();
  if (q.text.empty() && q.vector.empty()) {
    return Status::InvalidArgument("the query is empty: give 'query' text or a 'vector'");
  }
  if (q.text.size() > kMaxQueryBytes) {
    return Status::InvalidArgument("the query is longer than " + std::to_string(kMaxQueryBytes) +
                                   " bytes");
  }
  if (!IsValidUtf8(q.text)) return Status::InvalidArgument("the query is not valid UTF-8");
  if (blank && q.vector.empty()) {
    return Status::InvalidArgument("the query is empty: give 'query' text or a 'vector'");
  }
  KB_RETURN_IF_ERROR(ValidateTopK(q.top_k, naming));
  if (!(q.alpha >= 0.0 && q.alpha <= 1.0)) {
    return Status::InvalidArgument("'alpha' must be between 0 and 1");
  }
  KB_RETURN_IF_ERROR(ValidateOffset(q.offset, naming));
  if (q.mode == SearchMode::kKeyword && blank) {
    return Status::InvalidArgument("keyword search needs query text");
  }
  return Status::OK();
}

}  // namespace kb
