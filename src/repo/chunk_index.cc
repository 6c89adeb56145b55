// Index objects (encode / decode / read / write) and the chunk map.
#include "repo/chunk_index.h"

#include <algorithm>
#include <cstring>

#include "common/crypto_util.h"
#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {

namespace {

constexpr size_t kBuckets = 65536;

// The first two bytes of an id: its bucket in the sorted array.
size_t Bucket(const ChunkId& id) { return (size_t{id[0]} << 8) | id[1]; }

uint64_t SlotHash(const ChunkId& id) {
  uint64_t h;
  memcpy(&h, id.data(), sizeof h);  // ids are keyed hashes: uniformly distributed already
  return h;
}

}  // namespace

std::string EncodeIndex(const std::vector<IndexedPack>& packs) {
  std::string out;
  ByteWriter w(&out);
  w.Bytes(kIndexMagic);
  w.U16(kIndexVersion);
  w.U16(0);
  w.U32(static_cast<uint32_t>(packs.size()));
  for (const IndexedPack& p : packs) {
    w.Bytes(*HexDecode(p.id));
    w.U64(p.size);
    w.U32(static_cast<uint32_t>(p.blocks.size()));
    for (const BlockEntry& b : p.blocks) EncodeBlockEntry(b, w);
  }
  return out;
}

Status DecodeIndex(std::string_view plain, const FormatLimits& limits,
                   const std::function<Status(IndexedPack&&)>& visit) {
  ByteReader in(plain);
  std::string_view magic;
  uint16_t version = 0, reserved = 0;
  uint32_t pack_count = 0;
  if (!in.Bytes(4, &magic) || !in.U16(&version) || !in.U16(&reserved) || !in.U32(&pack_count)) {
    return Status::Corruption("index header truncated");
  }
  if (magic != kIndexMagic) return Status::Corruption("index magic is wrong");
  if (version > kIndexVersion) {
    return Status::FailedPrecondition("has format version " + std::to_string(version) +
                                      "; this binary reads version " +
                                      std::to_string(kIndexVersion));
  }
  if (version < kIndexVersion) {
    return Status::FailedPrecondition("has unsupported format version " + std::to_string(version) +
                                      "; this binary reads version " +
                                      std::to_string(kIndexVersion));
  }
  for (uint32_t i = 0; i < pack_count; ++i) {
    IndexedPack p;
    std::string_view id;
    uint32_t block_count = 0;
    if (!in.Bytes(32, &id) || !in.U64(&p.size) || !in.U32(&block_count)) {
      return Status::Corruption("index truncated in pack " + std::to_string(i));
    }
    p.id = HexEncode(id);
    if (block_count == 0 || p.size < kPackHeaderBytes + kPackFooterBytes + kBoxOverhead) {
      return Status::Corruption("pack " + p.id + " listed with no blocks or too small");
    }
    p.blocks.resize(block_count);
    for (uint32_t b = 0; b < block_count; ++b) {
      Status s = DecodeBlockEntry(in, limits, &p.blocks[b]);
      if (!s.ok()) {
        return Status::Corruption("pack " + p.id + " block " + std::to_string(b) + ": " +
                                  s.message());
      }
    }
    Status s = CheckBlockRanges(p.blocks, p.size - kPackFooterBytes - kBoxOverhead);
    if (!s.ok()) return Status::Corruption("pack " + p.id + ": " + s.message());
    KB_RETURN_IF_ERROR(visit(std::move(p)));
  }
  if (in.remaining() != 0) return Status::Corruption("index has trailing bytes");
  return Status::OK();
}

Result<int64_t> WriteIndexObject(const RepoContext& ctx, const std::vector<IndexedPack>& packs,
                                 std::string* name) {
  std::string box =
      SealCompressed(ctx.data_key(), kIndexAad, EncodeIndex(packs), ctx.params.compression_level);
  std::string id = Sha256Hex(box);
  KB_RETURN_IF_ERROR(ctx.store->Put(IndexKey(id), box));
  if (name != nullptr) *name = id;
  return static_cast<int64_t>(box.size());
}

Status ReadIndexObject(const RepoContext& ctx, const std::string& index_id,
                       const std::function<Status(IndexedPack&&)>& visit) {
  std::string key = IndexKey(index_id);
  KB_ASSIGN_OR_RETURN(std::string box, ctx.store->Get(key));
  if (Sha256Hex(box) != index_id) {
    return Status::Corruption(key + ": content does not match its name (SHA-256)");
  }
  auto plain = OpenCompressed(ctx.data_key(), kIndexAad, box, kMaxMetadataPlaintext);
  if (!plain.ok()) return Status::Corruption(key + ": " + plain.status().message());
  Status s = DecodeIndex(*plain, ctx.limits, visit);
  if (s.code() == Code::kFailedPrecondition) {
    return Status::FailedPrecondition("repository object " + key + " " + s.message());
  }
  if (!s.ok()) return Status(s.code(), key + ": " + s.message());
  return Status::OK();
}

// --- ChunkMap ---

ChunkMap::ChunkMap() {
  added_.resize(1024);
  for (Slot& s : added_) s.loc.pack = kEmpty;
}

uint32_t ChunkMap::AddPack(PackInfo pack) {
  auto it = pack_ordinals_.find(pack.id);
  if (it != pack_ordinals_.end()) return it->second;
  uint32_t ordinal = static_cast<uint32_t>(packs_.size());
  pack_ordinals_.emplace(pack.id, ordinal);
  packs_.push_back(std::move(pack));
  return ordinal;
}

void ChunkMap::AddIndexedPack(const IndexedPack& p) {
  if (FindPack(p.id) >= 0) return;  // the same pack listed by two index objects
  PackInfo info;
  info.id = p.id;
  info.size = p.size;
  for (const BlockEntry& b : p.blocks) {
    info.blocks.push_back(BlockInfo{b.offset, b.length, b.raw_length, b.kind});
  }
  uint32_t ordinal = AddPack(std::move(info));
  for (uint32_t bi = 0; bi < p.blocks.size(); ++bi) {
    uint32_t offset = 0;
    for (const ChunkEntry& c : p.blocks[bi].chunks) {
      ChunkLocation loc{ordinal, bi, offset, c.length};
      if (sealed_) {
        Insert(c.id, loc);
      } else {
        sorted_.push_back(Slot{c.id, loc});
      }
      offset += c.length;
    }
  }
}

void ChunkMap::Seal() {
  if (sealed_) return;
  // Equal ids: the lower pack ordinal (the pack added first) sorts first and is kept.
  std::sort(sorted_.begin(), sorted_.end(), [](const Slot& a, const Slot& b) {
    int c = memcmp(a.id.data(), b.id.data(), a.id.size());
    return c != 0 ? c < 0 : a.loc.pack < b.loc.pack;
  });
  sorted_.erase(std::unique(sorted_.begin(), sorted_.end(),
                            [](const Slot& a, const Slot& b) { return a.id == b.id; }),
                sorted_.end());
  sorted_.shrink_to_fit();
  bucket_start_.assign(kBuckets + 1, 0);
  for (const Slot& s : sorted_) bucket_start_[Bucket(s.id) + 1]++;
  for (size_t b = 0; b < kBuckets; ++b) bucket_start_[b + 1] += bucket_start_[b];
  sealed_ = true;
}

size_t ChunkMap::FindSorted(const ChunkId& id) const {
  if (!sealed_) return kNone;  // nothing is searchable before Seal()
  const size_t b = Bucket(id);
  const auto first = sorted_.begin() + bucket_start_[b];
  const auto last = sorted_.begin() + bucket_start_[b + 1];
  auto it = std::lower_bound(first, last, id, [](const Slot& s, const ChunkId& k) {
    return memcmp(s.id.data(), k.data(), k.size()) < 0;
  });
  return it != last && it->id == id ? static_cast<size_t>(it - sorted_.begin()) : kNone;
}

size_t ChunkMap::Probe(const ChunkId& id) const {
  size_t mask = added_.size() - 1;
  size_t i = SlotHash(id) & mask;
  while (added_[i].loc.pack != kEmpty && added_[i].id != id) i = (i + 1) & mask;
  return i;
}

bool ChunkMap::Insert(const ChunkId& id, const ChunkLocation& loc) {
  if (!sealed_) Seal();
  if (FindSorted(id) != kNone) return false;
  if ((added_count_ + 1) * 4 > added_.size() * 3) Grow();
  size_t i = Probe(id);
  if (added_[i].loc.pack != kEmpty) return false;
  added_[i].id = id;
  added_[i].loc = loc;
  ++added_count_;
  return true;
}

void ChunkMap::Update(const ChunkId& id, const ChunkLocation& loc) {
  if (size_t at = FindSorted(id); at != kNone) {
    sorted_[at].loc = loc;
    return;
  }
  size_t i = Probe(id);
  if (added_[i].loc.pack != kEmpty) added_[i].loc = loc;
}

const ChunkLocation* ChunkMap::Find(const ChunkId& id) const {
  if (size_t at = FindSorted(id); at != kNone) return &sorted_[at].loc;
  size_t i = Probe(id);
  return added_[i].loc.pack == kEmpty ? nullptr : &added_[i].loc;
}

void ChunkMap::Grow() {
  std::vector<Slot> old;
  old.swap(added_);
  added_.resize(old.size() * 2);
  for (Slot& s : added_) s.loc.pack = kEmpty;
  for (const Slot& s : old) {
    if (s.loc.pack != kEmpty) added_[Probe(s.id)] = s;
  }
}

int64_t ChunkMap::FindPack(const std::string& id) const {
  auto it = pack_ordinals_.find(id);
  return it == pack_ordinals_.end() ? -1 : static_cast<int64_t>(it->second);
}

size_t ChunkMap::table_bytes() const {
  return (sorted_.capacity() + added_.size()) * sizeof(Slot) +
         bucket_start_.capacity() * sizeof(uint32_t);
}

// --- loading ---

namespace {

Result<std::vector<std::string>> ListIndexIds(const RepoContext& ctx) {
  std::vector<std::string> ids;
  KB_RETURN_IF_ERROR(ctx.store->List(kIndexPrefix, [&](const blob::ObjectInfo& info) {
    std::string_view name = std::string_view(info.key).substr(kIndexPrefix.size());
    if (IsPackId(name)) ids.emplace_back(name);  // anything else is repo check's business
    return Status::OK();
  }));
  return ids;
}

}  // namespace

Result<std::unordered_map<std::string, int64_t>> ListPackIds(const RepoContext& ctx) {
  std::unordered_map<std::string, int64_t> packs;
  KB_RETURN_IF_ERROR(ctx.store->List(kDataPrefix, [&](const blob::ObjectInfo& info) {
    if (std::optional<std::string> id = PackIdFromKey(info.key)) packs[*id] = info.size;
    return Status::OK();
  }));
  return packs;
}

Result<IndexLoadResult> LoadChunkMap(const RepoContext& ctx,
                                     const std::unordered_set<std::string>& excluded,
                                     bool avoided_fallback, ChunkMap* map) {
  IndexLoadResult result;
  KB_ASSIGN_OR_RETURN(result.packs, ListPackIds(ctx));
  auto avoided = [&](const std::string& id) {
    return excluded.count(id) > 0 || result.packs.count(id) == 0;
  };
  std::unordered_set<std::string> done;
  std::vector<IndexedPack> deferred;  // avoided packs kept as a fallback
  for (int round = 0; round < 4; ++round) {
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListIndexIds(ctx));
    bool vanished = false;
    for (const std::string& id : ids) {
      if (done.count(id)) continue;
      std::vector<IndexedPack> packs;  // applied only when the whole object decoded
      Status s = ReadIndexObject(ctx, id, [&](IndexedPack&& p) {
        packs.push_back(std::move(p));
        return Status::OK();
      });
      if (s.code() == Code::kNotFound) {
        vanished = true;  // replaced by a prune meanwhile: its successor is in a new listing
        continue;
      }
      done.insert(id);
      if (s.code() == Code::kCorruption || s.code() == Code::kFailedPrecondition) {
        result.problems.push_back(s.message());
        continue;
      }
      KB_RETURN_IF_ERROR(s);
      std::vector<std::string> pack_ids;
      for (IndexedPack& p : packs) {
        pack_ids.push_back(p.id);
        if (!avoided(p.id)) {
          map->AddIndexedPack(p);
        } else if (avoided_fallback) {
          deferred.push_back(std::move(p));
        }
      }
      result.objects.emplace_back(id, std::move(pack_ids));
    }
    if (!vanished) break;
  }
  for (const IndexedPack& p : deferred) map->AddIndexedPack(p);
  map->Seal();
  return result;
}

}  // namespace kb::repo
