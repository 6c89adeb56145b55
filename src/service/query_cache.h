// A small LRU cache of query responses for one project. Entries carry the project's write
// generation at the time they were computed; a lookup with a newer generation is a miss, so
// every write to the project invalidates every cached answer at once without walking the cache.
//
// Thread-safety: safe for concurrent use (one mutex).
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "common/thread_annotations.h"

namespace kb {

template <typename V>
class QueryCache {
 public:
  explicit QueryCache(size_t capacity) : capacity_(capacity) {}

  std::optional<V> Get(const std::string& key, int64_t generation) EXCLUDES(mu_) {
    MutexLock lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return std::nullopt;
    if (it->second->generation != generation) {
      lru_.erase(it->second);
      map_.erase(it);
      return std::nullopt;
    }
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }

  void Put(const std::string& key, int64_t generation, V value) EXCLUDES(mu_) {
    if (capacity_ == 0) return;
    MutexLock lock(mu_);
    auto it = map_.find(key);
    if (it != map_.end()) {
      lru_.erase(it->second);
      map_.erase(it);
    }
    lru_.push_front(Entry{key, generation, std::move(value)});
    map_[key] = lru_.begin();
    while (map_.size() > capacity_) {
      map_.erase(lru_.back().key);
      lru_.pop_back();
    }
  }

  size_t size() const EXCLUDES(mu_) {
    MutexLock lock(mu_);
    return map_.size();
  }

 private:
  struct Entry {
    std::string key;
    int64_t generation;
    V value;
  };
  size_t capacity_;
  mutable Mutex mu_;
  std::list<Entry> lru_ GUARDED_BY(mu_);
  std::unordered_map<std::string, typename std::list<Entry>::iterator> map_ GUARDED_BY(mu_);
};

}  // namespace kb
