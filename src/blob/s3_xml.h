// Reading the handful of S3 XML responses S3BlobStore needs (ListObjectsV2 pages, error bodies,
// InitiateMultipartUpload) and writing the one request body it sends (CompleteMultipartUpload).
//
// Not a general XML parser: S3 responses are flat, machine-written documents, so this finds
// elements by name, takes their text and decodes the five named entities and numeric character
// references. Anything that does not look as expected is reported, never guessed: a listing
// that cannot be read fails the listing rather than silently dropping objects.
//
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "blob/blob_store.h"
#include "common/status.h"

namespace kb::blob::s3xml {

// The raw (undecoded) text of every <tag>...</tag> in `xml`, in document order; a self-closing
// <tag/> gives "". Elements nested inside an element of the same name are not supported (S3
// responses have none). `<Key>` never matches `<KeyCount>`.
std::vector<std::string_view> Elements(std::string_view xml, std::string_view tag);

// The entity-decoded text of the first <tag> in `xml`; nullopt if absent or badly encoded.
std::optional<std::string> Text(std::string_view xml, std::string_view tag);

// Decodes &amp; &lt; &gt; &quot; &apos; &#NNN; &#xHH; (as UTF-8). nullopt for anything else
// after '&' (an unknown entity, a missing ';', a code point out of range).
std::optional<std::string> DecodeEntities(std::string_view text);

// Escapes & < > " ' for use in element text.
std::string EscapeText(std::string_view text);

// An S3 <Error> body: Code and Message (either may be empty when the body had none).
struct ErrorBody {
  std::string code;
  std::string message;
};
// nullopt unless `xml` is an <Error> document.
std::optional<ErrorBody> ParseError(std::string_view xml);

// One page of a ListObjectsV2 answer. Keys are the full object keys, decoded.
struct ListPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;
  std::string next_continuation_token;  // set when truncated
};
// IOError naming what is wrong for anything that is not a well-formed ListBucketResult.
Result<ListPage> ParseListObjectsV2(std::string_view xml);

// The UploadId of an InitiateMultipartUploadResult; IOError if missing.
Result<std::string> ParseUploadId(std::string_view xml);

// <CompleteMultipartUpload> with one <Part> per ETag, numbered from 1.
std::string CompleteMultipartUploadBody(const std::vector<std::string>& etags);

}  // namespace kb::blob::s3xml
