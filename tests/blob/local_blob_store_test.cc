// LocalBlobStore specifics beyond the conformance suite: what it leaves on disk, how it treats
// temporary leftovers and foreign files, and a root that disappears.
#include "blob/local_blob_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "test_util.h"

namespace kb::blob {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ListAll(BlobStore& store, std::string_view prefix = "") {
  std::vector<std::string> keys;
  Status s = store.List(prefix, [&](const ObjectInfo& o) {
    keys.push_back(o.key);
    return Status::OK();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return keys;
}

std::vector<std::string> FilesBelow(const std::string& root) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.push_back(fs::relative(e.path(), root).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = LocalBlobStore::Open(dir_.path(), false);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    store_ = std::move(*opened);
  }
  testing::TempDir dir_;
  std::unique_ptr<LocalBlobStore> store_;
};

TEST_F(LocalBlobStoreTest, PutStoresExactlyOneFilePerKeyAndNoTemporaries) {
  ASSERT_TRUE(store_->Put("a/b/c", "one").ok());
  ASSERT_TRUE(store_->Put("a/b/c", "two").ok());
  ASSERT_TRUE(store_->Put("top", "").ok());
  EXPECT_EQ(FilesBelow(dir_.path()), (std::vector<std::string>{"a/b/c", "top"}));
  EXPECT_EQ(*store_->Get("a/b/c"), "two");
}

TEST_F(LocalBlobStoreTest, ListSkipsTemporaryLeftoversAndForeignNames) {
  ASSERT_TRUE(store_->Put("dir/kept", "x").ok());
  testing::WriteTestFile(dir_.Sub("~tmp-0123abcd"), "crash leftover");
  testing::WriteTestFile(dir_.Sub("dir/~tmp-feed"), "crash leftover");
  testing::WriteTestFile(dir_.Sub("dir/has space"), "foreign");
  fs::create_directories(dir_.Sub("empty/dir"));
  EXPECT_EQ(ListAll(*store_), (std::vector<std::string>{"dir/kept"}));
}

TEST_F(LocalBlobStoreTest, ListOrdersKeysBytewiseAcrossDirectories) {
  // '-' (0x2d) < '.' (0x2e) < '/' (0x2f) < '0': a directory's keys sort between its siblings,
  // not before them as a plain sorted directory walk would give.
  for (const char* key : {"a/b", "a-b", "a.b", "a0", "ab", "b/c/d", "b/c-", "b/c.x"}) {
    ASSERT_TRUE(store_->Put(key, key).ok());
  }
  EXPECT_EQ(ListAll(*store_),
            (std::vector<std::string>{"a-b", "a.b", "a/b", "a0", "ab", "b/c-", "b/c.x", "b/c/d"}));
  EXPECT_EQ(ListAll(*store_, "b/c"), (std::vector<std::string>{"b/c-", "b/c.x", "b/c/d"}));
  EXPECT_EQ(ListAll(*store_, "b/c/"), (std::vector<std::string>{"b/c/d"}));
}

TEST_F(LocalBlobStoreTest, KeyBelowAFileFailsWithIOError) {
  ASSERT_TRUE(store_->Put("file", "x").ok());
  EXPECT_EQ(store_->Put("file/child", "y").code(), Code::kIOError);
  EXPECT_EQ(store_->Get("file/child").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Stat("file/child").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Delete("file/child").ok());
}

TEST_F(LocalBlobStoreTest, DirectoryIsNotAnObject) {
  ASSERT_TRUE(store_->Put("dir/x", "x").ok());
  EXPECT_EQ(store_->Get("dir").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->Stat("dir").status().code(), Code::kNotFound);
  EXPECT_TRUE(store_->Delete("dir").ok());
  EXPECT_EQ(*store_->Get("dir/x"), "x");
}

TEST_F(LocalBlobStoreTest, FilesArePrivateToTheOwner) {
  ASSERT_TRUE(store_->Put("d/secret", "x").ok());
  struct stat st;
  ASSERT_EQ(stat(dir_.Sub("d/secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(stat(dir_.Sub("d").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(LocalBlobStoreTest, ReadersNeverSeeAPartialOverwrite) {
  constexpr int kWriters = 4;
  constexpr int kRounds = 25;
  auto value_of = [](int writer) { return std::string(64 << 10, static_cast<char>('A' + writer)); };
  ASSERT_TRUE(store_->Put("shared", value_of(0)).ok());
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kRounds; ++i) EXPECT_TRUE(store_->Put("shared", value_of(w)).ok());
    });
  }
  std::thread reader([&] {
    while (!done.load()) {
      auto got = store_->Get("shared");
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      ASSERT_EQ(got->size(), size_t{64} << 10);
      EXPECT_EQ(*got, std::string(got->size(), (*got)[0])) << "a mixture of two writes";
    }
  });
  for (std::thread& t : threads) t.join();
  done.store(true);
  reader.join();
}

TEST(LocalBlobStoreOpenTest, RootThatDisappearsIsFailedPrecondition) {
  testing::TempDir dir;
  const std::string root = dir.Sub("repo");
  auto store = LocalBlobStore::Open(root, /*create=*/true);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  fs::remove_all(root);
  EXPECT_EQ((*store)->Put("a/b", "x").code(), Code::kFailedPrecondition);
  EXPECT_EQ((*store)->Put("a", "x").code(), Code::kFailedPrecondition);
  EXPECT_EQ((*store)->List("", [](const ObjectInfo&) { return Status::OK(); }).code(),
            Code::kFailedPrecondition);
  EXPECT_EQ((*store)->Get("a").status().code(), Code::kNotFound);
  EXPECT_FALSE(fs::exists(root)) << "Put must not recreate a vanished root";
}

TEST(LocalBlobStoreOpenTest, RejectsRelativeRootsAndFiles) {
  EXPECT_EQ(LocalBlobStore::Open("relative", true).status().code(), Code::kInvalidArgument);
  testing::TempDir dir;
  testing::WriteTestFile(dir.Sub("file"), "x");
  EXPECT_EQ(LocalBlobStore::Open(dir.Sub("file"), false).status().code(),
            Code::kFailedPrecondition);
}

TEST(LocalBlobStoreOpenTest, TrailingSlashesAreIgnored) {
  testing::TempDir dir;
  auto store = LocalBlobStore::Open(dir.path() + "//", false);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->Describe(), "file://" + dir.path());
  ASSERT_TRUE((*store)->Put("k", "v").ok());
  EXPECT_TRUE(fs::exists(dir.Sub("k")));
}

}  // namespace
}  // namespace kb::blob
