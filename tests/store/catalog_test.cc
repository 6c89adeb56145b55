// Tests of the catalog: projects (unique live names, soft delete), API keys and settings.
#include "store/catalog.h"

#include <gtest/gtest.h>

#include "common/crypto_util.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::TempDir;

class CatalogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(dir_.Sub("catalog.db"), &clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    catalog_ = std::move(c).value();
  }

  ProjectRecord Project(const std::string& name) {
    ProjectRecord p;
    p.id = NewUuid();
    p.name = name;
    p.description = "about " + name;
    p.embedder_name = "hash";
    p.embedding_dimension = 256;
    p.created_at_ms = p.updated_at_ms = clock_.NowMillis();
    clock_.Advance(1);
    return p;
  }

  ApiKeyRecord Key(const std::string& id, KeyScope scope) {
    ApiKeyRecord k;
    k.id = id;
    k.name = "key " + id;
    k.secret_hash = Sha256Hex("secret-" + id);
    k.scope = scope;
    k.created_by = "system";
    k.created_at_ms = clock_.NowMillis();
    return k;
  }

  TempDir dir_;
  ManualClock clock_{1'700'000'000'000};
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogTest, CreatedProjectCanBeReadByIdAndByName) {
  ProjectRecord p = Project("docs");
  p.metadata_json = R"({"team":"a"})";
  ASSERT_TRUE(catalog_->CreateProject(p).ok());
  for (const std::string& key : {p.id, std::string("docs")}) {
    auto got = catalog_->GetProject(key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(got->id, p.id);
    EXPECT_EQ(got->name, "docs");
    EXPECT_EQ(got->description, "about docs");
    EXPECT_EQ(got->metadata_json, R"({"team":"a"})");
    EXPECT_EQ(got->embedding_dimension, 256);
    EXPECT_EQ(got->chunk_size, 1000);
    EXPECT_FALSE(got->deleted_at_ms.has_value());
  }
  EXPECT_EQ(catalog_->GetProject("nope").status().code(), Code::kNotFound);
}

TEST_F(CatalogTest, LiveNameClashIsAlreadyExists) {
  ASSERT_TRUE(catalog_->CreateProject(Project("docs")).ok());
  EXPECT_EQ(catalog_->CreateProject(Project("docs")).code(), Code::kAlreadyExists);
}

TEST_F(CatalogTest, InvalidNameOrMetadataIsInvalidArgument) {
  EXPECT_EQ(catalog_->CreateProject(Project("bad/name")).code(), Code::kInvalidArgument);
  ProjectRecord p = Project("ok");
  p.metadata_json = "[1]";
  EXPECT_EQ(catalog_->CreateProject(p).code(), Code::kInvalidArgument);
}

TEST_F(CatalogTest, ListIsOrderedByCreationAndSkipsDeleted) {
  ProjectRecord a = Project("a"), b = Project("b"), c = Project("c");
  for (const auto& p : {c, a, b}) ASSERT_TRUE(catalog_->CreateProject(p).ok());
  ASSERT_TRUE(catalog_->MarkProjectDeleted(b.id, "admin", clock_.NowMillis()).ok());
  auto live = catalog_->ListProjects();
  ASSERT_TRUE(live.ok());
  ASSERT_EQ(live->size(), 2u);
  EXPECT_EQ((*live)[0].name, "a");
  EXPECT_EQ((*live)[1].name, "c");
  auto all = catalog_->ListProjects(/*include_deleted=*/true);
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[1].name, "b");
  EXPECT_EQ((*all)[1].deleted_by, "admin");
}

TEST_F(CatalogTest, UpdateRenamesAndRefusesClash) {
  ProjectRecord a = Project("a"), b = Project("b");
  ASSERT_TRUE(catalog_->CreateProject(a).ok());
  ASSERT_TRUE(catalog_->CreateProject(b).ok());
  a.name = "a2";
  a.description = "new";
  a.updated_at_ms = 42;
  ASSERT_TRUE(catalog_->UpdateProject(a).ok());
  auto got = catalog_->GetProject(a.id);
  EXPECT_EQ(got->name, "a2");
  EXPECT_EQ(got->description, "new");
  EXPECT_EQ(got->updated_at_ms, 42);
  a.name = "b";
  EXPECT_EQ(catalog_->UpdateProject(a).code(), Code::kAlreadyExists);
  ProjectRecord ghost = Project("ghost");
  EXPECT_EQ(catalog_->UpdateProject(ghost).code(), Code::kNotFound);
}

TEST_F(CatalogTest, SoftDeletedProjectFreesItsNameAndUndeleteChecksClash) {
  ProjectRecord old = Project("docs");
  ASSERT_TRUE(catalog_->CreateProject(old).ok());
  ASSERT_TRUE(catalog_->MarkProjectDeleted(old.id, "admin", 5).ok());
  EXPECT_EQ(catalog_->MarkProjectDeleted(old.id, "admin", 6).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->GetProject(old.id).status().code(), Code::kNotFound);
  auto deleted = catalog_->GetProject(old.id, /*include_deleted=*/true);
  ASSERT_TRUE(deleted.ok());
  EXPECT_EQ(deleted->deleted_at_ms, 5);

  ProjectRecord replacement = Project("docs");
  ASSERT_TRUE(catalog_->CreateProject(replacement).ok());
  EXPECT_EQ(catalog_->GetProject("docs", true)->id, replacement.id);  // the live one wins
  EXPECT_EQ(catalog_->UnmarkProjectDeleted(old.id).code(), Code::kAlreadyExists);

  ASSERT_TRUE(catalog_->DeleteProjectRow(replacement.id).ok());
  ASSERT_TRUE(catalog_->UnmarkProjectDeleted(old.id).ok());
  EXPECT_EQ(catalog_->GetProject("docs")->id, old.id);
  EXPECT_EQ(catalog_->UnmarkProjectDeleted(old.id).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->DeleteProjectRow("missing").code(), Code::kNotFound);
}

TEST_F(CatalogTest, KeysAreFoundBySecretHashAndNeverStoreTheSecret) {
  ApiKeyRecord k = Key("key_0000000000000001", KeyScope::kWrite);
  k.projects = {"p1", "p2"};
  k.expires_at_ms = 99;
  ASSERT_TRUE(catalog_->CreateKey(k).ok());
  auto got = catalog_->FindKeyBySecretHash(Sha256Hex("secret-key_0000000000000001"));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->id, k.id);
  EXPECT_EQ(got->scope, KeyScope::kWrite);
  EXPECT_EQ(got->projects, (std::vector<std::string>{"p1", "p2"}));
  EXPECT_EQ(got->expires_at_ms, 99);
  EXPECT_FALSE(got->revoked_at_ms.has_value());
  EXPECT_EQ(catalog_->FindKeyBySecretHash(Sha256Hex("wrong")).status().code(), Code::kNotFound);
  EXPECT_EQ(catalog_->CreateKey(k).code(), Code::kAlreadyExists);
}

TEST_F(CatalogTest, RevokeRotateTouchAndCount) {
  ASSERT_TRUE(catalog_->CreateKey(Key("key_a", KeyScope::kAdmin)).ok());
  ASSERT_TRUE(catalog_->CreateKey(Key("key_b", KeyScope::kRead)).ok());
  EXPECT_EQ(*catalog_->CountKeys(), 2);
  ASSERT_TRUE(catalog_->RevokeKey("key_a", 10).ok());
  ASSERT_TRUE(catalog_->RevokeKey("key_a", 20).ok());  // first revocation time is kept
  EXPECT_EQ(catalog_->GetKey("key_a")->revoked_at_ms, 10);
  // Revoked keys are still found, so the refusal can be audited with their id.
  EXPECT_TRUE(catalog_->FindKeyBySecretHash(Sha256Hex("secret-key_a")).ok());
  ASSERT_TRUE(catalog_->SetKeySecretHash("key_b", Sha256Hex("rotated")).ok());
  EXPECT_EQ(catalog_->FindKeyBySecretHash(Sha256Hex("rotated"))->id, "key_b");
  EXPECT_FALSE(catalog_->FindKeyBySecretHash(Sha256Hex("secret-key_b")).ok());
  ASSERT_TRUE(catalog_->TouchKey("key_b", 77).ok());
  EXPECT_EQ(catalog_->GetKey("key_b")->last_used_at_ms, 77);
  EXPECT_EQ(catalog_->RevokeKey("key_zzz", 1).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->TouchKey("key_zzz", 1).code(), Code::kNotFound);
  EXPECT_EQ(catalog_->SetKeySecretHash("key_zzz", "x").code(), Code::kNotFound);
  auto keys = catalog_->ListKeys();
  ASSERT_EQ(keys->size(), 2u);
}

TEST_F(CatalogTest, SettingsRoundTripAndOverwrite) {
  EXPECT_FALSE(catalog_->GetSetting("k")->has_value());
  ASSERT_TRUE(catalog_->PutSetting("k", "v1").ok());
  ASSERT_TRUE(catalog_->PutSetting("k", "v2").ok());
  EXPECT_EQ(catalog_->GetSetting("k")->value(), "v2");
}

TEST_F(CatalogTest, DataSurvivesReopen) {
  ProjectRecord p = Project("persist");
  ASSERT_TRUE(catalog_->CreateProject(p).ok());
  catalog_.reset();
  auto c = Catalog::Open(dir_.Sub("catalog.db"), &clock_);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*c)->GetProject("persist")->id, p.id);
}

TEST(CatalogKeyScopeTest, NamesRoundTrip) {
  for (KeyScope s : {KeyScope::kRead, KeyScope::kWrite, KeyScope::kAdmin}) {
    EXPECT_EQ(ParseKeyScope(KeyScopeName(s)), s);
  }
  EXPECT_FALSE(ParseKeyScope("root").has_value());
}

}  // namespace
}  // namespace kb
