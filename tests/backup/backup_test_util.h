// Builders the backup tests share: a local repository with fast key derivation, and a knowledge
// base on a data directory with the test's clock (no periodic index saves, so a test decides
// when files change). Header-only: every test binary here links kb_backup.
//
// Thread-safety: free functions on their own arguments.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "blob/blob_store.h"
#include "common/clock.h"
#include "repo/repository.h"
#include "service/knowledge_base.h"

namespace kb::testing {

// A new repository in the directory `dir` (file://), opened with `key`; null (with a test
// failure) on error. scrypt at the format's minimum cost, so tests stay fast.
inline std::unique_ptr<repo::Repository> InitLocalTestRepository(const std::string& dir,
                                                                 const repo::KeySource& key,
                                                                 const Clock* clock) {
  repo::RepositoryParams params;
  params.scrypt_log2_n = 14;
  auto store = blob::OpenBlobStore("file://" + dir, {}, /*create=*/true);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  if (!store.ok()) return nullptr;
  auto repo = repo::Repository::Init(std::move(store).value(), key, "test", params, clock);
  EXPECT_TRUE(repo.ok()) << repo.status().ToString();
  return repo.ok() ? std::move(repo).value() : nullptr;
}

// A knowledge base on `data_dir` (created if absent) with `clock` (null: the system clock);
// null (with a test failure) on error.
inline std::unique_ptr<KnowledgeBase> OpenTestKnowledgeBase(const std::string& data_dir,
                                                            const Clock* clock) {
  KbOptions o;
  o.data_dir = data_dir;
  o.clock = clock;
  o.index_save_interval_ms = 0;
  auto kb = KnowledgeBase::Open(o);
  EXPECT_TRUE(kb.ok()) << kb.status().ToString();
  return kb.ok() ? std::move(kb).value() : nullptr;
}

}  // namespace kb::testing
