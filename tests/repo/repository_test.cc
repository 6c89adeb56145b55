// Repository::Init / Open and keys: a wrong, missing or mismatched key is refused before anything
// is written; altered parameters or newer versions are refused; keys can be added, listed,
// used and removed (never the last one); OpenRepository works on a real local directory.
#include "repo/repository.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include "repo/repository_format.h"
#include "repository_test_util.h"

namespace kb::repo {
namespace {

using kb::testing::MemoryBlobStore;
using kb::testing::MemoryRepo;
using kb::testing::Passphrase;
using nlohmann::json;

TEST(RepositoryInitTest, WritesOnlyConfigAndOneKeyAndOpensAgain) {
  MemoryRepo r;
  ASSERT_NE(r.repo, nullptr);
  auto keys = r.store->Keys();
  ASSERT_EQ(keys.size(), 2u);
  EXPECT_EQ(keys[0], "config");
  EXPECT_EQ(keys[1].substr(0, 5), "keys/");
  json config = json::parse(r.store->Raw("config"));
  EXPECT_EQ(config["format"], "knowledgebeast-repository");
  EXPECT_EQ(config["version"], 2);
  EXPECT_EQ(config["chunk_size"], 4096);
  EXPECT_EQ(config["tree_fanout"], 64);
  EXPECT_EQ(config["compression"], "zstd");
  json key = json::parse(r.store->Raw(keys[1]));
  EXPECT_EQ(key["kdf"]["name"], "scrypt");
  EXPECT_EQ(key["kdf"]["n"], 16384);
  EXPECT_EQ(key["label"], "test key");
  // Nothing secret in clear: the passphrase appears nowhere.
  for (const auto& [k, v] : r.store->Snapshot()) {
    EXPECT_EQ(v.find(kb::testing::kPassphrase), std::string::npos) << k;
  }
  auto again = r.Reopen();
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->id(), r.repo->id());
  EXPECT_EQ((*again)->params().block_size, 64 * 1024);
}

TEST(RepositoryInitTest, RefusesAnExistingRepositoryAndBadParameters) {
  MemoryRepo r;
  auto twice = Repository::Init(r.store->Handle(), Passphrase(), "x", kb::testing::TestParams());
  EXPECT_EQ(twice.status().code(), Code::kFailedPrecondition);
  MemoryBlobStore fresh;
  RepositoryParams bad = kb::testing::TestParams();
  bad.chunk_size = 3000;
  EXPECT_EQ(Repository::Init(fresh.Handle(), Passphrase(), "x", bad).status().code(),
            Code::kInvalidArgument);
  bad = kb::testing::TestParams();
  bad.tree_fanout = 8192;  // a tree (128 KiB) would not fit a 64 KiB block
  EXPECT_EQ(Repository::Init(fresh.Handle(), Passphrase(), "x", bad).status().code(),
            Code::kInvalidArgument);
  bad = kb::testing::TestParams();
  bad.scrypt_log2_n = 10;
  EXPECT_EQ(Repository::Init(fresh.Handle(), Passphrase(), "x", bad).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(fresh.ObjectCount(), 0u);
  KeySource none;
  EXPECT_FALSE(Repository::Init(fresh.Handle(), none, "x", kb::testing::TestParams()).ok());
  EXPECT_EQ(fresh.ObjectCount(), 0u);
}

TEST(RepositoryOpenTest, NoConfigIsFailedPreconditionNamingTheLocation) {
  MemoryBlobStore empty;
  auto r = Repository::Open(empty.Handle(), Passphrase());
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("no repository at memory://test"), std::string::npos);
  EXPECT_NE(r.status().message().find("knowledgebeast repo init"), std::string::npos);
}

TEST(RepositoryOpenTest, WrongKeyIsUnauthenticatedAndWritesNothing) {
  MemoryRepo r;
  auto before = r.store->Snapshot();
  int64_t puts = r.store->PutCount();
  auto wrong = r.Reopen(Passphrase("not the passphrase"));
  ASSERT_EQ(wrong.status().code(), Code::kUnauthenticated);
  EXPECT_NE(wrong.status().message().find("does not open repository " + r.repo->id()),
            std::string::npos);
  EXPECT_EQ(wrong.status().message().find("not the passphrase"), std::string::npos);
  auto none = r.Reopen(KeySource{});
  ASSERT_EQ(none.status().code(), Code::kUnauthenticated);
  EXPECT_NE(none.status().message().find("KB_BACKUP_PASSWORD"), std::string::npos);
  EXPECT_EQ(r.store->PutCount(), puts);
  EXPECT_EQ(r.store->Snapshot(), before);
}

TEST(RepositoryOpenTest, AlteredParametersAreRefusedByTheKeyCheck) {
  for (const char* field : {"chunk_size", "block_size", "pack_size", "tree_fanout"}) {
    MemoryRepo r;
    json config = json::parse(r.store->Raw("config"));
    config[field] = config[field].get<int64_t>() * 2;
    r.store->SetRaw("config", config.dump());
    auto opened = r.Reopen();
    EXPECT_EQ(opened.status().code(), Code::kUnauthenticated) << field;
  }
  MemoryRepo r;
  json config = json::parse(r.store->Raw("config"));
  config["id"] = "00000000-0000-4000-8000-000000000000";  // another repository's id
  r.store->SetRaw("config", config.dump());
  EXPECT_EQ(r.Reopen().status().code(), Code::kUnauthenticated);
}

TEST(RepositoryOpenTest, OutOfRangeParametersAndGarbageAreCorruption) {
  MemoryRepo r;
  json config = json::parse(r.store->Raw("config"));
  config["chunk_size"] = 100;
  r.store->SetRaw("config", config.dump());
  EXPECT_EQ(r.Reopen().status().code(), Code::kCorruption);
  r.store->SetRaw("config", "{not json");
  EXPECT_EQ(r.Reopen().status().code(), Code::kCorruption);
}

TEST(RepositoryOpenTest, Version1RepositoriesAreRefusedUpFrontAndNothingIsWritten) {
  MemoryRepo r;
  json config = json::parse(r.store->Raw("config"));
  config["version"] = 1;
  r.store->SetRaw("config", config.dump());
  auto before = r.store->Snapshot();
  auto opened = r.Reopen();
  ASSERT_EQ(opened.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(opened.status().message(),
            "unsupported repository format version 1 (this binary reads version 2; back up into "
            "a new repository)");
  EXPECT_EQ(r.store->Snapshot(), before);
}

TEST(RepositoryOpenTest, NewerVersionsAreRefusedNamingObjectAndVersions) {
  MemoryRepo r;
  json config = json::parse(r.store->Raw("config"));
  config["version"] = 3;
  r.store->SetRaw("config", config.dump());
  auto opened = r.Reopen();
  ASSERT_EQ(opened.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(opened.status().message(),
            "repository object config has format version 3; this binary reads version 2");

  MemoryRepo k;
  std::string key_name = k.store->Keys("keys/")[0];
  json key = json::parse(k.store->Raw(key_name));
  key["version"] = 3;
  k.store->SetRaw(key_name, key.dump());
  // The only key is of a newer version: that is what Open says.
  auto newer_key = k.Reopen();
  ASSERT_EQ(newer_key.status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(newer_key.status().message(),
            "repository object " + key_name + " has format version 3; this binary reads version 1");
  // With another, readable key the repository opens.
  MemoryRepo two;
  ASSERT_TRUE(two.repo->AddKey(Passphrase(), "same passphrase, second key").ok());
  std::string first = two.store->Keys("keys/")[0];
  json old_key = json::parse(two.store->Raw(first));
  old_key["version"] = 3;
  two.store->SetRaw(first, old_key.dump());
  EXPECT_TRUE(two.Reopen().ok());
}

TEST(RepositoryKeysTest, AddListOpenWithEachAndRemove) {
  MemoryRepo r;
  kb::testing::TempDir dir;
  std::string key_file = dir.Sub("repo.key");
  kb::testing::WriteBytes(key_file, kb::testing::TestBytes(64, 9, false));
  auto added = r.repo->AddKey(kb::testing::KeyFile(key_file), "ops key file");
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(added->kdf, "keyfile");
  auto second = r.repo->AddKey(Passphrase("second passphrase"), "second");
  ASSERT_TRUE(second.ok());

  auto keys = r.repo->ListKeys();
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 3u);
  int in_use = 0;
  for (const KeyInfo& k : *keys) in_use += k.in_use;
  EXPECT_EQ(in_use, 1);

  auto by_file = r.Reopen(kb::testing::KeyFile(key_file));
  ASSERT_TRUE(by_file.ok()) << by_file.status().ToString();
  auto by_second = r.Reopen(Passphrase("second passphrase"));
  ASSERT_TRUE(by_second.ok());
  auto listed = (*by_second)->ListKeys();
  for (const KeyInfo& k : *listed) EXPECT_EQ(k.in_use, k.id == second->id) << k.id;

  // Removing a key revokes it; the others still open.
  ASSERT_TRUE(r.repo->RemoveKey(second->id).ok());
  EXPECT_EQ(r.Reopen(Passphrase("second passphrase")).status().code(), Code::kUnauthenticated);
  EXPECT_TRUE(r.Reopen().ok());
  EXPECT_TRUE(r.Reopen(kb::testing::KeyFile(key_file)).ok());
  EXPECT_EQ(r.repo->RemoveKey(second->id).code(), Code::kNotFound);
  EXPECT_EQ(r.repo->RemoveKey("../../config").code(), Code::kInvalidArgument);

  // The last key stays.
  ASSERT_TRUE(r.repo->RemoveKey(added->id).ok());
  std::string last = (*r.repo->ListKeys())[0].id;
  auto refused = r.repo->RemoveKey(last);
  EXPECT_EQ(refused.code(), Code::kFailedPrecondition);
  EXPECT_TRUE(r.Reopen().ok());
}

TEST(RepositoryKeysTest, KeyFilesMustHold32BytesAndKindsDoNotMix) {
  MemoryRepo r;
  kb::testing::TempDir dir;
  std::string short_file = dir.Sub("short.key");
  kb::testing::WriteBytes(short_file, "too short");
  auto refused = r.repo->AddKey(kb::testing::KeyFile(short_file), "x");
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_EQ(refused.status().message().find("too short"), std::string::npos);
  std::string good = dir.Sub("good.key");
  kb::testing::WriteBytes(good, std::string(32, 'p'));
  // A key file whose bytes equal the passphrase does not open a passphrase key.
  kb::testing::WriteBytes(good, std::string(kb::testing::kPassphrase) + "................");
  EXPECT_EQ(r.Reopen(kb::testing::KeyFile(good)).status().code(), Code::kUnauthenticated);
  KeySource both = Passphrase();
  both.key_file = good;
  EXPECT_EQ(r.Reopen(both).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(r.Reopen(kb::testing::KeyFile(dir.Sub("absent.key"))).status().code(),
            Code::kInvalidArgument);
}

TEST(KeySourceTest, EnvironmentFillsOnlyWhenNothingIsGiven) {
  setenv("KB_BACKUP_PASSWORD", "from env", 1);
  unsetenv("KB_BACKUP_KEY_FILE");
  EXPECT_EQ(*KeySource::FromEnvironment().passphrase, "from env");
  KeySource given;
  given.key_file = "/k";
  KeySource k = KeySource::FromEnvironment(given);
  EXPECT_FALSE(k.passphrase.has_value());
  EXPECT_EQ(*k.key_file, "/k");
  unsetenv("KB_BACKUP_PASSWORD");
  EXPECT_TRUE(KeySource::FromEnvironment().empty());
}

TEST(OpenRepositoryTest, OpensARepositoryInALocalDirectoryByUrl) {
  kb::testing::TempDir dir;
  auto store = blob::OpenBlobStore("file://" + dir.Sub("repo"), {}, /*create=*/true);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto init =
      Repository::Init(std::move(store).value(), Passphrase(), "local", kb::testing::TestParams());
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  auto opened = OpenRepository("file://" + dir.Sub("repo"), Passphrase());
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->id(), (*init)->id());
  EXPECT_NE((*opened)->Describe().find((*init)->id()), std::string::npos);
  auto empty_dir = OpenRepository("file://" + dir.path(), Passphrase());
  EXPECT_EQ(empty_dir.status().code(), Code::kFailedPrecondition);
}

}  // namespace
}  // namespace kb::repo
