// backup verify and repo check: every check names the object that failed it. The restore test
// runs the caller's check of the restored files (VerifyOptions::restored_check).
#include "repo/verify.h"

#include <stdlib.h>

#include <charconv>
#include <filesystem>
#include <map>
#include <random>
#include <unordered_set>

#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/logging.h"
#include "repo/locks.h"
#include "repo/repository_format.h"
#include "repo/repository_keys.h"
#include "repo/restore_files.h"
#include "repo/segments.h"
#include "repo/snapshot.h"

namespace kb::repo {

namespace {

constexpr size_t kMaxProblemsPerTree = 3;

std::string Hex(const ChunkId& id) { return ChunkIdHex(id); }

bool MentionsMissingIndexEntry(const std::vector<std::string>& problems) {
  for (const std::string& p : problems) {
    if (p.find("not in any index") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

// --- ReferenceWalker ---

ReferenceWalker::ReferenceWalker(const RepoContext& ctx, const ChunkMap& map)
    : map_(map), reader_(ctx, map) {}

const ReferenceWalker::TreeSummary& ReferenceWalker::Tree(const ChunkId& id) {
  auto it = trees_.find(id);
  if (it != trees_.end()) return it->second;
  TreeSummary s;
  const ChunkLocation* loc = map_.Find(id);
  if (loc == nullptr) {
    s.problems.push_back("tree " + Hex(id) + " is not in any index");
    return trees_.emplace(id, std::move(s)).first->second;
  }
  s.packs.push_back(loc->pack);
  auto ids = reader_.ReadTree(id);
  if (!ids.ok()) {
    s.problems.push_back("tree " + Hex(id) + ": " + ids.status().message());
    return trees_.emplace(id, std::move(s)).first->second;
  }
  size_t missing = 0;
  for (const ChunkId& chunk : *ids) {
    const ChunkLocation* c = map_.Find(chunk);
    if (c == nullptr) {
      if (++missing <= kMaxProblemsPerTree) {
        s.problems.push_back("tree " + Hex(id) + ": chunk " + Hex(chunk) + " is not in any index");
      }
      continue;
    }
    s.bytes += c->length;
    if (s.packs.back() != c->pack) s.packs.push_back(c->pack);
  }
  if (missing > kMaxProblemsPerTree) {
    s.problems.push_back("tree " + Hex(id) + ": " + std::to_string(missing - kMaxProblemsPerTree) +
                         " more chunks are not in any index");
  }
  std::sort(s.packs.begin(), s.packs.end());
  s.packs.erase(std::unique(s.packs.begin(), s.packs.end()), s.packs.end());
  return trees_.emplace(id, std::move(s)).first->second;
}

void ReferenceWalker::WalkFile(const SnapshotFile& f, const std::string& where,
                               std::set<uint32_t>* packs, std::vector<std::string>* problems) {
  int64_t bytes = 0;
  bool complete = true;
  for (const std::string& hex : f.trees) {
    std::optional<ChunkId> id = ChunkIdFromHex(hex);
    if (!id) {
      problems->push_back(where + ": invalid tree id");
      complete = false;
      continue;
    }
    const TreeSummary& t = Tree(*id);
    packs->insert(t.packs.begin(), t.packs.end());
    for (const std::string& p : t.problems) problems->push_back(where + ": " + p);
    complete = complete && t.problems.empty();
    bytes += t.bytes;
  }
  if (complete && bytes != f.size) {
    problems->push_back(where + ": its chunks hold " + std::to_string(bytes) +
                        " bytes, the manifest says " + std::to_string(f.size));
  }
}

void ReferenceWalker::Walk(const SnapshotManifest& m, std::set<uint32_t>* packs,
                           std::vector<std::string>* problems) {
  const std::string prefix = SnapshotKey(m.id) + ": ";
  for (const SnapshotFile& f : m.catalog_files) {
    WalkFile(f, prefix + "file " + f.path, packs, problems);
  }
  for (const ProjectSnapshot& p : m.projects) {
    for (const SnapshotFile& f : p.files) {
      WalkFile(f, prefix + "file projects/" + p.id + "/" + f.path, packs, problems);
    }
  }
}

// --- missing objects ---

MissingObjects CountMissing(const std::vector<std::string>& problems, bool index_readable) {
  static constexpr std::string_view kMissing = ": missing";
  static constexpr std::string_view kUnindexed = " is not in any index";
  static constexpr std::string_view kMoreUnindexed = " more chunks are not in any index";
  MissingObjects found;
  std::unordered_set<std::string> packs;  // every tree in a missing pack names that pack again
  for (const std::string& p : problems) {
    bool counted = true;
    if (p.ends_with(kMissing)) {
      const size_t key = p.rfind(kDataPrefix);
      std::string name =
          p.substr(key == std::string::npos ? 0 : key,
                   p.size() - kMissing.size() - (key == std::string::npos ? 0 : key));
      if (!packs.insert(name).second) continue;
      found.packs++;
      if (found.examples.size() < 3) found.examples.push_back(name + ": missing");
      continue;
    } else if (!index_readable) {
      // An index object that fails its checks also leaves chunks "in no index": that is
      // damage, and the problem naming that object says so.
      counted = false;
    } else if (p.ends_with(kMoreUnindexed)) {
      // "tree <id>: K more chunks are not in any index"
      const size_t end = p.size() - kMoreUnindexed.size();
      const size_t start = p.rfind(' ', end - 1) + 1;
      int64_t k = 0;
      std::from_chars(p.data() + start, p.data() + end, k);
      found.unindexed += std::max<int64_t>(k, 1);
    } else if (p.ends_with(kUnindexed)) {
      found.unindexed++;
    } else {
      counted = false;
    }
    if (counted && found.examples.size() < 3) found.examples.push_back(p);
  }
  return found;
}

MissingObjects FindMissingObjects(const RepoContext& ctx, const ChunkMap& map,
                                  const IndexLoadResult& loaded, const SnapshotManifest& m) {
  const std::unordered_map<std::string, int64_t>& listed_packs = loaded.packs;
  ReferenceWalker walker(ctx, map);
  std::set<uint32_t> packs;
  std::vector<std::string> problems;
  walker.Walk(m, &packs, &problems);
  std::unordered_set<std::string> reported;  // a tree in a missing pack already said so
  for (uint32_t ordinal : packs) {
    const std::string& id = map.pack(ordinal).id;
    if (listed_packs.count(id)) continue;
    const std::string problem = PackKey(id) + ": missing";
    bool already = false;
    for (const std::string& p : problems) already = already || p.ends_with(problem);
    if (!already) problems.push_back(problem);
  }
  return CountMissing(problems, loaded.problems.empty());
}

Status IncompleteSnapshot(const std::string& snapshot_id, const MissingObjects& missing) {
  std::string text = "incomplete snapshot " + snapshot_id + ": " + std::to_string(missing.total()) +
                     " objects missing (e.g. bucket replication still in flight; wait and "
                     "retry, or restore an earlier snapshot)";
  for (size_t i = 0; i < missing.examples.size(); ++i) {
    text += (i == 0 ? ": " : "; ") + missing.examples[i];
  }
  return Status::Unavailable(text);
}

// --- pack data ---

std::vector<std::string> CheckPackData(const RepoContext& ctx, const std::string& id,
                                       const PackInfo* indexed, int64_t* bytes_read) {
  std::vector<std::string> problems;
  const std::string key = PackKey(id);
  auto pack = ctx.store->Get(key);
  if (!pack.ok()) {
    problems.push_back(pack.status().code() == Code::kNotFound
                           ? key + ": missing"
                           : key + ": cannot be read: " + pack.status().ToString());
    return problems;
  }
  if (bytes_read != nullptr) *bytes_read += static_cast<int64_t>(pack->size());
  if (Sha256Hex(*pack) != id) {
    problems.push_back(key + ": content does not match its name (SHA-256)");
  }
  if (indexed != nullptr && indexed->size != pack->size()) {
    problems.push_back(key + ": is " + std::to_string(pack->size()) + " bytes, the index says " +
                       std::to_string(indexed->size));
  }
  auto table = ReadPackTable(*pack, ctx.data_key(), ctx.limits);
  std::vector<BlockEntry> blocks;
  if (table.ok()) {
    blocks = std::move(table).value();
    if (indexed != nullptr) {
      bool same = indexed->blocks.size() == blocks.size();
      for (size_t i = 0; same && i < blocks.size(); ++i) {
        const BlockInfo& b = indexed->blocks[i];
        same = b.offset == blocks[i].offset && b.length == blocks[i].length &&
               b.raw_length == blocks[i].raw_length && b.kind == blocks[i].kind;
      }
      if (!same) problems.push_back(key + ": its table disagrees with the index");
    }
  } else {
    problems.push_back(key + ": " + table.status().message());
    if (indexed == nullptr) return problems;
    for (const BlockInfo& b : indexed->blocks) {  // still find which blocks are damaged
      BlockEntry e;
      e.kind = b.kind;
      e.offset = b.offset;
      e.length = b.length;
      e.raw_length = b.raw_length;
      blocks.push_back(std::move(e));
    }
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockEntry& b = blocks[i];
    std::string where = key + ": block " + std::to_string(i);
    if (b.offset + b.length > pack->size()) {
      problems.push_back(where + ": lies beyond the end of the pack (truncated?)");
      continue;
    }
    auto plain = OpenBlock(std::string_view(*pack).substr(b.offset, b.length), ctx.data_key(), b);
    if (!plain.ok()) {
      const std::string& why = plain.status().message();
      problems.push_back(where + (why == "fails authentication" ? " " : ": ") + why);
      continue;
    }
    Status s = CheckBlockChunks(*plain, b, *ctx.hasher);
    if (!s.ok()) problems.push_back(where + ": " + s.message());
  }
  return problems;
}

// --- verify ---

namespace {

std::string LevelName(const VerifyOptions& o) {
  if (o.restore_test) return "restore-test";
  switch (o.data) {
    case VerifyOptions::Data::kAll:
      return "read-data";
    case VerifyOptions::Data::kSubset:
      return "read-data-subset";
    case VerifyOptions::Data::kStructure:
      break;
  }
  return "structure";
}

class Verifier {
 public:
  Verifier(const RepoContext& ctx, const VerifyOptions& options, const ChunkMap& map,
           std::vector<std::string> index_problems)
      : ctx_(ctx),
        options_(options),
        map_(map),
        walker_(ctx, map),
        index_problems_(std::move(index_problems)),
        rng_(std::random_device{}()) {}

  VerifyReport VerifyOne(const std::string& id) {
    VerifyReport r;
    r.snapshot_id = id;
    auto m = ReadManifest(ctx_, id);
    if (!m.ok()) {
      r.problems.push_back(m.status().message());
    } else {
      CheckStructure(*m, &r);
      // Absent objects first and named as such: the manifest may have been replicated before
      // its packs and index (a distinct situation from damage, and an operator's first question).
      if (MissingObjects missing = CountMissing(r.problems, index_problems_.empty());
          missing.total() > 0) {
        r.problems.insert(r.problems.begin(), IncompleteSnapshot(id, missing).message());
      }
      if (r.problems.empty() && options_.restore_test) RestoreTest(*m, &r);
    }
    r.ok = r.problems.empty();
    WriteRecord(r);
    return r;
  }

 private:
  void CheckStructure(const SnapshotManifest& m, VerifyReport* r) {
    std::set<uint32_t> packs;
    int64_t before = walker_.bytes_fetched();
    walker_.Walk(m, &packs, &r->problems);
    r->bytes_read += walker_.bytes_fetched() - before;
    if (MentionsMissingIndexEntry(r->problems)) {
      r->problems.insert(r->problems.end(), index_problems_.begin(), index_problems_.end());
    }
    for (uint32_t ordinal : packs) {
      const std::vector<std::string>& found = PackProblems(ordinal, &r->bytes_read);
      r->problems.insert(r->problems.end(), found.begin(), found.end());
    }
  }

  // Stat (always) and, when asked and selected, the full data check of one pack; cached.
  const std::vector<std::string>& PackProblems(uint32_t ordinal, int64_t* bytes_read) {
    auto it = packs_.find(ordinal);
    if (it != packs_.end()) return it->second;
    const PackInfo& info = map_.pack(ordinal);
    std::vector<std::string> problems;
    std::string key = PackKey(info.id);
    auto stat = ctx_.store->Stat(key);
    if (!stat.ok()) {
      problems.push_back(stat.status().code() == Code::kNotFound
                             ? key + ": missing"
                             : key + ": " + stat.status().ToString());
    } else if (static_cast<uint64_t>(stat->size) != info.size) {
      problems.push_back(key + ": is " + std::to_string(stat->size) + " bytes, the index says " +
                         std::to_string(info.size));
    }
    if (problems.empty() && ReadData(info)) {
      problems = CheckPackData(ctx_, info.id, &info, bytes_read);
    }
    return packs_.emplace(ordinal, std::move(problems)).first->second;
  }

  bool ReadData(const PackInfo& info) {
    if (options_.data == VerifyOptions::Data::kAll) return true;
    if (options_.data != VerifyOptions::Data::kSubset) return false;
    if (options_.subset_slices > 0) {
      uint64_t n = 0;  // ids are 64 hex digits (an id that is not still lands in one slice)
      const std::string_view head = std::string_view(info.id).substr(0, 16);
      std::from_chars(head.data(), head.data() + head.size(), n, 16);
      return n % static_cast<uint64_t>(options_.subset_slices) ==
             static_cast<uint64_t>(options_.subset_slice);
    }
    return std::uniform_real_distribution<double>(0, 1)(rng_) < options_.subset_fraction;
  }

  void RestoreTest(const SnapshotManifest& m, VerifyReport* r) {
    std::string base = options_.temp_dir;
    if (base.empty()) {
      const char* tmp = getenv("TMPDIR");
      base = tmp && *tmp ? tmp : "/tmp";
    }
    std::string tmpl = base + "/kb-verify-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      r->problems.push_back("restore test: cannot create a temporary directory in " + base);
      return;
    }
    int64_t bytes = 0;
    Status s = RestoreSnapshotFiles(ctx_, m, {}, tmpl + "/data", &bytes);
    r->bytes_read += bytes;
    if (!s.ok()) {
      r->problems.push_back("restore test: " + s.message());
    } else {
      for (std::string& p : options_.restored_check(tmpl + "/data", m)) {
        r->problems.push_back("restore test: " + p);
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(tmpl, ec);
  }

  void WriteRecord(const VerifyReport& r) {
    nlohmann::json j{{"version", kVerifiedVersion},
                     {"time", FormatIso8601(ctx_.NowMs())},
                     {"level", LevelName(options_)},
                     {"ok", r.ok},
                     {"problems", r.problems}};
    auto written = ctx_.WriteSealedJson(VerifiedKey(r.snapshot_id), VerifiedAad(r.snapshot_id), j);
    if (!written.ok()) {
      LogWarn("verify: could not record the result of " + r.snapshot_id + ": " +
              written.status().ToString());
    }
  }

  const RepoContext& ctx_;
  const VerifyOptions& options_;
  const ChunkMap& map_;
  ReferenceWalker walker_;
  std::vector<std::string> index_problems_;
  std::map<uint32_t, std::vector<std::string>> packs_;
  std::mt19937_64 rng_;
};

}  // namespace

Result<std::vector<VerifyReport>> VerifySnapshots(const RepoContext& ctx,
                                                  const std::vector<std::string>& snapshot_ids,
                                                  const VerifyOptions& options) {
  if (options.subset_fraction < 0 || options.subset_fraction > 1) {
    return Status::InvalidArgument("subset_fraction must be between 0 and 1");
  }
  if (options.subset_slices < 0 ||
      (options.subset_slices > 0 &&
       (options.subset_slice < 0 || options.subset_slice >= options.subset_slices))) {
    return Status::InvalidArgument("subset slice must be 0 .. slices - 1");
  }
  if (options.restore_test && !options.restored_check) {
    // The engine cannot judge restored databases itself (it knows no SQLite): a restore test
    // without the caller's check would pass on files alone, a silent weakening.
    return Status::InvalidArgument("restore_test needs a restored-data check (restored_check)");
  }
  std::vector<std::string> ids = snapshot_ids;
  if (ids.empty()) {
    KB_ASSIGN_OR_RETURN(ids, ListSnapshotIds(ctx));
  } else {
    for (const std::string& id : ids) {
      if (!IsSnapshotId(id)) return Status::InvalidArgument("invalid snapshot id " + QuoteName(id));
      auto stat = ctx.store->Stat(SnapshotKey(id));
      if (stat.status().code() == Code::kNotFound) return Status::NotFound("no snapshot " + id);
      KB_RETURN_IF_ERROR(stat.status());
    }
  }
  const std::unordered_set<std::string> planned = PlannedPacks(ctx);
  ChunkMap map;
  KB_ASSIGN_OR_RETURN(IndexLoadResult loaded, LoadChunkMap(ctx, planned, true, &map));
  Verifier verifier(ctx, options, map, loaded.problems);
  std::vector<VerifyReport> reports;
  for (const std::string& id : ids) reports.push_back(verifier.VerifyOne(id));
  return reports;
}

// --- repo check ---

namespace {

struct Listing {
  bool config = false;
  std::vector<std::string> keys, indexes, snapshots, locks, plans, verified;
  std::map<std::string, int64_t> packs;  // id -> size
  std::vector<std::string> unknown;
};

void Classify(const blob::ObjectInfo& info, Listing* l) {
  std::string_view key = info.key;
  auto under = [&](std::string_view prefix, std::string_view* rest) {
    if (key.substr(0, prefix.size()) != prefix) return false;
    *rest = key.substr(prefix.size());
    return true;
  };
  std::string_view rest;
  if (key == kConfigKey) {
    l->config = true;
  } else if (under(kKeysPrefix, &rest) && IsRandomId(rest)) {
    l->keys.emplace_back(rest);
  } else if (std::optional<std::string> pack = PackIdFromKey(key)) {
    l->packs[*pack] = info.size;
  } else if (under(kIndexPrefix, &rest) && IsPackId(rest)) {
    l->indexes.emplace_back(rest);
  } else if (under(kSnapshotsPrefix, &rest) && IsSnapshotId(rest)) {
    l->snapshots.emplace_back(rest);
  } else if (under(kLocksPrefix, &rest) && IsRandomId(rest)) {
    l->locks.emplace_back(rest);
  } else if (under(kPrunePrefix, &rest) && IsRandomId(rest)) {
    l->plans.emplace_back(rest);
  } else if (under(kVerifiedPrefix, &rest) && IsSnapshotId(rest)) {
    l->verified.emplace_back(rest);
  } else if (ParseSegmentKey(key)) {
    // Journal segments (docs/format/SHIPPING.md): known objects; their chains are checked by
    // the shipping code, which knows the snapshots' points.
  } else {
    l->unknown.push_back(info.key);
  }
}

// Problem text for a failed read, or "" (NotFound: vanished while checking, not a problem).
std::string ReadProblem(const Status& s) {
  if (s.ok() || s.code() == Code::kNotFound) return "";
  return s.message();
}

void CheckSmallObjects(const RepoContext& ctx, const Listing& l, RepoCheckReport* r) {
  auto config = ctx.store->Get(kConfigKey);
  if (!config.ok()) {
    r->problems.push_back("config: " + config.status().ToString());
  } else if (auto parsed = ParseConfig(*config); !parsed.ok()) {
    r->problems.push_back(parsed.status().message());
  }
  for (const std::string& id : l.keys) {
    auto text = ctx.store->Get(KeyObjectKey(id));
    std::string p = ReadProblem(text.status());
    if (p.empty() && text.ok()) p = ReadProblem(ParseKeyObject(KeyObjectKey(id), *text).status());
    if (!p.empty()) r->problems.push_back(p);
  }
  for (const std::string& id : l.locks) {
    std::string p = ReadProblem(ReadLock(ctx, id).status());
    if (!p.empty()) r->problems.push_back(p);
  }
  for (const std::string& id : l.plans) {
    std::string p = ReadProblem(ReadPlan(ctx, id).status());
    if (!p.empty()) r->problems.push_back(p);
  }
  for (const std::string& id : l.verified) {
    std::string p = ReadProblem(
        ctx.ReadSealedJson(VerifiedKey(id), VerifiedAad(id), kVerifiedVersion).status());
    if (!p.empty()) r->problems.push_back(p);
  }
}

void CheckIndexAgainstPacks(const IndexLoadResult& loaded, const ChunkMap& map, const Listing& l,
                            RepoCheckReport* r) {
  for (const auto& [index_id, pack_ids] : loaded.objects) {
    for (const std::string& pack_id : pack_ids) {
      auto it = l.packs.find(pack_id);
      if (it == l.packs.end()) {
        r->problems.push_back(IndexKey(index_id) + " names " + PackKey(pack_id) +
                              ", which does not exist");
        continue;
      }
      int64_t ordinal = map.FindPack(pack_id);
      if (ordinal >= 0 &&
          map.pack(static_cast<uint32_t>(ordinal)).size != static_cast<uint64_t>(it->second)) {
        r->problems.push_back(PackKey(pack_id) + ": is " + std::to_string(it->second) + " bytes, " +
                              IndexKey(index_id) + " says " +
                              std::to_string(map.pack(static_cast<uint32_t>(ordinal)).size));
      }
    }
  }
}

}  // namespace

Result<RepoCheckReport> CheckRepository(const RepoContext& ctx, bool read_data) {
  RepoCheckReport r;
  Listing l;
  KB_RETURN_IF_ERROR(ctx.store->List("", [&](const blob::ObjectInfo& info) {
    Classify(info, &l);
    return Status::OK();
  }));
  for (const std::string& key : l.unknown) {
    r.problems.push_back("unknown object " + QuoteName(key));
  }
  CheckSmallObjects(ctx, l, &r);

  // Snapshots are listed before the index is read, so every listed snapshot's index objects
  // (written before its manifest) are in the map.
  ChunkMap map;
  KB_ASSIGN_OR_RETURN(IndexLoadResult loaded, LoadChunkMap(ctx, {}, true, &map));
  r.problems.insert(r.problems.end(), loaded.problems.begin(), loaded.problems.end());
  CheckIndexAgainstPacks(loaded, map, l, &r);

  ReferenceWalker walker(ctx, map);
  std::set<uint32_t> referenced;
  for (const std::string& id : l.snapshots) {
    auto m = ReadManifest(ctx, id);
    if (m.status().code() == Code::kNotFound) continue;
    if (!m.ok()) {
      r.problems.push_back(m.status().message());
      continue;
    }
    r.snapshots++;
    walker.Walk(*m, &referenced, &r.problems);
  }
  std::unordered_set<std::string> referenced_ids;
  for (uint32_t ordinal : referenced) referenced_ids.insert(map.pack(ordinal).id);
  for (const auto& [id, size] : l.packs) {
    if (!referenced_ids.count(id)) r.unreferenced_packs++;
    if (read_data) {
      int64_t ordinal = map.FindPack(id);
      const PackInfo* info = ordinal >= 0 ? &map.pack(static_cast<uint32_t>(ordinal)) : nullptr;
      std::vector<std::string> found = CheckPackData(ctx, id, info, nullptr);
      r.problems.insert(r.problems.end(), found.begin(), found.end());
    }
  }
  r.packs = static_cast<int64_t>(l.packs.size());
  r.indexes = static_cast<int64_t>(l.indexes.size());
  r.keys = static_cast<int64_t>(l.keys.size());
  r.locks = static_cast<int64_t>(l.locks.size());
  r.plans = static_cast<int64_t>(l.plans.size());
  r.ok = r.problems.empty();
  return r;
}

}  // namespace kb::repo
