// Tests of schema migrations and file identity: fresh files, newer schemas and foreign files.
#include <gtest/gtest.h>

#include "store/catalog.h"
#include "store/migrations.h"
#include "store/project_store.h"
#include "test_util.h"

namespace kb::store {
namespace {

using kb::testing::TempDir;

TEST(MigrationTest, FreshFileGetsLatestVersionAndApplicationId) {
  TempDir dir;
  auto db = std::move(sql::Database::Open(dir.Sub("c.db")).value());
  ASSERT_TRUE(ApplyMigrations(db.get(), CatalogSchema()).ok());
  EXPECT_EQ(*db->QueryInt("PRAGMA user_version"), CatalogSchema().latest_version());
  EXPECT_EQ(*db->QueryInt("PRAGMA application_id"), kCatalogApplicationId);
  // A second run is a no-op.
  ASSERT_TRUE(ApplyMigrations(db.get(), CatalogSchema()).ok());
}

TEST(MigrationTest, NewerCatalogSchemaIsRefusedNamingBothVersions) {
  TempDir dir;
  SystemClock clock;
  { ASSERT_TRUE(Catalog::Open(dir.Sub("c.db"), &clock).ok()); }
  {
    auto db = std::move(sql::Database::Open(dir.Sub("c.db")).value());
    ASSERT_TRUE(db->Exec("PRAGMA user_version=99").ok());
  }
  auto cat = Catalog::Open(dir.Sub("c.db"), &clock);
  ASSERT_FALSE(cat.ok());
  EXPECT_EQ(cat.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(cat.status().message().find("99"), std::string::npos) << cat.status().message();
  EXPECT_NE(cat.status().message().find("(" + std::to_string(CatalogSchema().latest_version()) +
                                        ")"),
            std::string::npos)
      << cat.status().message();
}

TEST(MigrationTest, NewerProjectSchemaIsRefused) {
  TempDir dir;
  SystemClock clock;
  { ASSERT_TRUE(ProjectStore::Open(dir.Sub("kb.db"), "p1", 4, &clock).ok()); }
  {
    auto db = std::move(sql::Database::Open(dir.Sub("kb.db")).value());
    ASSERT_TRUE(db->Exec("PRAGMA user_version=" + std::to_string(store::ProjectSchema().latest_version() + 1)).ok());
  }
  auto store = ProjectStore::Open(dir.Sub("kb.db"), "p1", 4, &clock);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kFailedPrecondition);
}

TEST(MigrationTest, CatalogFileIsRefusedAsProjectAndViceVersa) {
  TempDir dir;
  SystemClock clock;
  { ASSERT_TRUE(Catalog::Open(dir.Sub("c.db"), &clock).ok()); }
  { ASSERT_TRUE(ProjectStore::Open(dir.Sub("kb.db"), "p1", 4, &clock).ok()); }
  auto as_project = ProjectStore::Open(dir.Sub("c.db"), "p1", 4, &clock);
  ASSERT_FALSE(as_project.ok());
  EXPECT_EQ(as_project.status().code(), Code::kFailedPrecondition);
  auto as_catalog = Catalog::Open(dir.Sub("kb.db"), &clock);
  ASSERT_FALSE(as_catalog.ok());
  EXPECT_EQ(as_catalog.status().code(), Code::kFailedPrecondition);
}

TEST(MigrationTest, ForeignSqliteFileIsRefusedAndLeftUntouched) {
  TempDir dir;
  SystemClock clock;
  {
    auto db = std::move(sql::Database::Open(dir.Sub("other.db")).value());
    ASSERT_TRUE(db->Exec("CREATE TABLE mine(x)").ok());
  }
  auto cat = Catalog::Open(dir.Sub("other.db"), &clock);
  ASSERT_FALSE(cat.ok());
  EXPECT_EQ(cat.status().code(), Code::kFailedPrecondition);
  auto db = std::move(sql::Database::Open(dir.Sub("other.db")).value());
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM sqlite_schema"), 1);
}

TEST(MigrationTest, FailedMigrationLeavesFileUntouched) {
  TempDir dir;
  constexpr Migration kBroken[] = {{1, "CREATE TABLE a(x); CREATE TABLE oops("}};
  SchemaSpec spec{"test", 0x1234, kBroken};
  auto db = std::move(sql::Database::Open(dir.Sub("t.db")).value());
  EXPECT_FALSE(ApplyMigrations(db.get(), spec).ok());
  EXPECT_EQ(*db->QueryInt("PRAGMA user_version"), 0);
  EXPECT_EQ(*db->QueryInt("SELECT count(*) FROM sqlite_schema"), 0);
}

}  // namespace
}  // namespace kb::store
