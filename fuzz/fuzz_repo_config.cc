// libFuzzer target for the backup repository's `config` object (repo/repository_keys.h,
// ParseConfig): the first object every reader fetches, before it holds any key. Invariants:
// no crash, throw or sanitizer finding; a refusal is Corruption or FailedPrecondition; what
// parses has parameters a new repository could be created with, and re-encodes to a config that
// parses to the same values and is a fixed point of encode(parse(.)) (JSON text is not
// canonical - spacing, key order, unknown fields - so the input's bytes themselves need not
// come back).
//   build-fuzz/fuzz/fuzz_repo_config -max_total_time=60 fuzz/corpus/fuzz_repo_config
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "repo/repository_keys.h"
#include "repo_fuzz.h"

namespace {

bool Same(const kb::repo::RepoConfig& a, const kb::repo::RepoConfig& b) {
  return a.id == b.id && a.created == b.created && a.key_check == b.key_check &&
         a.params.chunk_size == b.params.chunk_size && a.params.block_size == b.params.block_size &&
         a.params.pack_size == b.params.pack_size && a.params.tree_fanout == b.params.tree_fanout &&
         a.params.compression_level == b.params.compression_level;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kb::repo;
  using kb::fuzz::Check;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = ParseConfig(text);
  if (!config.ok()) {
    const kb::Code code = config.status().code();
    Check(code == kb::Code::kCorruption || code == kb::Code::kFailedPrecondition,
          "config refused with a code other than Corruption / FailedPrecondition");
    return 0;
  }
  Check(ValidateParams(config->params).ok(), "config accepted with parameters Init would refuse");
  Check(!config->id.empty() && config->id.size() <= 64, "config id of invalid length");
  const std::string encoded = EncodeConfig(*config);
  auto again = ParseConfig(encoded);
  Check(again.ok(), "re-encoded config does not parse");
  Check(Same(*config, *again), "re-encoded config parses to other values");
  Check(EncodeConfig(*again) == encoded, "encode(parse(encode(c))) != encode(c)");
  return 0;
}
