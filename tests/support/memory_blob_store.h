// MemoryBlobStore: a BlobStore in memory for the repository and backup tests, following every
// rule of blob_store.h (key validation, ranged reads, ordered listing, idempotent delete); the
// blob conformance suite (tests/blob/blob_conformance_test.cc) holds it to that contract. Several
// handles can share one set of objects (Handle()), so that a test can open two Repository
// objects on "the same bucket", and the test can reach in to damage objects.
//
// Thread-safety: all methods are safe to call concurrently (one mutex over the objects).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "blob/blob_store.h"

namespace kb::testing {

class MemoryBlobStore : public blob::BlobStore {
 public:
  struct Objects {
    std::mutex mu;
    std::map<std::string, std::string, std::less<>> objects;  // guarded by mu
    int64_t puts = 0;                                         // guarded by mu
  };

  MemoryBlobStore() : state_(std::make_shared<Objects>()) {}
  explicit MemoryBlobStore(std::shared_ptr<Objects> state) : state_(std::move(state)) {}

  // Another handle on the same objects.
  std::unique_ptr<MemoryBlobStore> Handle() const {
    return std::make_unique<MemoryBlobStore>(state_);
  }
  std::shared_ptr<Objects> state() const { return state_; }

  std::string Describe() const override { return "memory://test"; }

  Status Put(std::string_view key, std::string_view data) override {
    KB_RETURN_IF_ERROR(blob::ValidateKey(key));
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->objects[std::string(key)] = std::string(data);
    state_->puts++;
    return Status::OK();
  }

  Result<std::string> Get(std::string_view key) override {
    KB_RETURN_IF_ERROR(blob::ValidateKey(key));
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->objects.find(key);
    if (it == state_->objects.end()) return Status::NotFound("no object " + std::string(key));
    return it->second;
  }

  Result<std::string> GetRange(std::string_view key, int64_t offset, int64_t length) override {
    KB_RETURN_IF_ERROR(blob::ValidateKey(key));
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->objects.find(key);
    if (it == state_->objects.end()) return Status::NotFound("no object " + std::string(key));
    const std::string& data = it->second;
    if (offset < 0 || length < 0 || offset > static_cast<int64_t>(data.size())) {
      return Status::InvalidArgument("bad range of " + std::string(key));
    }
    return data.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }

  Result<blob::ObjectInfo> Stat(std::string_view key) override {
    KB_RETURN_IF_ERROR(blob::ValidateKey(key));
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->objects.find(key);
    if (it == state_->objects.end()) return Status::NotFound("no object " + std::string(key));
    return blob::ObjectInfo{it->first, static_cast<int64_t>(it->second.size())};
  }

  Status Delete(std::string_view key) override {
    KB_RETURN_IF_ERROR(blob::ValidateKey(key));
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->objects.find(key);
    if (it != state_->objects.end()) state_->objects.erase(it);
    return Status::OK();
  }

  // Pages of at most list_page_size keys, as blob_store.h asks (bounded memory, never the whole
  // listing at once): each page is copied under the lock and visited without it, since the
  // visitor may call back into the store; the next page starts after the last key visited.
  Status List(std::string_view prefix,
              const std::function<Status(const blob::ObjectInfo&)>& visit) override {
    KB_RETURN_IF_ERROR(blob::ValidatePrefix(prefix));
    std::string after;  // the last key visited; empty before the first page
    for (bool first = true;; first = false) {
      std::vector<blob::ObjectInfo> page;
      {
        std::lock_guard<std::mutex> lock(state_->mu);
        auto it = first ? state_->objects.lower_bound(prefix) : state_->objects.upper_bound(after);
        for (; it != state_->objects.end() && it->first.compare(0, prefix.size(), prefix) == 0 &&
               static_cast<int>(page.size()) < list_page_size_;
             ++it) {
          page.push_back(blob::ObjectInfo{it->first, static_cast<int64_t>(it->second.size())});
        }
      }
      for (const blob::ObjectInfo& info : page) KB_RETURN_IF_ERROR(visit(info));
      if (static_cast<int>(page.size()) < list_page_size_) return Status::OK();
      after = page.back().key;
    }
  }

  // Keys per List page (as S3's max-keys); at least 1.
  void set_list_page_size(int n) { list_page_size_ = n < 1 ? 1 : n; }

  // --- test access ---
  std::vector<std::string> Keys(std::string_view prefix = "") const {
    std::lock_guard<std::mutex> lock(state_->mu);
    std::vector<std::string> keys;
    for (const auto& [k, v] : state_->objects) {
      if (k.compare(0, prefix.size(), prefix) == 0) keys.push_back(k);
    }
    return keys;
  }
  std::string Raw(const std::string& key) const {
    std::lock_guard<std::mutex> lock(state_->mu);
    auto it = state_->objects.find(key);
    return it == state_->objects.end() ? std::string() : it->second;
  }
  void SetRaw(const std::string& key, std::string data) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->objects[key] = std::move(data);
  }
  void FlipByte(const std::string& key, size_t offset) {
    std::lock_guard<std::mutex> lock(state_->mu);
    std::string& data = state_->objects.at(key);
    data[offset % data.size()] ^= 0x20;
  }
  void Truncate(const std::string& key, size_t size) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->objects.at(key).resize(size);
  }
  void Remove(const std::string& key) {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->objects.erase(key);
  }
  size_t ObjectCount() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->objects.size();
  }
  int64_t PutCount() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->puts;
  }
  std::map<std::string, std::string, std::less<>> Snapshot() const {
    std::lock_guard<std::mutex> lock(state_->mu);
    return state_->objects;
  }

 private:
  std::shared_ptr<Objects> state_;
  int list_page_size_ = 1000;
};

}  // namespace kb::testing
