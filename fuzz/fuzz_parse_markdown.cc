// libFuzzer target: arbitrary bytes through the markdown parser must give a document that keeps
// the ParsedDocument invariants or an Unprocessable error, never a crash or a hang.
#include <cstddef>
#include <cstdint>

#include "fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kb::fuzz::CheckParse(kb::ParseDocument(kb::ContentType::kMarkdown, bytes));
  return 0;
}
