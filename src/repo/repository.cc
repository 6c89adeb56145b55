// Repository: Init / Open (config, keys, key check), key management, snapshot listing, and the
// glue from the public interface to the parts (snapshot.cc, restore_files.cc, verify.cc,
// prune.cc), which all work on the RepoContext owned here.
#include "repo/repository.h"

#include <algorithm>
#include <cstdlib>

#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "repo/copy.h"
#include "repo/prune.h"
#include "repo/repository_context.h"
#include "repo/repository_format.h"
#include "repo/repository_keys.h"
#include "repo/restore_files.h"
#include "repo/retention.h"
#include "repo/snapshot.h"
#include "repo/verify.h"

namespace kb::repo {

namespace {

constexpr size_t kMaxKeyLabelBytes = 200;

std::string NoRepository(const blob::BlobStore& store) {
  return "no repository at " + store.Describe() + " (run `knowledgebeast repo init`)";
}

Result<std::vector<std::string>> ListKeyIds(blob::BlobStore& store) {
  std::vector<std::string> ids;
  KB_RETURN_IF_ERROR(store.List(kKeysPrefix, [&](const blob::ObjectInfo& info) {
    std::string_view id = std::string_view(info.key).substr(kKeysPrefix.size());
    if (IsRandomId(id)) ids.emplace_back(id);
    return Status::OK();
  }));
  return ids;
}

class RepositoryImpl final : public Repository {
 public:
  RepositoryImpl(std::unique_ptr<blob::BlobStore> store, RepoConfig config, MasterKey key,
                 std::string key_id, const Clock* clock)
      : store_(std::move(store)), config_(std::move(config)), key_id_(std::move(key_id)) {
    ctx_.store = store_.get();
    ctx_.clock = clock;
    ctx_.repo_id = config_.id;
    ctx_.params = config_.params;
    ctx_.limits = FormatLimits::From(config_.params);
    ctx_.key = std::move(key);
    ctx_.hasher = std::make_unique<ChunkIdHasher>(ctx_.key.id_key.view());
  }

  const std::string& id() const override { return config_.id; }
  const RepositoryParams& params() const override { return ctx_.params; }
  blob::BlobStore& store() override { return *store_; }
  std::string Describe() const override {
    return "repository " + config_.id + " at " + store_->Describe();
  }

  Result<KeyInfo> AddKey(const KeySource& key, const std::string& label) override {
    KB_RETURN_IF_ERROR(ValidateLabel("key label", label, kMaxKeyLabelBytes));
    KB_ASSIGN_OR_RETURN(KeyMaterial material, LoadKeyMaterial(key));
    KB_ASSIGN_OR_RETURN(KeyObject k, MakeKeyObject(ctx_.key, config_.id, material, label,
                                                   ctx_.params.scrypt_log2_n, ctx_.NowMs()));
    KB_RETURN_IF_ERROR(store_->Put(KeyObjectKey(k.id), EncodeKeyObject(k)));
    return KeyInfo{k.id, k.label, k.kdf, k.created, false};
  }

  Result<std::vector<KeyInfo>> ListKeys() override {
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListKeyIds(*store_));
    std::vector<KeyInfo> keys;
    for (const std::string& id : ids) {
      auto text = store_->Get(KeyObjectKey(id));
      if (text.status().code() == Code::kNotFound) continue;
      KB_RETURN_IF_ERROR(text.status());
      auto k = ParseKeyObject(KeyObjectKey(id), *text);
      if (!k.ok()) {
        LogWarn("repository: skipping unreadable key object: " + k.status().ToString());
        continue;
      }
      keys.push_back(KeyInfo{k->id, k->label, k->kdf, k->created, k->id == key_id_});
    }
    return keys;
  }

  Status RemoveKey(const std::string& key_id) override {
    if (!IsRandomId(key_id)) return Status::InvalidArgument("invalid key id " + QuoteName(key_id));
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListKeyIds(*store_));
    if (std::find(ids.begin(), ids.end(), key_id) == ids.end()) {
      return Status::NotFound("repository " + config_.id + " has no key " + key_id);
    }
    if (ids.size() <= 1) {
      return Status::FailedPrecondition("key " + key_id +
                                        " is the last key of the repository; add another first");
    }
    return store_->Delete(KeyObjectKey(key_id));
  }

  Result<SnapshotManifest> CreateSnapshot(const SnapshotSource& source,
                                          const BackupOptions& options) override {
    return WriteSnapshot(ctx_, source, options);
  }

  Result<std::vector<std::string>> ListSnapshotIds() override {
    return repo::ListSnapshotIds(ctx_);
  }

  Result<std::vector<SnapshotSummary>> ListSnapshots() override {
    KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo::ListSnapshotIds(ctx_));
    std::vector<SnapshotSummary> out;
    for (const std::string& id : ids) {
      auto m = ReadManifest(ctx_, id);
      if (m.status().code() == Code::kNotFound) continue;  // forgotten meanwhile
      SnapshotSummary s;
      s.id = id;
      if (!m.ok()) {
        if (m.status().code() != Code::kCorruption &&
            m.status().code() != Code::kFailedPrecondition) {
          return m.status();
        }
        s.problem = m.status().ToString();  // listed, so that it can be seen and forgotten
      } else {
        s.time = m->time;
        s.trigger = m->trigger;
        s.scope = m->scope;
        for (const ProjectSnapshot& p : m->projects) {
          s.projects.push_back(p.name);
          if (p.source_check.failed()) s.source_check_failed.push_back(p.name);
        }
        s.bytes = m->stats.bytes;
        s.added_stored_bytes = m->stats.added_stored_bytes;
      }
      s.verified = LastVerified(id);
      out.push_back(std::move(s));
    }
    // Oldest first by start time (milliseconds), then id: ids sort only to the second, so two
    // snapshots taken within one second would otherwise be ordered by their random suffix.
    std::stable_sort(out.begin(), out.end(),
                     [](const SnapshotSummary& a, const SnapshotSummary& b) {
                       const int64_t ta = SnapshotTimeMillis(a).value_or(0),
                                     tb = SnapshotTimeMillis(b).value_or(0);
                       return ta != tb ? ta < tb : a.id < b.id;
                     });
    return out;
  }

  Result<SnapshotManifest> ReadSnapshot(const std::string& id) override {
    return ReadManifest(ctx_, id);
  }

  Status ForgetSnapshot(const std::string& id) override {
    if (!IsSnapshotId(id)) return Status::InvalidArgument("invalid snapshot id " + QuoteName(id));
    auto stat = store_->Stat(SnapshotKey(id));
    if (stat.status().code() == Code::kNotFound) return Status::NotFound("no snapshot " + id);
    KB_RETURN_IF_ERROR(stat.status());
    KB_RETURN_IF_ERROR(store_->Delete(SnapshotKey(id)));
    return store_->Delete(VerifiedKey(id));
  }

  Status RestoreFiles(const SnapshotManifest& manifest, const std::vector<std::string>& project_ids,
                      const std::string& target_dir) override {
    return RestoreSnapshotFiles(ctx_, manifest, project_ids, target_dir);
  }

  Result<std::vector<VerifyReport>> Verify(const std::vector<std::string>& snapshot_ids,
                                           const VerifyOptions& options) override {
    return VerifySnapshots(ctx_, snapshot_ids, options);
  }

  Result<RepoCheckReport> Check(bool read_data) override {
    return CheckRepository(ctx_, read_data);
  }

  Result<PruneReport> Prune(const PruneOptions& options) override {
    return PruneRepository(ctx_, options);
  }

  // For operations over two repositories (CopySnapshot); not part of the interface.
  const RepoContext& context() const { return ctx_; }

 private:
  // ISO time of the last verify of `id` if it succeeded, else "".
  std::string LastVerified(const std::string& id) {
    auto j = ctx_.ReadSealedJson(VerifiedKey(id), VerifiedAad(id), kVerifiedVersion);
    if (!j.ok()) return "";
    auto ok = j->find("ok");
    auto time = j->find("time");
    if (ok == j->end() || !ok->is_boolean() || !ok->get<bool>() || time == j->end() ||
        !time->is_string()) {
      return "";
    }
    return time->get<std::string>();
  }

  std::unique_ptr<blob::BlobStore> store_;
  RepoConfig config_;
  std::string key_id_;  // the key this object was opened with
  RepoContext ctx_;
};

// The master key from the first keys/ object that `material` unwraps.
Result<std::pair<MasterKey, std::string>> UnwrapAny(blob::BlobStore& store,
                                                    const std::string& repo_id,
                                                    const KeyMaterial& material) {
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, ListKeyIds(store));
  Status newer;  // a key object of a version this binary does not know
  for (const std::string& id : ids) {
    auto text = store.Get(KeyObjectKey(id));
    if (text.status().code() == Code::kNotFound) continue;
    KB_RETURN_IF_ERROR(text.status());
    auto key = ParseKeyObject(KeyObjectKey(id), *text);
    if (!key.ok()) {
      LogWarn("repository: skipping unreadable key object: " + key.status().ToString());
      if (key.status().code() == Code::kFailedPrecondition && newer.ok()) newer = key.status();
      continue;
    }
    if ((key->kdf == "keyfile") != material.is_file) continue;
    auto master = UnwrapMasterKey(*key, repo_id, material);
    if (master.ok()) return std::make_pair(std::move(master).value(), id);
    if (master.status().code() != Code::kUnauthenticated) return master.status();
  }
  // No key opened: if some could not even be read by this binary, that is the better answer.
  if (!newer.ok()) return newer;
  return Status::Unauthenticated("the key does not open repository " + repo_id);
}

}  // namespace

KeySource KeySource::FromEnvironment(KeySource overrides) {
  if (!overrides.empty()) return overrides;
  KeySource k;
  const char* pass = std::getenv("KB_BACKUP_PASSWORD");
  const char* file = std::getenv("KB_BACKUP_KEY_FILE");
  if (pass != nullptr && *pass != '\0') k.passphrase = pass;
  if (file != nullptr && *file != '\0') k.key_file = file;
  return k;
}

Result<std::unique_ptr<Repository>> Repository::Init(std::unique_ptr<blob::BlobStore> store,
                                                     const KeySource& key, const std::string& label,
                                                     const RepositoryParams& params,
                                                     const Clock* clock) {
  if (clock == nullptr) clock = SystemClock::Default();
  KB_RETURN_IF_ERROR(ValidateParams(params));
  KB_RETURN_IF_ERROR(ValidateLabel("key label", label, kMaxKeyLabelBytes));
  KB_ASSIGN_OR_RETURN(KeyMaterial material, LoadKeyMaterial(key));
  auto existing = store->Stat(kConfigKey);
  if (existing.ok()) {
    return Status::FailedPrecondition("a repository already exists at " + store->Describe());
  }
  if (existing.status().code() != Code::kNotFound) return existing.status();
  KB_ASSIGN_OR_RETURN(std::vector<std::string> stray, ListKeyIds(*store));
  if (!stray.empty()) {
    return Status::FailedPrecondition(
        store->Describe() +
        " holds keys/ objects but no config (an interrupted init?); remove "
        "them or choose another location");
  }
  RepoConfig config;
  config.id = NewUuid();
  config.created = FormatIso8601(clock->NowMillis());
  config.params = params;
  MasterKey master = MasterKey::Generate();
  KB_ASSIGN_OR_RETURN(KeyObject k, MakeKeyObject(master, config.id, material, label,
                                                 params.scrypt_log2_n, clock->NowMillis()));
  config.key_check = SealRaw(master.data_key.view(),
                             ConfigAad(config.id, params.chunk_size, params.block_size,
                                       params.pack_size, params.tree_fanout),
                             KeyCheckPlaintext());
  // The key first, config last: config is what makes the location a repository.
  KB_RETURN_IF_ERROR(store->Put(KeyObjectKey(k.id), EncodeKeyObject(k)));
  KB_RETURN_IF_ERROR(store->Put(kConfigKey, EncodeConfig(config)));
  auto repo = std::make_unique<RepositoryImpl>(std::move(store), std::move(config),
                                               std::move(master), k.id, clock);
  return std::unique_ptr<Repository>(std::move(repo));
}

Result<std::unique_ptr<Repository>> Repository::Open(std::unique_ptr<blob::BlobStore> store,
                                                     const KeySource& key, const Clock* clock) {
  if (clock == nullptr) clock = SystemClock::Default();
  auto text = store->Get(kConfigKey);
  if (text.status().code() == Code::kNotFound) {
    return Status::FailedPrecondition(NoRepository(*store));
  }
  KB_RETURN_IF_ERROR(text.status());
  KB_ASSIGN_OR_RETURN(RepoConfig config, ParseConfig(*text));
  KB_ASSIGN_OR_RETURN(KeyMaterial material, LoadKeyMaterial(key));
  KB_ASSIGN_OR_RETURN(auto unwrapped, UnwrapAny(*store, config.id, material));
  const RepositoryParams& p = config.params;
  auto check = OpenRaw(unwrapped.first.data_key.view(),
                       ConfigAad(config.id, p.chunk_size, p.block_size, p.pack_size, p.tree_fanout),
                       config.key_check);
  if (!check.ok() || *check != KeyCheckPlaintext()) {
    return Status::Unauthenticated("the key does not open repository " + config.id +
                                   " (or its config was altered)");
  }
  auto repo = std::make_unique<RepositoryImpl>(std::move(store), std::move(config),
                                               std::move(unwrapped.first), unwrapped.second, clock);
  return std::unique_ptr<Repository>(std::move(repo));
}

const RepoContext* ContextOf(Repository& repo) {
  auto* impl = dynamic_cast<RepositoryImpl*>(&repo);
  return impl == nullptr ? nullptr : &impl->context();
}

Result<CopyResult> CopySnapshot(Repository& from, Repository& to, const std::string& snapshot_id,
                                const CopyOptions& options) {
  auto* source = dynamic_cast<RepositoryImpl*>(&from);
  auto* destination = dynamic_cast<RepositoryImpl*>(&to);
  if (source == nullptr || destination == nullptr) {
    return Status::InvalidArgument("CopySnapshot needs repositories opened by Repository::Open");
  }
  return CopySnapshotBetween(source->context(), destination->context(), snapshot_id, options);
}

Result<std::unique_ptr<Repository>> OpenRepository(const std::string& url, const KeySource& key,
                                                   const blob::BlobStoreOptions& options,
                                                   const Clock* clock) {
  KB_ASSIGN_OR_RETURN(std::unique_ptr<blob::BlobStore> store,
                      blob::OpenBlobStore(url, options, /*create=*/false));
  return Repository::Open(std::move(store), KeySource::FromEnvironment(key), clock);
}

}  // namespace kb::repo
