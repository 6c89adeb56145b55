// Journal segments in the repository (docs/format/SHIPPING.md): names, the sealed JSON body,
// and following a project's chain of segments from a snapshot's point.
#include "repo/segments.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <set>

#include "repo/crypto.h"
#include "repo/repository_context.h"
#include "repo/repository_format.h"

namespace kb::repo {

namespace {

constexpr size_t kTagHex = 16;

std::string Hex16(int64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, static_cast<uint64_t>(v));
  return buf;
}

std::optional<int64_t> ParseHex16(std::string_view s) {
  if (!IsLowerHex(s, 16)) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) v = v * 16 + static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  if (v > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
  return static_cast<int64_t>(v);
}

std::string ProjectPrefix(std::string_view project_id) {
  return std::string(kSegmentsPrefix) + std::string(project_id) + "/";
}

std::string SegmentAad(std::string_view key) { return "kb1:segment:" + std::string(key); }

Result<const RepoContext*> Context(Repository& repo) {
  const RepoContext* ctx = ContextOf(repo);
  if (ctx == nullptr) {
    return Status::InvalidArgument("segments need a repository opened by Repository::Open");
  }
  return ctx;
}

std::string TagOf(const RepoContext& ctx, std::string_view project_id, int64_t lsn,
                  std::string_view checksum) {
  return StateTagFor(*ctx.hasher, project_id, lsn, checksum);
}

std::string KeyFor(const Segment& s, std::string_view base_tag, std::string_view end_tag) {
  return ProjectPrefix(s.project_id) + Hex16(s.first_lsn) + "-" + Hex16(s.last_lsn) + "-" +
         Hex16(s.first_ts_ms) + "-" + std::string(base_tag) + "-" + std::string(end_tag);
}

Status CheckSegmentShape(const Segment& s, std::string_view what) {
  auto bad = [&](const std::string& why) {
    return Status::Corruption(std::string(what) + ": " + why);
  };
  if (s.first_lsn < 1 || s.last_lsn < s.first_lsn) return bad("invalid LSN range");
  if (s.first_ts_ms < 0) return bad("invalid commit time");
  if (static_cast<int64_t>(s.entries.size()) != s.last_lsn - s.first_lsn + 1) {
    return bad("holds " + std::to_string(s.entries.size()) + " entries for LSNs " +
               std::to_string(s.first_lsn) + ".." + std::to_string(s.last_lsn));
  }
  if (static_cast<int64_t>(s.entries.size()) > kMaxSegmentEntries) return bad("too many entries");
  for (size_t i = 0; i < s.entries.size(); ++i) {
    if (s.entries[i].lsn != s.first_lsn + static_cast<int64_t>(i)) {
      return bad("entry " + std::to_string(i) + " has LSN " + std::to_string(s.entries[i].lsn) +
                 ", expected " + std::to_string(s.first_lsn + static_cast<int64_t>(i)));
    }
    if (!IsLowerHex(s.entries[i].checksum, 64)) {
      return bad("entry LSN " + std::to_string(s.entries[i].lsn) + " has no valid checksum");
    }
  }
  if (s.first_lsn == 1 ? !s.base_checksum.empty() : !IsLowerHex(s.base_checksum, 64)) {
    return bad("invalid base_checksum");
  }
  if (s.checksum != s.entries.back().checksum) {
    return bad("checksum differs from its last entry's");
  }
  if (s.first_ts_ms != s.entries.front().ts_ms || s.last_ts_ms != s.entries.back().ts_ms) {
    return bad("commit times differ from its entries'");
  }
  return Status::OK();
}

nlohmann::json SegmentToJson(const Segment& s) {
  nlohmann::json entries = nlohmann::json::array();
  for (const SegmentEntry& e : s.entries) {
    entries.push_back({{"lsn", e.lsn},
                       {"ts_ms", e.ts_ms},
                       {"actor", e.actor},
                       {"op", e.op},
                       {"payload", e.payload},
                       {"checksum", e.checksum}});
  }
  return {{"format", kSegmentFormat},         {"version", kSegmentVersion},
          {"project", s.project_id},          {"generation", s.generation},
          {"first_lsn", s.first_lsn},         {"last_lsn", s.last_lsn},
          {"base_checksum", s.base_checksum}, {"checksum", s.checksum},
          {"first_ts_ms", s.first_ts_ms},     {"last_ts_ms", s.last_ts_ms},
          {"entries", std::move(entries)}};
}

Result<Segment> SegmentFromJson(const nlohmann::json& j, std::string_view what) {
  Segment s;
  KB_ASSIGN_OR_RETURN(std::string format, JsonString(j, "format", what));
  if (format != kSegmentFormat) return Status::Corruption(std::string(what) + ": not a segment");
  KB_ASSIGN_OR_RETURN(s.project_id, JsonString(j, "project", what));
  KB_ASSIGN_OR_RETURN(s.generation, JsonInt(j, "generation", what));
  KB_ASSIGN_OR_RETURN(s.first_lsn, JsonInt(j, "first_lsn", what));
  KB_ASSIGN_OR_RETURN(s.last_lsn, JsonInt(j, "last_lsn", what));
  KB_ASSIGN_OR_RETURN(s.base_checksum, JsonString(j, "base_checksum", what));
  KB_ASSIGN_OR_RETURN(s.checksum, JsonString(j, "checksum", what));
  KB_ASSIGN_OR_RETURN(s.first_ts_ms, JsonInt(j, "first_ts_ms", what));
  KB_ASSIGN_OR_RETURN(s.last_ts_ms, JsonInt(j, "last_ts_ms", what));
  auto entries = j.find("entries");
  if (entries == j.end() || !entries->is_array()) {
    return Status::Corruption(std::string(what) + ": field \"entries\" missing or not an array");
  }
  for (const nlohmann::json& e : *entries) {
    if (!e.is_object()) return Status::Corruption(std::string(what) + ": entry not an object");
    SegmentEntry entry;
    KB_ASSIGN_OR_RETURN(entry.lsn, JsonInt(e, "lsn", what));
    KB_ASSIGN_OR_RETURN(entry.ts_ms, JsonInt(e, "ts_ms", what));
    KB_ASSIGN_OR_RETURN(entry.actor, JsonString(e, "actor", what));
    KB_ASSIGN_OR_RETURN(entry.op, JsonString(e, "op", what));
    KB_ASSIGN_OR_RETURN(entry.payload, JsonString(e, "payload", what));
    KB_ASSIGN_OR_RETURN(entry.checksum, JsonString(e, "checksum", what));
    s.entries.push_back(std::move(entry));
  }
  return s;
}

// Whether a segment continues entry `e` (starts at e.lsn + 1 with e's state as its base) whose
// first entry was committed after `ts_after` and by `at_ms` (when given).
bool BranchesAt(const std::multimap<int64_t, const SegmentName*>& by_first, const RepoContext& ctx,
                std::string_view project_id, const SegmentEntry& e, int64_t ts_after,
                const std::optional<int64_t>& at_ms) {
  std::string tag;
  auto [begin, end] = by_first.equal_range(e.lsn + 1);
  for (auto it = begin; it != end; ++it) {
    const SegmentName& n = *it->second;
    if (n.first_ts_ms <= ts_after) continue;
    if (at_ms && n.first_ts_ms > *at_ms) continue;
    if (tag.empty()) tag = TagOf(ctx, project_id, e.lsn, e.checksum);
    if (n.base_tag == tag) return true;
  }
  return false;
}

}  // namespace

std::string StateTagFor(const ChunkIdHasher& id_hasher, std::string_view project_id, int64_t lsn,
                        std::string_view checksum) {
  // The chunk-id HMAC (id key) over a string that names project, position and state: a tag
  // says nothing about the state to anyone without the key.
  const std::string text = "kb1:state:" + std::string(project_id) + ":" + std::to_string(lsn) +
                           ":" + std::string(checksum);
  return ChunkIdHex(id_hasher.Hash(text)).substr(0, kTagHex);
}

std::string StateTag(Repository& repo, std::string_view project_id, int64_t lsn,
                     std::string_view checksum) {
  const RepoContext* ctx = ContextOf(repo);
  return ctx == nullptr ? std::string() : TagOf(*ctx, project_id, lsn, checksum);
}

std::optional<SegmentName> ParseSegmentKey(std::string_view key) {
  if (key.substr(0, kSegmentsPrefix.size()) != kSegmentsPrefix) return std::nullopt;
  std::string_view rest = key.substr(kSegmentsPrefix.size());
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  SegmentName n;
  n.key = std::string(key);
  n.project_id = std::string(rest.substr(0, slash));
  if (!ValidateProjectId(n.project_id, "segment").ok()) return std::nullopt;
  std::string_view base = rest.substr(slash + 1);
  // <first>-<last>-<first ts>-<base tag>-<end tag>: five groups of 16 hex digits.
  if (base.size() != 16 * 5 + 4) return std::nullopt;
  for (size_t dash : {16u, 33u, 50u, 67u}) {
    if (base[dash] != '-') return std::nullopt;
  }
  auto first = ParseHex16(base.substr(0, 16));
  auto last = ParseHex16(base.substr(17, 16));
  auto first_ts = ParseHex16(base.substr(34, 16));
  if (!first || !last || !first_ts || *first < 1 || *last < *first) return std::nullopt;
  if (!IsLowerHex(base.substr(51, 16), 16) || !IsLowerHex(base.substr(68, 16), 16)) {
    return std::nullopt;
  }
  n.first_lsn = *first;
  n.last_lsn = *last;
  n.first_ts_ms = *first_ts;
  n.base_tag = std::string(base.substr(51, 16));
  n.end_tag = std::string(base.substr(68, 16));
  return n;
}

Result<SegmentName> WriteSegment(Repository& repo, const Segment& segment) {
  KB_ASSIGN_OR_RETURN(const RepoContext* ctx, Context(repo));
  if (Status s = ValidateProjectId(segment.project_id, "segment"); !s.ok()) {
    return Status::InvalidArgument(s.message());
  }
  if (segment.entries.empty()) return Status::InvalidArgument("a segment needs entries");
  if (Status s = CheckSegmentShape(segment, "segment"); !s.ok()) {
    return Status::InvalidArgument(s.message());
  }
  SegmentName name;
  name.project_id = segment.project_id;
  name.first_lsn = segment.first_lsn;
  name.last_lsn = segment.last_lsn;
  name.first_ts_ms = segment.first_ts_ms;
  name.base_tag = TagOf(*ctx, segment.project_id, segment.first_lsn - 1, segment.base_checksum);
  name.end_tag = TagOf(*ctx, segment.project_id, segment.last_lsn, segment.checksum);
  name.key = KeyFor(segment, name.base_tag, name.end_tag);
  KB_ASSIGN_OR_RETURN(name.size,
                      ctx->WriteSealedJson(name.key, SegmentAad(name.key), SegmentToJson(segment)));
  return name;
}

Result<std::vector<SegmentName>> ListSegments(Repository& repo, std::string_view project_id,
                                              std::vector<std::string>* ignored) {
  if (Status s = ValidateProjectId(project_id, "segments"); !s.ok()) {
    return Status::InvalidArgument(s.message());
  }
  std::vector<SegmentName> names;
  KB_RETURN_IF_ERROR(repo.store().List(ProjectPrefix(project_id), [&](const blob::ObjectInfo& o) {
    std::optional<SegmentName> n = ParseSegmentKey(o.key);
    if (!n || n->project_id != project_id) {
      if (ignored) ignored->push_back(o.key);
    } else {
      n->size = o.size;
      names.push_back(std::move(*n));
    }
    return Status::OK();
  }));
  // Zero-padded hex sorts numerically already; sort anyway, the listing order is the store's.
  std::sort(names.begin(), names.end(),
            [](const SegmentName& a, const SegmentName& b) { return a.key < b.key; });
  return names;
}

Result<std::vector<std::string>> ListSegmentProjects(Repository& repo) {
  std::set<std::string> projects;
  KB_RETURN_IF_ERROR(repo.store().List(kSegmentsPrefix, [&](const blob::ObjectInfo& o) {
    if (std::optional<SegmentName> n = ParseSegmentKey(o.key)) projects.insert(n->project_id);
    return Status::OK();
  }));
  return std::vector<std::string>(projects.begin(), projects.end());
}

Result<Segment> ReadSegment(Repository& repo, const SegmentName& name) {
  KB_ASSIGN_OR_RETURN(const RepoContext* ctx, Context(repo));
  KB_ASSIGN_OR_RETURN(nlohmann::json j,
                      ctx->ReadSealedJson(name.key, SegmentAad(name.key), kSegmentVersion));
  KB_ASSIGN_OR_RETURN(Segment s, SegmentFromJson(j, name.key));
  KB_RETURN_IF_ERROR(CheckSegmentShape(s, name.key));
  if (s.project_id != name.project_id || s.first_lsn != name.first_lsn ||
      s.last_lsn != name.last_lsn || s.first_ts_ms != name.first_ts_ms) {
    return Status::Corruption(name.key + ": body does not match its name");
  }
  if (TagOf(*ctx, s.project_id, s.first_lsn - 1, s.base_checksum) != name.base_tag ||
      TagOf(*ctx, s.project_id, s.last_lsn, s.checksum) != name.end_tag) {
    return Status::Corruption(name.key + ": checksums do not match the name's state tags");
  }
  return s;
}

Result<ChainWalk> FollowChain(Repository& repo, std::string_view project_id,
                              const ChainPoint& start, const ChainLimit& limit,
                              const std::function<Status(const SegmentEntry&)>& apply) {
  KB_ASSIGN_OR_RETURN(const RepoContext* ctx, Context(repo));
  KB_ASSIGN_OR_RETURN(std::vector<SegmentName> names, ListSegments(repo, project_id));
  std::multimap<int64_t, const SegmentName*> by_first;
  for (const SegmentName& n : names) by_first.emplace(n.first_lsn, &n);
  ChainWalk walk;
  walk.start = start;
  walk.reached = start;
  auto at_limit = [&](int64_t next_lsn, int64_t next_ts) {
    return (limit.lsn && next_lsn > *limit.lsn) || (limit.at_ms && next_ts > *limit.at_ms);
  };
  // The gap's extent: everything listed beyond the point reached.
  auto set_gap = [&](std::string why) {
    walk.gap = std::move(why);
    walk.unreachable_first_lsn = walk.reached.lsn + 1;
    const SegmentName* newest = nullptr;
    for (const SegmentName& n : names) {
      if (n.first_lsn > walk.reached.lsn && (!newest || n.last_lsn > newest->last_lsn)) newest = &n;
    }
    if (newest) {
      walk.unreachable_last_lsn = newest->last_lsn;
      if (auto s = ReadSegment(repo, *newest); s.ok()) walk.unreachable_until_ms = s->last_ts_ms;
    }
  };
  bool stopped_by_limit = false;
  while (!stopped_by_limit) {
    if (limit.lsn && walk.reached.lsn >= *limit.lsn) {
      walk.limit_reached = true;
      break;
    }
    const int64_t next = walk.reached.lsn + 1;
    const std::string tag = TagOf(*ctx, project_id, walk.reached.lsn, walk.reached.checksum);
    // Segments holding the next LSN: those starting there must have our state as their base
    // (the tag says so without reading); one starting earlier (the chain starts at a snapshot
    // inside it) must hold our state at our LSN, which only its entries can tell.
    std::vector<const SegmentName*> candidates;
    for (const SegmentName& n : names) {
      if (n.first_lsn == next ? n.base_tag == tag : (n.first_lsn < next && n.last_lsn >= next)) {
        candidates.push_back(&n);
      }
    }
    // Two segments can continue one point: a project restored to an earlier state writes a new
    // history from there. The one that was live at the limit wins: the newest whose next entry
    // was committed at or before it (the newest of all without a time limit).
    std::optional<Segment> chosen;
    const SegmentName* chosen_name = nullptr;
    int64_t chosen_ts = 0;
    bool later_only = false;  // some continue this point, all after the time limit
    std::string unreadable;
    for (const SegmentName* n : candidates) {
      Result<Segment> s = ReadSegment(repo, *n);
      if (!s.ok()) {
        if (n->first_lsn == next) unreadable = s.status().ToString();
        continue;
      }
      if (n->first_lsn < next) {
        const SegmentEntry& before =
            s->entries[static_cast<size_t>(walk.reached.lsn - n->first_lsn)];
        if (before.checksum != walk.reached.checksum) continue;  // another history
      }
      const int64_t ts = s->entries[static_cast<size_t>(next - n->first_lsn)].ts_ms;
      if (limit.at_ms && ts > *limit.at_ms) {
        later_only = true;
        continue;
      }
      if (!chosen || ts > chosen_ts) {
        chosen = std::move(*s);
        chosen_name = n;
        chosen_ts = ts;
      }
    }
    if (!chosen && later_only && unreadable.empty()) {  // the limit lies before them
      walk.limit_reached = true;
      break;
    }
    if (!chosen) {
      if (!unreadable.empty()) {
        set_gap("segment unreadable: " + unreadable);
        return walk;
      }
      // No segment continues this point. The chain's end, unless something lies beyond it: then
      // a segment is missing (or belongs to another history: still said, never skipped).
      // Only segments wholly beyond the point count: one overlapping the LSNs already applied
      // belongs to another history.
      for (const SegmentName& n : names) {
        if (n.first_lsn > walk.reached.lsn + 1) {
          bool continues_other = false;
          for (const SegmentName& m : names) {
            if (m.last_lsn == n.first_lsn - 1 && m.end_tag == n.base_tag) continues_other = true;
          }
          if (!continues_other) {
            set_gap("no segment continues LSN " + std::to_string(walk.reached.lsn) + "; segment " +
                    n.key + " starts at LSN " + std::to_string(n.first_lsn) +
                    " (a segment is missing)");
            return walk;
          }
        }
      }
      break;
    }
    walk.segments.push_back(chosen_name->key);
    const std::vector<SegmentEntry>& entries = chosen->entries;
    for (size_t i = 0; i < entries.size(); ++i) {
      const SegmentEntry& e = entries[i];
      if (e.lsn < next) continue;
      if (at_limit(e.lsn, e.ts_ms)) {
        stopped_by_limit = true;
        walk.limit_reached = true;
        break;
      }
      if (apply) KB_RETURN_IF_ERROR(apply(e));
      walk.reached = {e.lsn, e.checksum, e.ts_ms};
      ++walk.entries;
      // A history may branch off inside this segment (the project was restored to this point
      // and wrote on): a segment continuing this entry, committed after this segment's next
      // entry and within the limit, was the live one. Back to choosing at the next LSN.
      if (i + 1 < entries.size() &&
          BranchesAt(by_first, *ctx, project_id, e, entries[i + 1].ts_ms, limit.at_ms)) {
        break;
      }
    }
  }
  return walk;
}

}  // namespace kb::repo
