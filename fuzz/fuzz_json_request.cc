// libFuzzer target for the HTTP API's request decoding (src/api/request_decoding.h): arbitrary
// bytes as a request body through every decoder, and as query-string values. The decoders must
// never crash, throw, or overflow the stack (nesting bombs are refused by CheckJsonDepth before
// nlohmann parses). Build with -DKB_BUILD_FUZZ=ON (clang); run e.g.
//   build-fuzz/fuzz/fuzz_json_request -max_total_time=60 fuzz/corpus/json_request
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "api/request_decoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kb::api;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseJsonObject(body);
  if (parsed.ok()) {
    const nlohmann::json& j = parsed.value();
    (void)DecodeCreateProject(j);
    (void)DecodeUpdateProject(j);
    (void)DecodeIngestBody(j);
    (void)DecodeQueryBody(j);
    (void)DecodeCreateKey(j);
    (void)DecodeV2CreateProject(j);
    (void)DecodeV2UpdateProject(j);
    (void)DecodeV2Query(j);
    (void)DecodeV2Ingest(j);
    (void)DecodeV2CreateKey(j);
  }
  // The same bytes as query-string values.
  const std::string s(body);
  const QueryParams params = {{"q", s},      {"top_k", s},   {"alpha", s}, {"mode", s},
                              {"offset", s}, {"filters", s}, {"limit", s}, {"since", s}};
  (void)DecodeQueryParams(params);
  (void)DecodePageParams(params);
  (void)DecodeChangesParams(params);
  return 0;
}
