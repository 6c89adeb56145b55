// The byte-level structures of the repository format: names and their validators, pack framing
// and tables, index objects, the chunk map, and manifests (including hostile ones: "../x",
// "/etc/passwd", "a//b").
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/crypto_util.h"
#include "repo/chunk_index.h"
#include "repo/pack.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {
namespace {

using nlohmann::json;

const std::string kKey(32, 'k');

std::string HmacSha256Hex(const std::string& key, const std::string& data) {
  unsigned char out[32];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(out), len));
}

TEST(NamesTest, PackKeysUseTheFirstTwoHexDigits) {
  std::string id = Sha256Hex("x");
  EXPECT_EQ(PackKey(id), "data/" + id.substr(0, 2) + "/" + id);
  EXPECT_EQ(*PackIdFromKey(PackKey(id)), id);
  EXPECT_FALSE(PackIdFromKey("data/zz/" + id).has_value());
  EXPECT_FALSE(PackIdFromKey("data/" + id).has_value());
  EXPECT_FALSE(PackIdFromKey(PackKey(id) + "x").has_value());
}

TEST(NamesTest, SnapshotIdsSortByTime) {
  std::string a = NewSnapshotId(1'795'688'400'000);
  EXPECT_TRUE(IsSnapshotId(a)) << a;
  EXPECT_EQ(a.substr(0, 17), "20261126T102000Z-");
  std::string b = NewSnapshotId(1'795'688'401'000);
  EXPECT_LT(a.substr(0, 16), b.substr(0, 16));
  EXPECT_FALSE(IsSnapshotId("20261126T102000Z-ABCDEF01"));
  EXPECT_FALSE(IsSnapshotId("../etc"));
  EXPECT_TRUE(IsRandomId(NewRandomId()));
}

TEST(NamesTest, ManifestPathsRefuseTraversalAndOddBytes) {
  for (const std::string ok : {"kb.db", "index/VECTOR_INDEX", "a/b/c.d", "..a", "a..", "_-.x"}) {
    EXPECT_TRUE(ValidateManifestPath(ok, "t").ok()) << ok;
  }
  for (const std::string& bad : std::vector<std::string>{
           "", "../x", "/etc/passwd", "a//b", "a/../b", "./a", "a/.", "a/", "a\\b", "a b", "é",
           std::string("a\0b", 3), std::string(256, 'a')}) {
    Status s = ValidateManifestPath(bad, "snapshots/x");
    EXPECT_EQ(s.code(), Code::kCorruption) << bad;
    EXPECT_NE(s.message().find("snapshots/x"), std::string::npos);
  }
  EXPECT_TRUE(ValidateProjectId("p-alpha_1", "t").ok());
  EXPECT_FALSE(ValidateProjectId("a/b", "t").ok());
  EXPECT_FALSE(ValidateProjectId("..", "t").ok());
}

TEST(NamesTest, QuotedNamesCannotForgeLogLines) { EXPECT_EQ(QuoteName("a\nb"), "'a\\x0ab'"); }

// --- packs ---

FormatLimits Limits() { return FormatLimits{4096, 65536, 64}; }

BlockEntry DataBlock(const ChunkIdHasher& h, const std::vector<std::string>& chunks,
                     std::string* raw) {
  BlockEntry e;
  for (const std::string& c : chunks) {
    e.chunks.push_back(ChunkEntry{h.Hash(c), static_cast<uint32_t>(c.size())});
    raw->append(c);
  }
  e.raw_length = static_cast<uint32_t>(raw->size());
  return e;
}

TEST(PackTest, BuildsAndReadsBackItsTable) {
  ChunkIdHasher h(std::string(32, 'i'));
  PackBuilder b;
  std::string raw1, raw2;
  BlockEntry e1 = DataBlock(h, {"page one", "page two"}, &raw1);
  BlockEntry e2 = DataBlock(h, {"tree-ish"}, &raw2);
  e2.kind = ChunkKind::kData;
  b.AddBlock(SealCompressed(kKey, kBlockAad, raw1, 1), e1);
  b.AddBlock(SealCompressed(kKey, kBlockAad, raw2, 1), e2);
  PackBuilder::Finished pack = b.Finish(kKey, 1);
  EXPECT_EQ(pack.id, Sha256Hex(pack.bytes));
  EXPECT_EQ(pack.bytes.substr(0, 4), "KBPK");
  EXPECT_EQ(pack.bytes.substr(pack.bytes.size() - 4), "KBPT");
  auto table = ReadPackTable(pack.bytes, kKey, Limits());
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  ASSERT_EQ(table->size(), 2u);
  EXPECT_EQ((*table)[0].offset, 8u);
  EXPECT_EQ((*table)[1].offset, (*table)[0].offset + (*table)[0].length);
  EXPECT_EQ((*table)[0].chunks[1].id, h.Hash("page two"));
  const BlockEntry& t0 = (*table)[0];
  auto plain = OpenBlock(std::string_view(pack.bytes).substr(t0.offset, t0.length), kKey, t0);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain, "page onepage two");
  EXPECT_TRUE(CheckBlockChunks(*plain, t0, h).ok());
  std::string altered = *plain;
  altered[0] ^= 1;
  EXPECT_EQ(CheckBlockChunks(altered, t0, h).code(), Code::kCorruption);
}

TEST(PackTest, DamagedFramingIsCorruptionAndNewerVersionsAreRefused) {
  ChunkIdHasher h(std::string(32, 'i'));
  PackBuilder b;
  std::string raw;
  BlockEntry e = DataBlock(h, {"x"}, &raw);
  b.AddBlock(SealCompressed(kKey, kBlockAad, raw, 1), e);
  std::string pack = b.Finish(kKey, 1).bytes;
  std::string bad_magic = pack;
  bad_magic[0] = 'X';
  EXPECT_EQ(ReadPackTable(bad_magic, kKey, Limits()).status().code(), Code::kCorruption);
  std::string v3 = pack;
  v3[4] = 3;
  auto newer = ReadPackTable(v3, kKey, Limits());
  EXPECT_EQ(newer.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(newer.status().message().find("version 3"), std::string::npos);
  // Version 1 (32-byte ids) is not read as version 2: refused, not misparsed.
  std::string v1 = pack;
  v1[4] = 1;
  auto older = ReadPackTable(v1, kKey, Limits());
  EXPECT_EQ(older.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(older.status().message().find("unsupported format version 1"), std::string::npos);
  EXPECT_EQ(ReadPackTable(pack.substr(0, pack.size() - 3), kKey, Limits()).status().code(),
            Code::kCorruption);
  std::string table_flip = pack;
  table_flip[pack.size() - 12] ^= 1;
  EXPECT_EQ(ReadPackTable(table_flip, kKey, Limits()).status().code(), Code::kCorruption);
  std::string huge_length = pack;
  huge_length[pack.size() - 5] = '\x7f';
  EXPECT_EQ(ReadPackTable(huge_length, kKey, Limits()).status().code(), Code::kCorruption);
}

TEST(BlockEntryTest, RefusesEntriesOutsideTheLimits) {
  auto decode = [](const BlockEntry& e) {
    std::string bytes;
    ByteWriter w(&bytes);
    EncodeBlockEntry(e, w);
    ByteReader r(bytes);
    BlockEntry out;
    return DecodeBlockEntry(r, Limits(), &out);
  };
  BlockEntry good;
  good.offset = 8;
  good.length = 100;
  good.chunks = {ChunkEntry{{}, 4096}};
  good.raw_length = 4096;
  EXPECT_TRUE(decode(good).ok());
  BlockEntry too_long = good;
  too_long.chunks[0].length = 4097;  // a data chunk longer than chunk_size
  too_long.raw_length = 4097;
  EXPECT_EQ(decode(too_long).code(), Code::kCorruption);
  BlockEntry bad_sum = good;
  bad_sum.raw_length = 4000;
  EXPECT_EQ(decode(bad_sum).code(), Code::kCorruption);
  BlockEntry tree = good;
  tree.kind = ChunkKind::kTree;
  tree.chunks[0].length = 33;  // not a multiple of 32
  tree.raw_length = 33;
  EXPECT_EQ(decode(tree).code(), Code::kCorruption);
  BlockEntry empty = good;
  empty.chunks.clear();
  empty.raw_length = 0;
  EXPECT_EQ(decode(empty).code(), Code::kCorruption);
}

// --- index and chunk map ---

TEST(IndexTest, EncodesAndDecodesPacks) {
  ChunkIdHasher h(std::string(32, 'i'));
  IndexedPack p;
  p.id = Sha256Hex("pack");
  p.size = 1000;
  BlockEntry b;
  b.offset = 8;
  b.length = 100;
  b.chunks = {ChunkEntry{h.Hash("a"), 1}, ChunkEntry{h.Hash("bb"), 2}};
  b.raw_length = 3;
  p.blocks = {b};
  std::string plain = EncodeIndex({p, p});
  std::vector<IndexedPack> seen;
  ASSERT_TRUE(DecodeIndex(plain, Limits(), [&](IndexedPack&& x) {
                seen.push_back(std::move(x));
                return Status::OK();
              }).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].id, p.id);
  EXPECT_EQ(seen[0].blocks[0].chunks[1].id, h.Hash("bb"));
  std::string v9 = plain;
  v9[4] = 9;
  EXPECT_EQ(DecodeIndex(v9, Limits(), [](IndexedPack&&) { return Status::OK(); }).code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(DecodeIndex(plain.substr(0, plain.size() - 1), Limits(),
                        [](IndexedPack&&) { return Status::OK(); })
                .code(),
            Code::kCorruption);
  IndexedPack outside = p;
  outside.blocks[0].offset = 990;  // beyond the pack's end
  EXPECT_EQ(
      DecodeIndex(EncodeIndex({outside}), Limits(), [](IndexedPack&&) { return Status::OK(); })
          .code(),
      Code::kCorruption);
}

TEST(ChunkMapTest, FindsEveryInsertedIdAcrossGrowth) {
  ChunkIdHasher h(std::string(32, 'i'));
  ChunkMap map;
  uint32_t pack = map.AddPack(PackInfo{Sha256Hex("p"), 100, {}});
  const int n = 50'000;
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(map.Insert(h.Hash(std::to_string(i)),
                           ChunkLocation{pack, static_cast<uint32_t>(i), 0, 4096}));
  }
  EXPECT_FALSE(map.Insert(h.Hash("7"), ChunkLocation{pack, 0, 0, 1}));
  EXPECT_EQ(map.size(), static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const ChunkLocation* loc = map.Find(h.Hash(std::to_string(i)));
    ASSERT_NE(loc, nullptr);
    EXPECT_EQ(loc->block, static_cast<uint32_t>(i));
  }
  EXPECT_EQ(map.Find(h.Hash("absent")), nullptr);
  EXPECT_EQ(map.AddPack(PackInfo{Sha256Hex("p"), 100, {}}), pack);
}

TEST(ChunkMapTest, LoadedChunksCostAbout48BytesAndTheFirstPackWins) {
  ChunkIdHasher h(std::string(32, 'i'));
  const int blocks = 50, per_block = 1000;
  IndexedPack p;
  p.id = Sha256Hex("p1");
  p.size = 1 << 20;
  for (int b = 0; b < blocks; ++b) {
    BlockEntry e;
    for (int c = 0; c < per_block; ++c) {
      e.chunks.push_back(ChunkEntry{h.Hash(std::to_string(b * per_block + c)), 4096});
    }
    p.blocks.push_back(std::move(e));
  }
  IndexedPack dup = p;  // the same chunks in a second pack
  dup.id = Sha256Hex("p2");
  ChunkMap map;
  map.AddIndexedPack(p);
  map.AddIndexedPack(dup);
  map.Seal();
  const size_t n = blocks * per_block;
  EXPECT_EQ(map.size(), n);
  // The format's ~32 bytes per chunk, plus the fixed 256 KiB of bucket starts.
  EXPECT_LE(map.table_bytes(), n * 32 + 1024 * 32 + 65537 * 4);
  const ChunkLocation* loc = map.Find(h.Hash("1234"));
  ASSERT_NE(loc, nullptr);
  EXPECT_EQ(map.pack(loc->pack).id, p.id);
  EXPECT_EQ(loc->block, 1u);
  EXPECT_EQ(loc->offset, 234u * 4096);
  EXPECT_FALSE(map.Insert(h.Hash("1234"), ChunkLocation{}));
  EXPECT_TRUE(map.Insert(h.Hash("new"), ChunkLocation{0, 0, 0, 1}));
  EXPECT_TRUE(map.Contains(h.Hash("new")));
}

// --- manifests ---

json GoodManifest() {
  std::string tree(32, 'a');
  return json{
      {"format", "knowledgebeast-snapshot"},
      {"version", 2},
      {"id", "20261126T130000Z-7c1e9a02"},
      {"time", "2026-11-26T13:00:00.123Z"},
      {"finished", "2026-11-26T13:00:04.500Z"},
      {"hostname", "kb-1"},
      {"kb_version", "0.1.0"},
      {"trigger", "manual"},
      {"scope", "full"},
      {"tags", {"nightly"}},
      {"catalog",
       {{"files", {{{"path", "catalog.db"}, {"size", 10}, {"mode", 384}, {"trees", {tree}}}}}}},
      {"projects",
       {{{"id", "p1"},
         {"name", "handbook"},
         {"deleted", false},
         {"catalog_row", {{"x", 1}}},
         {"lsn", 1234},
         {"content_checksum", std::string(64, '0')},
         {"counts", {{"documents", 10}}},
         {"embedder", {{"dimension", 384}}},
         {"index_lsn", 1200},
         {"files", {{{"path", "kb.db"}, {"size", 0}, {"mode", 384}, {"trees", json::array()}}}}}}},
      {"stats", {{"files", 2}, {"bytes", 10}}}};
}

TEST(ManifestTest, RoundTripsThroughJson) {
  auto m = SnapshotManifest::FromJson(GoodManifest());
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(m->projects[0].lsn, 1234);
  EXPECT_EQ(m->catalog_files[0].mode, 0600);
  auto again = SnapshotManifest::FromJson(m->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ToJson(), m->ToJson());
}

TEST(ManifestTest, IgnoresUnknownFields) {
  json j = GoodManifest();
  j["future_field"] = {1, 2, 3};
  j["projects"][0]["another"] = "x";
  EXPECT_TRUE(SnapshotManifest::FromJson(j).ok());
}

TEST(ManifestTest, RefusesHostilePaths) {
  for (const std::string bad : {"../x", "/etc/passwd", "a//b", "a/../../b", ".", ""}) {
    json j = GoodManifest();
    j["catalog"]["files"][0]["path"] = bad;
    auto m = SnapshotManifest::FromJson(j);
    EXPECT_EQ(m.status().code(), Code::kCorruption) << bad;
    json p = GoodManifest();
    p["projects"][0]["files"][0]["path"] = bad;
    EXPECT_EQ(SnapshotManifest::FromJson(p).status().code(), Code::kCorruption) << bad;
  }
  for (const std::string bad : {"..", "a/b", "/x", ""}) {
    json j = GoodManifest();
    j["projects"][0]["id"] = bad;
    EXPECT_EQ(SnapshotManifest::FromJson(j).status().code(), Code::kCorruption) << bad;
  }
}

TEST(ManifestTest, RefusesInconsistentFiles) {
  auto refuse = [](json j, const char* why) {
    EXPECT_EQ(SnapshotManifest::FromJson(j).status().code(), Code::kCorruption) << why;
  };
  json dup = GoodManifest();
  dup["catalog"]["files"].push_back(dup["catalog"]["files"][0]);
  refuse(dup, "duplicate path");
  json dir = GoodManifest();
  dir["catalog"]["files"].push_back(
      {{"path", "catalog.db/inner"}, {"size", 0}, {"mode", 384}, {"trees", json::array()}});
  refuse(dir, "a file is also a directory");
  json neg = GoodManifest();
  neg["catalog"]["files"][0]["size"] = -1;
  refuse(neg, "negative size");
  json tree = GoodManifest();
  tree["catalog"]["files"][0]["trees"][0] = "ABC";
  refuse(tree, "bad tree id");
  json no_trees = GoodManifest();
  no_trees["catalog"]["files"][0]["trees"] = json::array();
  refuse(no_trees, "data without trees");
  json id = GoodManifest();
  id["id"] = "../../x";
  refuse(id, "bad id");
  json dup_project = GoodManifest();
  dup_project["projects"].push_back(dup_project["projects"][0]);
  refuse(dup_project, "duplicate project");
  json mode = GoodManifest();
  mode["catalog"]["files"][0]["mode"] = 070000;
  refuse(mode, "mode out of range");
}

TEST(ManifestTest, NewerVersionIsFailedPrecondition) {
  json j = GoodManifest();
  j["version"] = 3;
  auto m = SnapshotManifest::FromJson(j);
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(m.status().message().find("version 3; this binary reads version 2"), std::string::npos);
}

TEST(ManifestTest, Version1ManifestsAndLongTreeIdsAreRefused) {
  json j = GoodManifest();
  j["version"] = 1;
  auto m = SnapshotManifest::FromJson(j);
  EXPECT_EQ(m.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(m.status().message().find("unsupported format version 1"), std::string::npos);
  json long_tree =
      GoodManifest();  // a version-1 tree id (32 bytes, 64 hex) in a version-2 manifest
  long_tree["catalog"]["files"][0]["trees"][0] = std::string(64, 'a');
  auto t = SnapshotManifest::FromJson(long_tree);
  EXPECT_EQ(t.status().code(), Code::kCorruption);
  EXPECT_NE(t.status().message().find("32 lower-case hex digits"), std::string::npos);
}

// Version 2's block entries: 16-byte ids, then the lengths, byte for byte as in the format doc.
TEST(PackTest, BlockEntriesListSixteenByteIdsThenLengths) {
  ChunkIdHasher h(std::string(32, 'i'));
  std::string raw;
  BlockEntry e = DataBlock(h, {"alpha", "beta!!"}, &raw);
  e.offset = 8;
  e.length = 40;
  std::string bytes;
  ByteWriter w(&bytes);
  EncodeBlockEntry(e, w);
  ASSERT_EQ(bytes.size(), 1u + 8 + 4 + 4 + 4 + 2 * 16 + 2 * 4);
  EXPECT_EQ(bytes.substr(21, 16), std::string(ChunkIdBytes(h.Hash("alpha"))));
  EXPECT_EQ(bytes.substr(37, 16), std::string(ChunkIdBytes(h.Hash("beta!!"))));
  EXPECT_EQ(bytes.substr(53, 4), std::string("\x05\0\0\0", 4));
  EXPECT_EQ(bytes.substr(57, 4), std::string("\x06\0\0\0", 4));
  ByteReader in(bytes);
  BlockEntry back;
  ASSERT_TRUE(DecodeBlockEntry(in, Limits(), &back).ok());
  ASSERT_EQ(back.chunks.size(), 2u);
  EXPECT_EQ(back.chunks[1].id, h.Hash("beta!!"));
  EXPECT_EQ(back.chunks[1].length, 6u);
  EXPECT_EQ(in.remaining(), 0u);
  // The id is the first half of HMAC-SHA-256 under the id key.
  EXPECT_EQ(HexEncode(ChunkIdBytes(h.Hash("alpha"))),
            HmacSha256Hex(std::string(32, 'i'), "alpha").substr(0, 32));
}

}  // namespace
}  // namespace kb::repo
