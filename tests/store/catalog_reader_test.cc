// CatalogReader: the read-only view of catalog.db for code outside the store. A catalog written
// by Catalog, then read: identity, SQLite's report, every project row (soft-deleted ones too),
// one snapshot across calls, and a file it cannot read.
#include "store/catalog_reader.h"

#include <gtest/gtest.h>

#include "common/crypto_util.h"
#include "store/catalog.h"
#include "store/migrations.h"
#include "store/sqlite.h"
#include "test_util.h"

namespace kb::store {
namespace {

using kb::testing::TempDir;

class CatalogReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = Catalog::Open(path_, &clock_);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    catalog_ = std::move(c).value();
  }

  ProjectRecord Create(const std::string& name, int dimension) {
    ProjectRecord p;
    p.id = NewUuid();
    p.name = name;
    p.embedder_name = "hash";
    p.embedding_dimension = dimension;
    p.created_at_ms = p.updated_at_ms = clock_.NowMillis();
    clock_.Advance(1);
    EXPECT_TRUE(catalog_->CreateProject(p).ok());
    return p;
  }

  std::unique_ptr<CatalogReader> OpenReader() {
    auto r = CatalogReader::OpenUnchecked(path_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? std::move(r).value() : nullptr;
  }

  TempDir dir_;
  const std::string path_ = dir_.Sub("catalog.db");
  ManualClock clock_{1'700'000'000'000};
  std::unique_ptr<Catalog> catalog_;
};

TEST_F(CatalogReaderTest, ReadsIdentityIntegrityAndEveryProjectInCreationOrder) {
  ProjectRecord a = Create("alpha", 256);
  ProjectRecord b = Create("beta", 8);
  ASSERT_TRUE(catalog_->MarkProjectDeleted(a.id, "test", clock_.NowMillis()).ok());
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);

  auto id = reader->Identity();
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(id->application_id, kCatalogApplicationId);
  EXPECT_EQ(id->schema_version, CatalogSchema().latest_version());

  auto report = reader->SqliteIntegrityReport();
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(*report, std::vector<std::string>{"ok"});

  auto projects = reader->Projects();
  ASSERT_TRUE(projects.ok()) << projects.status().ToString();
  ASSERT_EQ(projects->size(), 2u);
  EXPECT_EQ((*projects)[0].id, a.id);
  EXPECT_EQ((*projects)[0].name, "alpha");
  EXPECT_EQ((*projects)[0].embedding_dimension, 256);
  EXPECT_TRUE((*projects)[0].deleted);
  EXPECT_EQ((*projects)[1].id, b.id);
  EXPECT_EQ((*projects)[1].embedding_dimension, 8);
  EXPECT_FALSE((*projects)[1].deleted);
}

TEST_F(CatalogReaderTest, ASnapshotKeepsOneStateUntilItEnds) {
  Create("alpha", 256);
  auto reader = OpenReader();
  ASSERT_NE(reader, nullptr);
  ASSERT_TRUE(reader->BeginSnapshot().ok());
  ASSERT_EQ(reader->Projects()->size(), 1u);
  EXPECT_EQ(reader->BeginSnapshot().code(), Code::kFailedPrecondition);
  Create("beta", 256);
  EXPECT_EQ(reader->Projects()->size(), 1u);
  ASSERT_TRUE(reader->EndSnapshot().ok());
  EXPECT_EQ(reader->Projects()->size(), 2u);
}

TEST_F(CatalogReaderTest, AFileWithoutTheProjectsTableIsAnErrorNotACrash) {
  catalog_.reset();
  const std::string other = dir_.Sub("empty.db");
  {
    auto db = sql::Database::Open(other);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)->Exec("CREATE TABLE t (x)").ok());
  }
  auto reader = CatalogReader::OpenUnchecked(other);
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto id = (*reader)->Identity();
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id->application_id, 0);
  EXPECT_FALSE((*reader)->Projects().ok());
}

}  // namespace
}  // namespace kb::store
