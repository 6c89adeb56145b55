// The numbers and names of the backup repository format, in one place: object keys, associated
// data (AAD) of every sealed box, limits, default intervals, and the validators of every name read
// from a repository. Each constant cites its section of docs/format/BACKUP_REPOSITORY.md; if this
// file and the document disagree, that is a bug in one of them.
//
// Thread-safety: constants and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace kb::repo {

// --- Versions ("Versioning") ---
// Version 2 changed config, packs, index objects and manifests; a binary reads exactly the config
// version it writes (version 1 is refused: "unsupported repository format version 1").
inline constexpr int kConfigVersion = 2;
inline constexpr int kKeyVersion = 1;
inline constexpr uint16_t kPackVersion = 2;
inline constexpr uint16_t kIndexVersion = 2;
inline constexpr int kSnapshotVersion = 2;
inline constexpr int kLockVersion = 1;
inline constexpr int kPlanVersion = 1;
inline constexpr int kVerifiedVersion = 1;

inline constexpr std::string_view kConfigFormat = "knowledgebeast-repository";
inline constexpr std::string_view kKeyFormat = "knowledgebeast-key";
inline constexpr std::string_view kSnapshotFormat = "knowledgebeast-snapshot";

// --- Object keys ("Layout") ---
inline constexpr std::string_view kConfigKey = "config";
inline constexpr std::string_view kKeysPrefix = "keys/";
inline constexpr std::string_view kDataPrefix = "data/";
inline constexpr std::string_view kIndexPrefix = "index/";
inline constexpr std::string_view kSnapshotsPrefix = "snapshots/";
inline constexpr std::string_view kLocksPrefix = "locks/";
inline constexpr std::string_view kPrunePrefix = "prune/";
inline constexpr std::string_view kVerifiedPrefix = "verified/";

std::string PackKey(std::string_view pack_hex);  // data/<pp>/<pack-id>
std::string IndexKey(std::string_view index_hex);
std::string SnapshotKey(std::string_view snapshot_id);
std::string KeyObjectKey(std::string_view key_id);
std::string LockKey(std::string_view lock_id);
std::string PlanKey(std::string_view plan_id);
std::string VerifiedKey(std::string_view snapshot_id);

// --- AAD of sealed boxes ("Common encodings" and each object's section) ---
std::string ConfigAad(std::string_view repo_id, int64_t chunk_size, int64_t block_size,
                      int64_t pack_size, int64_t tree_fanout);
std::string KeyWrapAad(std::string_view repo_id, std::string_view key_id);
inline constexpr std::string_view kBlockAad = "kb1:block";
inline constexpr std::string_view kPackTableAad = "kb1:pack-table";
inline constexpr std::string_view kIndexAad = "kb1:index";
std::string SnapshotAad(std::string_view snapshot_id);
std::string LockAad(std::string_view lock_id);
std::string PlanAad(std::string_view plan_id);
std::string VerifiedAad(std::string_view snapshot_id);

// The 32 bytes sealed in config.key_check: SHA-256("knowledgebeast-key-check").
std::string KeyCheckPlaintext();
inline constexpr std::string_view kKeyFileHkdfInfo = "kb1 keyfile kek";

// --- Sizes and limits ---
inline constexpr size_t kMasterKeyBytes = 64;
inline constexpr size_t kKeyBytes = 32;
inline constexpr size_t kNonceBytes = 12;
inline constexpr size_t kTagBytes = 16;
inline constexpr size_t kBoxOverhead = kNonceBytes + kTagBytes;  // 28: shorter is Corruption
inline constexpr size_t kChunkIdBytes = 16;  // truncated HMAC ("Terminology", chunk id)
inline constexpr size_t kSaltBytes = 16;
inline constexpr size_t kMinKeyFileBytes = 32;

inline constexpr int64_t kMinChunkSize = 512, kMaxChunkSize = 1 << 20;
inline constexpr int64_t kMaxBlockSize = 8 << 20;
inline constexpr int64_t kMinPackSize = 1 << 20, kMaxPackSize = 1LL << 30;
inline constexpr int64_t kMinTreeFanout = 16, kMaxTreeFanout = 65536;
inline constexpr int kMinScryptLog2N = 14, kMaxScryptLog2N = 22;
inline constexpr int kScryptR = 8, kScryptP = 1;          // written by this binary
inline constexpr int kMaxScryptR = 32, kMaxScryptP = 16;  // accepted when reading
inline constexpr int kMinCompressionLevel = 1, kMaxCompressionLevel = 19;
// zstd's minimum match length for everything this binary compresses ("Compression"): a writer's
// choice, not part of the format (any zstd decoder reads the frames).
inline constexpr int kZstdMinMatch = 4;

// A block holds at most this many chunks ("Packs"): small files make short chunks.
inline constexpr int64_t kMaxChunksPerBlock = 4096;
// Index objects are written after every this many packs ("Index").
inline constexpr int kPacksPerIndex = 64;
// Plaintext limits of metadata boxes (manifests, index objects, plans...): refuses a
// decompression bomb from a key holder before allocating.
inline constexpr size_t kMaxMetadataPlaintext = 1ULL << 30;
// A path in a manifest ("Snapshots").
inline constexpr size_t kMaxPathBytes = 255;

// --- Pack framing ("Packs") ---
inline constexpr std::string_view kPackMagic = "KBPK";
inline constexpr std::string_view kPackFooterMagic = "KBPT";
inline constexpr size_t kPackHeaderBytes = 8;
inline constexpr size_t kPackFooterBytes = 8;
inline constexpr std::string_view kIndexMagic = "KBIX";

// --- Locks and prune ("Locks", "Prune plans") ---
inline constexpr int64_t kLockRefreshMs = 60'000;
inline constexpr int64_t kStaleLockMs = 30LL * 60 * 1000;
inline constexpr int64_t kMaxClockSkewMs = 5LL * 60 * 1000;
inline constexpr int64_t kPruneGraceMs = 60LL * 60 * 1000;

// --- Name validators: every name read from a repository goes through one of these ---
bool IsLowerHex(std::string_view s, size_t length);
bool IsPackId(std::string_view s);      // 64 lower-case hex
bool IsRandomId(std::string_view s);    // 16 lower-case hex (key, lock, plan ids)
bool IsSnapshotId(std::string_view s);  // YYYYMMDDTHHMMSSZ-xxxxxxxx
// "data/<pp>/<64 hex>" with pp = first two digits: the pack id, else nullopt.
std::optional<std::string> PackIdFromKey(std::string_view key);

// A relative path in a manifest: [A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*, no "."/".." segment,
// at most 255 bytes. Corruption naming `what` otherwise (the text of `path` is quoted escaped).
Status ValidateManifestPath(std::string_view path, std::string_view what);
// A project id: one segment of the same alphabet.
Status ValidateProjectId(std::string_view id, std::string_view what);

// A snapshot id for a start time: "20261126T130000Z-7c1e9a02" (random suffix).
std::string NewSnapshotId(int64_t start_ms);
// 16 random lower-case hex digits.
std::string NewRandomId();

// FailedPrecondition: "repository object <name> has format version <v>; this binary reads
// version <known>".
Status VersionTooNew(std::string_view object, int64_t version, int64_t known);

// A name shown in messages: escaped and cut, so a hostile name cannot forge log lines.
std::string QuoteName(std::string_view name);

}  // namespace kb::repo
