// libFuzzer target for multipart/form-data bodies (src/api/multipart.h), the upload form the
// server now parses itself. Input: a Content-Type line, '\n', then the body. The parser must
// never crash or read out of bounds, and every part it returns must be a slice of the body.
// Build with -DKB_BUILD_FUZZ=ON (clang); run e.g.
//   build-fuzz/fuzz/fuzz_multipart -max_total_time=60 fuzz/corpus/fuzz_multipart
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "api/multipart.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  const std::string_view type = nl == std::string_view::npos ? input : input.substr(0, nl);
  const std::string_view body = nl == std::string_view::npos ? "" : input.substr(nl + 1);
  (void)kb::api::IsMultipartFormData(type);
  auto parts = kb::api::ParseMultipartFormData(type, body, 64);
  if (parts.ok()) {
    if (parts->size() > 64) abort();
    for (const auto& [name, part] : *parts) {
      if (name != part.name) abort();
      if (!part.content.empty() && body.find(part.content) == std::string_view::npos) abort();
    }
  }
  return 0;
}
