// The shared parts of the BlobStore contract: key and prefix rules, URLs, S3 settings from the
// environment.
#include "blob/blob_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include "test_util.h"

namespace kb::blob {
namespace {

TEST(ValidateKeyTest, AcceptsRelativeNamesOfKeyCharacters) {
  for (const char* key : {"a", "a/b", "snapshots/2026-11-26T10.00.00Z", "data/ab/abcdef0123", "..a",
                          "a..", ".hidden", "-_.", "A/B/C/d_e-f.g"}) {
    EXPECT_TRUE(ValidateKey(key).ok()) << key;
  }
  EXPECT_TRUE(ValidateKey(std::string(1024, 'k')).ok());
}

TEST(ValidateKeyTest, RejectsEverythingElse) {
  const std::string overlong(1025, 'k');
  for (std::string_view key :
       {std::string_view(""), std::string_view("/abs"), std::string_view("a/"),
        std::string_view("a//b"), std::string_view("."), std::string_view(".."),
        std::string_view("../x"), std::string_view("a/../b"), std::string_view("a/./b"),
        std::string_view("a/.."), std::string_view("a b"), std::string_view("a\\b"),
        std::string_view("a~b"), std::string_view("a%2Fb"), std::string_view("a?b"),
        std::string_view("caf\xc3\xa9"), std::string_view("a\0b", 3), std::string_view("a\nb"),
        std::string_view(overlong)}) {
    Status s = ValidateKey(key);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << "'" << key << "'";
  }
}

TEST(ValidateKeyTest, MessageShowsControlCharactersEscaped) {
  Status s = ValidateKey("bad\nkey");
  ASSERT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("\\x0a"), std::string::npos) << s.message();
}

TEST(ValidatePrefixTest, AcceptsAnythingThatCanStartAKey) {
  for (const char* prefix : {"", "a", "a/", "snapshots/", "data/ab", "a.", "..", "a/.", "a/b/"}) {
    EXPECT_TRUE(ValidatePrefix(prefix).ok()) << prefix;
  }
}

TEST(ValidatePrefixTest, RejectsPrefixesNoKeyCanHave) {
  for (const char* prefix : {"/", "/x", "a//", "../", "./x", "a/../", "a b", "a~"}) {
    EXPECT_EQ(ValidatePrefix(prefix).code(), Code::kInvalidArgument) << prefix;
  }
  EXPECT_EQ(ValidatePrefix(std::string(1025, 'p')).code(), Code::kInvalidArgument);
}

TEST(OpenBlobStoreTest, OpensLocalDirectories) {
  testing::TempDir dir;
  auto store = OpenBlobStore("file://" + dir.path());
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_EQ((*store)->Describe(), "file://" + dir.path());
}

TEST(OpenBlobStoreTest, MissingLocalDirectoryNeedsCreate) {
  testing::TempDir dir;
  const std::string root = dir.Sub("repo/nested");
  EXPECT_EQ(OpenBlobStore("file://" + root).status().code(), Code::kFailedPrecondition);
  auto created = OpenBlobStore("file://" + root, {}, /*create=*/true);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_TRUE(OpenBlobStore("file://" + root).ok());
}

TEST(OpenBlobStoreTest, OpensS3WithoutContactingTheStore) {
  BlobStoreOptions options;
  options.s3.endpoint = "http://127.0.0.1:1";  // nothing listens there
  options.s3.access_key_id = "AKIDEXAMPLE";
  options.s3.secret_access_key = "secret-that-must-not-show";
  auto store = OpenBlobStore("s3://my-bucket/backups/prod", options);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const std::string described = (*store)->Describe();
  EXPECT_EQ(described, "s3://my-bucket/backups/prod (endpoint http://127.0.0.1:1)");
  EXPECT_EQ(described.find("secret"), std::string::npos);
}

TEST(OpenBlobStoreTest, RejectsBadUrlsAndSettings) {
  BlobStoreOptions ok_options;
  ok_options.s3.endpoint = "http://127.0.0.1:9000";
  for (const char* url : {"", "http://x", "file://relative/path", "s3://", "s3://Bad_Bucket",
                          "s3://ab", "s3://bucket/../escape", "s3://bucket/a//b", "ftp://x"}) {
    EXPECT_EQ(OpenBlobStore(url, ok_options).status().code(), Code::kInvalidArgument) << url;
  }
  for (const char* endpoint :
       {"127.0.0.1:9000", "ftp://host", "http://user:pw@host", "http://host/path", "http://host:0",
        "http://host:99999", "http://[::1"}) {
    BlobStoreOptions options;
    options.s3.endpoint = endpoint;
    Status s = OpenBlobStore("s3://bucket", options).status();
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << endpoint;
    EXPECT_EQ(s.message().find("pw@"), std::string::npos);
  }
  BlobStoreOptions bad_page = ok_options;
  bad_page.s3.list_page_size = 0;
  EXPECT_EQ(OpenBlobStore("s3://bucket", bad_page).status().code(), Code::kInvalidArgument);
  BlobStoreOptions half_credentials = ok_options;
  half_credentials.s3.access_key_id = "AKID";
  EXPECT_EQ(OpenBlobStore("s3://bucket", half_credentials).status().code(), Code::kInvalidArgument);
}

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  void Set(const char* name, const char* value) {
    const char* old = getenv(name);
    saved_.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

TEST(S3OptionsFromEnvironmentTest, FillsOnlyEmptyFields) {
  ScopedEnv env;
  env.Set("AWS_ACCESS_KEY_ID", "AKIDENV");
  env.Set("AWS_SECRET_ACCESS_KEY", "env-secret");
  env.Set("AWS_SESSION_TOKEN", "env-token");
  env.Set("AWS_REGION", nullptr);
  env.Set("AWS_DEFAULT_REGION", "eu-west-1");
  env.Set("AWS_ENDPOINT_URL", "http://generic:9000");
  env.Set("AWS_ENDPOINT_URL_S3", "http://s3-specific:9000");
  S3Options given;
  given.access_key_id = "AKIDGIVEN";
  S3Options o = S3OptionsFromEnvironment(given);
  EXPECT_EQ(o.access_key_id, "AKIDGIVEN");
  EXPECT_EQ(o.secret_access_key, "env-secret");
  EXPECT_EQ(o.session_token, "env-token");
  EXPECT_EQ(o.region, "eu-west-1");
  EXPECT_EQ(o.endpoint, "http://s3-specific:9000");
}

TEST(S3OptionsFromEnvironmentTest, DefaultsRegionToUsEast1) {
  ScopedEnv env;
  env.Set("AWS_REGION", nullptr);
  env.Set("AWS_DEFAULT_REGION", nullptr);
  EXPECT_EQ(S3OptionsFromEnvironment().region, "us-east-1");
  env.Set("AWS_REGION", "ap-south-1");
  env.Set("AWS_DEFAULT_REGION", "eu-west-1");
  EXPECT_EQ(S3OptionsFromEnvironment().region, "ap-south-1");
}

}  // namespace
}  // namespace kb::blob
