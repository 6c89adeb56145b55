// Metadata filters for search: {"key": value} requires document metadata[key] == value;
// {"key": {"$in": [v1, v2]}} requires it to equal one of them. All conditions must hold.
// Values are JSON scalars (string, number, boolean, null); numbers compare by value (1 == 1.0).
//
// Thread-safety: a parsed filter is immutable and may be shared.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace kb {

class MetadataFilter {
 public:
  // Empty text or "{}" gives a filter that accepts everything. InvalidArgument (naming the key)
  // for anything that is not an object of scalars / {"$in": [scalars]}.
  static Result<std::shared_ptr<const MetadataFilter>> Parse(const std::string& json_text);
  ~MetadataFilter();

  bool empty() const;
  // `metadata_json` is a document's metadata object; malformed metadata matches nothing.
  bool Matches(const std::string& metadata_json) const;
  // Canonical text (for cache keys).
  const std::string& canonical() const { return canonical_; }

 private:
  struct Impl;
  MetadataFilter();
  std::unique_ptr<Impl> impl_;
  std::string canonical_;
};

}  // namespace kb
