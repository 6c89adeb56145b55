// FaultyBlobStore: wraps a BlobStore and injects the failures a backup must survive: the Nth Put
// or Get fails, objects come back with a flipped byte or truncated, and "crash" — after N
// successful Puts every later write (Put and Delete) fails, as if the process died there. A hook
// runs before chosen Puts, so a test can interleave another operation (a prune) at an exact
// point of a backup. The controls live in a shared Faults object, so the test can change them
// after handing the store to a Repository.
//
// Thread-safety: safe for concurrent use (the controls are behind a mutex; the hook is called
// without it).
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blob/blob_store.h"

namespace kb::testing {

struct Faults {
  std::mutex mu;
  int64_t puts = 0;               // successful Puts so far
  int64_t gets = 0;               // Get and GetRange calls so far
  int64_t fail_put_at = -1;       // the Put with this 0-based number fails (IOError)
  int64_t fail_get_at = -1;       // the Get/GetRange with this number fails (IOError)
  int64_t crash_after_puts = -1;  // >= 0: after this many Puts, every write fails
  std::string corrupt_prefix;     // reads of keys starting with it have a byte flipped
  std::string truncate_prefix;    // reads of keys starting with it lose their 2nd half
  // Called before each Put whose key starts with hook_prefix (once per key unless repeat).
  std::string hook_prefix;
  std::function<void(const std::string& key)> hook;
  bool hook_repeat = false;
  // Every successful write, in order: "put <key>" / "delete <key>".
  std::vector<std::string> log;

  void Reset() {
    std::lock_guard<std::mutex> lock(mu);
    puts = gets = 0;
    fail_put_at = fail_get_at = crash_after_puts = -1;
    corrupt_prefix.clear();
    truncate_prefix.clear();
    hook_prefix.clear();
    hook = nullptr;
    hook_repeat = false;
    log.clear();
  }
};

class FaultyBlobStore : public blob::BlobStore {
 public:
  FaultyBlobStore(std::unique_ptr<blob::BlobStore> inner, std::shared_ptr<Faults> faults)
      : inner_(std::move(inner)), faults_(std::move(faults)) {}

  std::string Describe() const override { return "faulty+" + inner_->Describe(); }

  Status Put(std::string_view key, std::string_view data) override {
    std::function<void(const std::string&)> hook;
    {
      std::lock_guard<std::mutex> lock(faults_->mu);
      if (faults_->hook && !faults_->hook_prefix.empty() &&
          key.substr(0, faults_->hook_prefix.size()) == faults_->hook_prefix) {
        hook = faults_->hook;
        if (!faults_->hook_repeat) faults_->hook = nullptr;
      }
    }
    if (hook) hook(std::string(key));
    {
      std::lock_guard<std::mutex> lock(faults_->mu);
      if (faults_->crash_after_puts >= 0 && faults_->puts >= faults_->crash_after_puts) {
        return Status::IOError("injected crash: put " + std::string(key) + " refused");
      }
      if (faults_->fail_put_at >= 0 && faults_->puts == faults_->fail_put_at) {
        faults_->fail_put_at = -1;
        return Status::IOError("injected failure: put " + std::string(key));
      }
    }
    Status s = inner_->Put(key, data);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(faults_->mu);
      faults_->puts++;
      faults_->log.push_back("put " + std::string(key));
    }
    return s;
  }

  Result<std::string> Get(std::string_view key) override {
    KB_RETURN_IF_ERROR(BeforeRead(key));
    KB_ASSIGN_OR_RETURN(std::string data, inner_->Get(key));
    return Damage(key, std::move(data));
  }

  Result<std::string> GetRange(std::string_view key, int64_t offset, int64_t length) override {
    KB_RETURN_IF_ERROR(BeforeRead(key));
    if (Matches(key, TruncatePrefix())) {
      // Reads see the truncated object, so ranges past its new end behave as the store would.
      KB_ASSIGN_OR_RETURN(std::string whole, inner_->Get(key));
      whole.resize(whole.size() / 2);
      if (offset > static_cast<int64_t>(whole.size())) {
        return Status::InvalidArgument("range starts past the end of " + std::string(key));
      }
      return whole.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
    }
    KB_ASSIGN_OR_RETURN(std::string data, inner_->GetRange(key, offset, length));
    if (Matches(key, CorruptPrefix()) && !data.empty()) data[data.size() / 2] ^= 0x01;
    return data;
  }

  Result<blob::ObjectInfo> Stat(std::string_view key) override { return inner_->Stat(key); }

  Status Delete(std::string_view key) override {
    {
      std::lock_guard<std::mutex> lock(faults_->mu);
      if (faults_->crash_after_puts >= 0 && faults_->puts >= faults_->crash_after_puts) {
        return Status::IOError("injected crash: delete " + std::string(key) + " refused");
      }
    }
    Status s = inner_->Delete(key);
    if (s.ok()) {
      std::lock_guard<std::mutex> lock(faults_->mu);
      faults_->log.push_back("delete " + std::string(key));
    }
    return s;
  }

  Status List(std::string_view prefix,
              const std::function<Status(const blob::ObjectInfo&)>& visit) override {
    return inner_->List(prefix, visit);
  }

 private:
  static bool Matches(std::string_view key, const std::string& prefix) {
    return !prefix.empty() && key.substr(0, prefix.size()) == prefix;
  }
  std::string CorruptPrefix() {
    std::lock_guard<std::mutex> lock(faults_->mu);
    return faults_->corrupt_prefix;
  }
  std::string TruncatePrefix() {
    std::lock_guard<std::mutex> lock(faults_->mu);
    return faults_->truncate_prefix;
  }
  Status BeforeRead(std::string_view key) {
    std::lock_guard<std::mutex> lock(faults_->mu);
    int64_t n = faults_->gets++;
    if (faults_->fail_get_at >= 0 && n == faults_->fail_get_at) {
      return Status::IOError("injected failure: get " + std::string(key));
    }
    return Status::OK();
  }
  std::string Damage(std::string_view key, std::string data) {
    if (Matches(key, CorruptPrefix()) && !data.empty()) data[data.size() / 2] ^= 0x01;
    if (Matches(key, TruncatePrefix())) data.resize(data.size() / 2);
    return data;
  }

  std::unique_ptr<blob::BlobStore> inner_;
  std::shared_ptr<Faults> faults_;
};

}  // namespace kb::testing
