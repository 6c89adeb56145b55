// libFuzzer target for the backup repository's keys/ objects (repo/repository_keys.h,
// ParseKeyObject): the JSON a reader parses before it derives a KEK or opens anything. Input:
// "<object name>\n<JSON text>", so that the fuzzer also tries ids that do not match the name.
// Invariants: no crash, throw or sanitizer finding; a refusal is Corruption or
// FailedPrecondition; what parses names itself (keys/<its id>), has a known kdf with parameters
// in the format's ranges and a salt of at least 16 bytes, and re-encodes to an object that
// parses to the same values (encode(parse(.)) is a fixed point). A parsed key-file key is also
// unwrapped with a key file it was not made for: that must fail as Unauthenticated (never
// crash on a hostile `wrapped` box). scrypt keys are not unwrapped: scrypt costs ~0.1 s.
//   build-fuzz/fuzz/fuzz_repo_keyfile -max_total_time=60 fuzz/corpus/fuzz_repo_keyfile
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "repo/repository_keys.h"
#include "repo_fuzz.h"

namespace {

bool Same(const kb::repo::KeyObject& a, const kb::repo::KeyObject& b) {
  return a.id == b.id && a.created == b.created && a.label == b.label && a.kdf == b.kdf &&
         a.log2_n == b.log2_n && a.r == b.r && a.p == b.p && a.salt == b.salt &&
         a.wrapped == b.wrapped;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kb::repo;
  using kb::fuzz::Check;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nl = input.find('\n');
  if (nl == std::string_view::npos) return 0;
  const std::string_view name = input.substr(0, nl);
  const std::string_view text = input.substr(nl + 1);
  auto key = ParseKeyObject(name, text);
  if (!key.ok()) {
    const kb::Code code = key.status().code();
    Check(code == kb::Code::kCorruption || code == kb::Code::kFailedPrecondition,
          "key refused with a code other than Corruption / FailedPrecondition");
    return 0;
  }
  Check(IsRandomId(key->id) && name == KeyObjectKey(key->id), "key id does not match its name");
  Check(key->salt.size() >= kSaltBytes, "key accepted with a short salt");
  if (key->kdf == "scrypt") {
    Check(key->log2_n >= kMinScryptLog2N && key->log2_n <= kMaxScryptLog2N && key->r >= 1 &&
              key->r <= kMaxScryptR && key->p >= 1 && key->p <= kMaxScryptP,
          "scrypt parameters out of range accepted");
  } else {
    Check(key->kdf == "keyfile", "unknown kdf accepted");
  }
  const std::string encoded = EncodeKeyObject(*key);
  auto again = ParseKeyObject(name, encoded);
  Check(again.ok(), "re-encoded key does not parse");
  Check(Same(*key, *again), "re-encoded key parses to other values");
  Check(EncodeKeyObject(*again) == encoded, "encode(parse(encode(k))) != encode(k)");

  if (key->kdf == "keyfile") {
    KeyMaterial material;
    material.is_file = true;
    material.secret = kb::repo::SecretBytes(std::string(kMinKeyFileBytes, '\x17'));
    auto master = UnwrapMasterKey(*key, "fuzz-repository", material);
    Check(!master.ok() && master.status().code() == kb::Code::kUnauthenticated,
          "a key file the key was not made for unwrapped it, or failed otherwise");
  }
  return 0;
}
