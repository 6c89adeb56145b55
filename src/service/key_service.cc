// API keys over the catalog: see key_service.h.
#include "service/key_service.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "common/crypto_util.h"
#include "common/logging.h"
#include "common/text_util.h"

namespace kb {

using nlohmann::json;

namespace {

// last_used_at is written at most this often per key.
constexpr int64_t kKeyTouchIntervalMs = 60'000;

std::string NewKeySecret() {
  std::string b64 = Base64Encode(RandomBytes(32));
  // base64url without padding: safe in headers and URLs.
  std::string out = "kb_";
  for (char c : b64) {
    if (c == '+')
      out.push_back('-');
    else if (c == '/')
      out.push_back('_');
    else if (c != '=')
      out.push_back(c);
  }
  return out;
}

}  // namespace

KeyService::KeyService(Catalog* catalog, const Clock* clock, ProjectResolver resolve_project)
    : catalog_(catalog), clock_(clock), resolve_project_(std::move(resolve_project)) {}

Status KeyService::CheckExpiry(std::optional<int> expires_in_days,
                               std::optional<int64_t> expires_at_ms, int64_t now) {
  if (expires_in_days) {
    if (*expires_in_days < 1 || *expires_in_days > kMaxKeyLifetimeDays) {
      return Status::InvalidArgument("expires_in_days must be between 1 and " +
                                     std::to_string(kMaxKeyLifetimeDays));
    }
  }
  if (expires_at_ms) {
    if (expires_in_days) {
      return Status::InvalidArgument("give expires_in_days or expires_at, not both");
    }
    if (*expires_at_ms <= now) return Status::InvalidArgument("expires_at must be in the future");
    if (*expires_at_ms - now > int64_t{kMaxKeyLifetimeDays} * 86'400'000) {
      return Status::InvalidArgument("expires_at is more than " +
                                     std::to_string(kMaxKeyLifetimeDays) + " days away");
    }
  }
  return Status::OK();
}

Result<CreatedKey> KeyService::CreateKey(const std::string& name, KeyScope scope,
                                         const std::vector<std::string>& projects,
                                         std::optional<int> expires_in_days, const Actor& actor,
                                         std::optional<int64_t> expires_at_ms) {
  if (name.empty()) return Status::InvalidArgument("key name must not be empty");
  KB_RETURN_IF_ERROR(ValidateLabel("name", name, kMaxKeyNameBytes));
  CreatedKey out;
  for (const std::string& p : projects) {
    KB_ASSIGN_OR_RETURN(std::string id, resolve_project_(p));
    out.record.projects.push_back(std::move(id));
  }
  const int64_t now = clock_->NowMillis();
  KB_RETURN_IF_ERROR(CheckExpiry(expires_in_days, expires_at_ms, now));
  out.secret = NewKeySecret();
  out.record.id = "key_" + HexEncode(RandomBytes(8));
  out.record.name = name;
  out.record.secret_hash = Sha256Hex(out.secret);
  out.record.scope = scope;
  out.record.created_by = actor.id;
  out.record.created_at_ms = now;
  if (expires_in_days) out.record.expires_at_ms = now + int64_t{*expires_in_days} * 86'400'000;
  if (expires_at_ms) out.record.expires_at_ms = *expires_at_ms;
  KB_RETURN_IF_ERROR(catalog_->CreateKey(out.record));
  LogInfo("api key created", json{{"key", out.record.id}, {"actor", actor.id}}.dump());
  return out;
}

Result<CreatedKey> KeyService::RotateKey(const std::string& key_id, int64_t overlap_seconds,
                                         const Actor& actor) {
  if (overlap_seconds < 0 || overlap_seconds > kMaxRotationOverlapSeconds) {
    return Status::InvalidArgument("overlap_seconds must be between 0 and " +
                                   std::to_string(kMaxRotationOverlapSeconds));
  }
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (key.revoked_at_ms) {
    return Status::FailedPrecondition("api key " + key_id + " is revoked; create a new key");
  }
  const int64_t now = clock_->NowMillis();
  CreatedKey out;
  out.secret = NewKeySecret();
  std::optional<int64_t> previous_until;
  if (overlap_seconds > 0) previous_until = now + overlap_seconds * 1000;
  KB_RETURN_IF_ERROR(catalog_->RotateKey(key_id, Sha256Hex(out.secret), previous_until, now));
  KB_ASSIGN_OR_RETURN(out.record, catalog_->GetKey(key_id));
  LogInfo("api key rotated",
          json{{"key", key_id}, {"actor", actor.id}, {"overlap_seconds", overlap_seconds}}.dump());
  return out;
}

Result<RevokeAllResult> KeyService::RevokeAllKeys(const std::string& caller_key_id,
                                                  bool include_admin, const Actor& actor) {
  if (!include_admin && caller_key_id.empty()) {
    return Status::InvalidArgument(
        "without a calling key every key would be revoked, leaving no admin key: use "
        "include_admin, which prints a new admin key");
  }
  RevokeAllResult out;
  std::string keep = caller_key_id;
  if (include_admin) {
    // The replacement first: if anything fails after it, an admin key still exists.
    KB_ASSIGN_OR_RETURN(CreatedKey created,
                        CreateKey("admin (revoke-all)", KeyScope::kAdmin, {}, std::nullopt, actor));
    keep = created.record.id;
    out.new_admin = std::move(created);
  }
  KB_ASSIGN_OR_RETURN(out.revoked,
                      catalog_->RevokeAllKeys(keep, clock_->NowMillis(), kRevokedRevokeAll));
  LogWarn(
      "all api keys revoked",
      json{{"actor", actor.id}, {"revoked", out.revoked.size()}, {"include_admin", include_admin}}
          .dump());
  return out;
}

Status KeyService::ReinstateKey(const std::string& key_id, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (!key.revoked_at_ms) {
    return Status::FailedPrecondition("api key " + key_id + " is not revoked");
  }
  if (key.revoked_reason != kRevokedProjectDeleted) {
    return Status::FailedPrecondition(
        "api key " + key_id + " was revoked " +
        (key.revoked_reason.empty() ? std::string("by an administrator")
                                    : "(" + key.revoked_reason + ")") +
        "; only keys revoked by a project delete can be reinstated: create a new key");
  }
  for (const std::string& p : key.projects) {
    auto project = catalog_->GetProject(p);
    if (!project.ok() || project->id != p) {
      return Status::FailedPrecondition("api key " + key_id + " is limited to project " + p +
                                        ", which is deleted; restore the project first");
    }
  }
  KB_RETURN_IF_ERROR(catalog_->ReinstateKey(key_id));
  LogInfo("api key reinstated", json{{"key", key_id}, {"actor", actor.id}}.dump());
  return Status::OK();
}

Result<std::vector<ApiKeyRecord>> KeyService::ListKeys() { return catalog_->ListKeys(); }

Status KeyService::RevokeKey(const std::string& key_id, const Actor& actor) {
  KB_ASSIGN_OR_RETURN(ApiKeyRecord key, catalog_->GetKey(key_id));
  if (key.revoked_at_ms) return Status::OK();
  KB_RETURN_IF_ERROR(catalog_->RevokeKey(key_id, clock_->NowMillis(), kRevokedByAdmin));
  LogInfo("api key revoked", json{{"key", key_id}, {"actor", actor.id}}.dump());
  return Status::OK();
}

Result<ApiKeyRecord> KeyService::Authenticate(const std::string& secret, std::string* out_key_id) {
  if (secret.empty()) return Status::Unauthenticated("missing API key");
  // No cache in front of the catalog: a revocation committed before this read is seen by it,
  // on every thread (docs/API.md "Key lifecycle").
  const std::string hash = Sha256Hex(secret);
  auto found = catalog_->FindKeyBySecretHash(hash);
  if (!found.ok()) {
    if (found.status().code() == Code::kNotFound) return Status::Unauthenticated("unknown API key");
    return found.status();
  }
  ApiKeyRecord key = std::move(found).value();
  if (out_key_id) *out_key_id = key.id;
  const int64_t now = clock_->NowMillis();
  if (key.revoked_at_ms) return Status::Unauthenticated("API key has been revoked");
  if (key.secret_hash != hash) {
    // The secret from before the last rotation: valid only within the overlap.
    if (!key.previous_expires_at_ms || *key.previous_expires_at_ms <= now) {
      return Status::Unauthenticated("API key secret was rotated; use the new secret");
    }
  }
  if (key.expires_at_ms && *key.expires_at_ms <= now) {
    return Status::Unauthenticated("API key has expired");
  }
  // last_used_at is informational: write it at most once a minute per key, so that reads do not
  // turn into catalog writes.
  if (!key.last_used_at_ms || now - *key.last_used_at_ms >= kKeyTouchIntervalMs) {
    Status s = catalog_->TouchKey(key.id, now);
    if (!s.ok()) LogWarn("recording key use failed", json{{"error", s.ToString()}}.dump());
  }
  return key;
}

Result<std::optional<std::string>> KeyService::EnsureAdminKey(const std::string& admin_token) {
  const int64_t now = clock_->NowMillis();
  if (!admin_token.empty()) {
    if (admin_token.size() < 16) {
      return Status::InvalidArgument("KB_ADMIN_TOKEN must be at least 16 characters");
    }
    auto existing = catalog_->FindKeyBySecretHash(Sha256Hex(admin_token));
    if (existing.ok()) return std::optional<std::string>();
    if (existing.status().code() != Code::kNotFound) return existing.status();
    ApiKeyRecord r;
    r.id = "key_" + HexEncode(RandomBytes(8));
    r.name = "admin (KB_ADMIN_TOKEN)";
    r.secret_hash = Sha256Hex(admin_token);
    r.scope = KeyScope::kAdmin;
    r.created_by = "system";
    r.created_at_ms = now;
    KB_RETURN_IF_ERROR(catalog_->CreateKey(r));
    return std::optional<std::string>();
  }
  KB_ASSIGN_OR_RETURN(auto keys, catalog_->ListKeys());
  for (const auto& k : keys) {
    if (k.scope == KeyScope::kAdmin && !k.revoked_at_ms) return std::optional<std::string>();
  }
  KB_ASSIGN_OR_RETURN(CreatedKey created,
                      CreateKey("admin", KeyScope::kAdmin, {}, std::nullopt, Actor{"system", ""}));
  return std::optional<std::string>(created.secret);
}

}  // namespace kb
