// Writes the seeds of fuzz_repo_config, fuzz_repo_keyfile and fuzz_pack_framing from real
// objects: a repository created by Repository::Init in a temporary directory (its `config`, a
// passphrase key and an added key-file key), configs re-encoded at the edges of the parameter
// ranges, and packs built by PackBuilder (sealed under the fuzz key, see repo_fuzz.h).
//
//   build-fuzz/fuzz/make_repo_seeds fuzz/corpus     # then commit fuzz/corpus/fuzz_repo_* etc.
//
// Re-run it when a format changes; the seeds are committed so that fuzzing needs no setup.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "repo/repository.h"
#include "repo/pack.h"
#include "repo/repository_keys.h"
#include "blob/local_blob_store.h"
#include "common/crypto_util.h"
#include "common/file_util.h"
#include "repo_fuzz.h"

namespace {

using namespace kb::repo;

void Die(const std::string& what) {
  std::fprintf(stderr, "make_repo_seeds: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Must(kb::Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.status().ToString());
  return std::move(r).value();
}

void Write(const std::string& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  kb::Status s = kb::AtomicWriteFile(dir + "/" + name, bytes);
  if (!s.ok()) Die(s.ToString());
  std::printf("%s/%s (%zu bytes)\n", dir.c_str(), name.c_str(), bytes.size());
}

// A block of `kind` whose chunks have `lengths`, sealed as the writer seals it.
void AddBlock(PackBuilder& pack, ChunkKind kind, const std::vector<uint32_t>& lengths) {
  BlockEntry entry;
  entry.kind = kind;
  std::string plain;
  for (uint32_t length : lengths) {
    std::string chunk = kb::RandomBytes(length);
    ChunkEntry c;
    const kb::Sha256Digest digest = kb::Sha256(chunk);
    c.id = ChunkIdFromBytes(
        std::string_view(reinterpret_cast<const char*>(digest.data()), kChunkIdBytes));
    c.length = length;
    entry.chunks.push_back(c);
    entry.raw_length += length;
    plain += chunk;
  }
  pack.AddBlock(SealCompressed(kb::fuzz::PackFuzzKey(), kBlockAad, plain, 3), entry);
}

void WritePack(const std::string& dir, const std::string& name, uint8_t limits_mode,
               PackBuilder& pack) {
  PackBuilder::Finished done = pack.Finish(kb::fuzz::PackFuzzKey(), 3);
  Write(dir, name + ".pack", std::string(1, static_cast<char>(limits_mode)) + done.bytes);
  uint64_t padding = 0;
  for (const BlockEntry& b : done.blocks) padding = b.offset + b.length - kPackHeaderBytes;
  if (padding > 0xffff) Die("pack too large for the table-body layout");
  std::string table;
  table.push_back(static_cast<char>(limits_mode | kb::fuzz::kTableBodyMode));
  table.push_back(static_cast<char>(padding & 0xff));
  table.push_back(static_cast<char>(padding >> 8));
  table += kb::fuzz::EncodeTableBody(done.blocks);
  Write(dir, name + ".table", table);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) Die("usage: make_repo_seeds <corpus directory>");
  const std::string out = argv[1];
  char tmpl[] = "/tmp/kb-repo-seeds-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
  const std::string tmp = tmpl;

  // A real repository: config and a passphrase key from Init, a key-file key from AddKey.
  RepositoryParams params;
  params.scrypt_log2_n = kMinScryptLog2N;  // the cheapest the format allows
  KeySource passphrase;
  passphrase.passphrase = "fuzz seed passphrase";
  auto store = Must(kb::blob::LocalBlobStore::Open(tmp + "/repo", true), "open store");
  auto repo = Must(Repository::Init(std::move(store), passphrase, "ops passphrase", params),
                   "init repository");
  const std::string key_file = tmp + "/key";
  if (!kb::AtomicWriteFile(key_file, kb::RandomBytes(64)).ok()) Die("write key file");
  KeySource file_key;
  file_key.key_file = key_file;
  (void)Must(repo->AddKey(file_key, "ops key file"), "add key");

  const std::string config_text = Must(repo->store().Get(kConfigKey), "read config");
  const std::string config_dir = out + "/fuzz_repo_config";
  Write(config_dir, "config", config_text);
  RepoConfig config = Must(ParseConfig(config_text), "parse config");
  RepoConfig low = config;
  low.params.chunk_size = kMinChunkSize;
  low.params.block_size = kMinChunkSize;
  low.params.pack_size = kMinPackSize;
  low.params.tree_fanout = kMinTreeFanout;
  low.params.compression_level = kMinCompressionLevel;
  Write(config_dir, "config-min", EncodeConfig(low));
  RepoConfig high = config;
  high.params.chunk_size = kMaxChunkSize;
  high.params.block_size = kMaxBlockSize;
  high.params.pack_size = kMaxPackSize;
  high.params.tree_fanout = kMaxTreeFanout;
  high.params.compression_level = kMaxCompressionLevel;
  Write(config_dir, "config-max", EncodeConfig(high));
  std::string v1 = config_text;
  v1.replace(v1.find("\"version\": 2"), 12, "\"version\": 1");
  Write(config_dir, "config-v1", v1);

  std::vector<std::string> key_names;
  kb::Status listed = repo->store().List(kKeysPrefix, [&](const kb::blob::ObjectInfo& info) {
    key_names.push_back(info.key);
    return kb::Status::OK();
  });
  if (!listed.ok() || key_names.size() != 2) Die("expected two keys/ objects");
  for (const std::string& name : key_names) {
    const std::string text = Must(repo->store().Get(name), "read key");
    const KeyObject key = Must(ParseKeyObject(name, text), "parse key");
    Write(out + "/fuzz_repo_keyfile", key.kdf, name + "\n" + text);
  }

  // Packs as the writer builds them: default limits (data, then data and tree blocks) and the
  // smallest limits (chunk_size 512, block_size 8192, fanout 16).
  const std::string pack_dir = out + "/fuzz_pack_framing";
  PackBuilder one;
  AddBlock(one, ChunkKind::kData, {4096, 4096, 100});
  WritePack(pack_dir, "data", 0, one);
  PackBuilder mixed;
  AddBlock(mixed, ChunkKind::kData, {4096, 1});
  AddBlock(mixed, ChunkKind::kData, {777});
  AddBlock(mixed, ChunkKind::kTree, {48, 16});
  WritePack(pack_dir, "mixed", 0, mixed);
  PackBuilder small;
  AddBlock(small, ChunkKind::kData, {512, 512, 3});
  AddBlock(small, ChunkKind::kTree, {256});
  WritePack(pack_dir, "small", kb::fuzz::kSmallLimitsMode, small);

  std::filesystem::remove_all(tmp);
  return 0;
}
