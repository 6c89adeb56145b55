// The field rules of service/types.h.
#include "service/types.h"

#include <nlohmann/json.hpp>

#include "common/text_util.h"

namespace kb {

using nlohmann::json;

namespace {
constexpr size_t kMaxMetadataBytes = 64 * 1024;
}  // namespace

Status ValidateMetadata(const std::string& text) {
  if (text.size() > kMaxMetadataBytes) {
    return Status::InvalidArgument("metadata is larger than " + std::to_string(kMaxMetadataBytes) +
                                   " bytes");
  }
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("metadata must be a JSON object");
  }
  return Status::OK();
}

// Descriptions are free text: line breaks and tabs are allowed, other control characters are
// not, and they must be valid UTF-8 and bounded.
Status ValidateDescription(const std::string& text) {
  if (!IsValidUtf8(text) || text.size() > kMaxDescriptionBytes) {
    return Status::InvalidArgument("description must be valid UTF-8 of at most " +
                                   std::to_string(kMaxDescriptionBytes) + " bytes");
  }
  for (unsigned char c : text) {
    if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7f) {
      return Status::InvalidArgument("description contains control characters");
    }
  }
  return Status::OK();
}

std::string CanonicalJson(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_discarded() ? text : j.dump();
}

KbStats KbStats::OnlyProjects(const std::function<bool(const std::string&)>& allowed) const {
  KbStats mine;
  mine.uptime_seconds = uptime_seconds;
  for (const ProjectStats& p : per_project) {
    if (!allowed(p.project.id)) continue;
    ++mine.projects;
    mine.documents += p.counts.documents;
    mine.chunks += p.counts.chunks;
    mine.content_bytes += p.counts.content_bytes;
    mine.disk_bytes += p.disk_bytes;
    mine.per_project.push_back(p);
  }
  return mine;
}

}  // namespace kb
