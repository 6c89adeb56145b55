// S3BlobStore beyond the conformance suite: interoperability with boto3 (a second, independent
// S3 client), addressing styles, what goes on the wire, and behaviour under injected faults
// (HTTP errors, slow answers, connections reset mid-upload) through a FaultProxy placed between
// the store and a real s3rver.
#include "blob/s3_blob_store.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>

#include "common/crypto_util.h"
#include "fault_proxy.h"
#include "reference_script.h"
#include "s3rver_fixture.h"
#include "test_util.h"

namespace kb::blob {
namespace {

using testing::FaultProxy;

std::string RandomData(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::string Base64Md5(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  return Base64Encode(std::string(reinterpret_cast<const char*>(digest), len));
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t ElapsedMs(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               since)
      .count();
}

class S3BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = testing::SharedS3rver(&error);
    ASSERT_NE(server_, nullptr) << "s3rver must run for this test: " << error;
  }

  // A store on s3rver under a fresh prefix (returned in *prefix when asked).
  std::unique_ptr<S3BlobStore> Open(const S3Options& options, std::string* prefix = nullptr,
                                    const std::string& bucket = testing::kS3rverBucket) {
    std::string p = testing::UniqueTestPrefix();
    if (prefix != nullptr) *prefix = p;
    auto store = S3BlobStore::Open(bucket, p, options);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(*store) : nullptr;
  }

  // Starts a proxy in front of s3rver; returns settings that go through it.
  S3Options ThroughProxy() {
    proxy_ = std::make_unique<FaultProxy>(server_->port());
    Status s = proxy_->Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    S3Options options = server_->Options();
    options.endpoint = proxy_->endpoint();
    return options;
  }

  testing::S3rverProcess* server_ = nullptr;
  std::unique_ptr<FaultProxy> proxy_;
};

// ---- Interoperability -----------------------------------------------------------------------

TEST_F(S3BlobStoreTest, Boto3ReadsBackWhatWeWriteIncludingMultipart) {
  S3Options options = server_->Options();
  options.multipart_threshold = 5 << 20;
  options.multipart_part_size = 5 << 20;
  std::string prefix;
  auto store = Open(options, &prefix);
  ASSERT_NE(store, nullptr);
  const std::string small = RandomData(1000, 1) + std::string(5, '\0');
  const std::string multi = RandomData(12 << 20, 2);
  ASSERT_TRUE(store->Put("interop/small", small).ok());
  const int64_t before = store->attempt_count();
  ASSERT_TRUE(store->Put("interop/multi", multi).ok());
  EXPECT_EQ(store->attempt_count() - before, 5) << "create + 3 parts + complete";

  testing::TempDir dir;
  for (const auto& [key, data] : {std::pair{"interop/small", &small}, {"interop/multi", &multi}}) {
    std::string output;
    const std::string out = dir.Sub("object");
    ASSERT_EQ(
        testing::RunReferenceScript(
            {"get", server_->endpoint(), testing::kS3rverBucket, prefix + "/" + key, out}, &output),
        0)
        << output;
    EXPECT_TRUE(ReadWholeFile(out) == *data) << key << " differs when read by boto3";
  }
}

TEST_F(S3BlobStoreTest, WeReadBackWhatBoto3Writes) {
  std::string prefix;
  auto store = Open(server_->Options(), &prefix);
  ASSERT_NE(store, nullptr);
  testing::TempDir dir;
  const std::string small = RandomData(100, 3);
  const std::string multi = RandomData(11 << 20, 4);  // boto3 uploads it in 3 parts
  for (const auto& [key, data] :
       {std::pair{"from-boto3/small", &small}, {"from-boto3/multi", &multi}}) {
    const std::string in = dir.Sub("upload");
    testing::WriteTestFile(in, *data);
    std::string output;
    ASSERT_EQ(testing::RunReferenceScript({"put", server_->endpoint(), testing::kS3rverBucket,
                                           prefix + "/" + key, in, std::to_string(5 << 20)},
                                          &output),
              0)
        << output;
    auto got = store->Get(key);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_TRUE(*got == *data) << key << " differs when read by us";
  }
  std::vector<ObjectInfo> listed;
  ASSERT_TRUE(store
                  ->List("from-boto3/",
                         [&](const ObjectInfo& o) {
                           listed.push_back(o);
                           return Status::OK();
                         })
                  .ok());
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].key, "from-boto3/multi");
  EXPECT_EQ(listed[0].size, static_cast<int64_t>(multi.size()));
  EXPECT_EQ(listed[1].key, "from-boto3/small");
  EXPECT_EQ(listed[1].size, static_cast<int64_t>(small.size()));
}

TEST_F(S3BlobStoreTest, VirtualHostAddressingReachesTheSameBucket) {
  S3Options vhost = server_->Options();
  vhost.endpoint = server_->virtual_host_endpoint();
  vhost.path_style = false;
  std::string prefix;
  auto store = Open(vhost, &prefix);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("v/k", "virtual").ok());
  EXPECT_EQ(*store->Get("v/k"), "virtual");
  EXPECT_EQ(store->Stat("v/k")->size, 7);
  // The same object seen path-style.
  auto path_style = S3BlobStore::Open(testing::kS3rverBucket, prefix, server_->Options());
  ASSERT_TRUE(path_style.ok());
  EXPECT_EQ(*(*path_style)->Get("v/k"), "virtual");
  int listed = 0;
  ASSERT_TRUE(store->List("", [&](const ObjectInfo&) { return ++listed, Status::OK(); }).ok());
  EXPECT_EQ(listed, 1);
  EXPECT_TRUE(store->Delete("v/k").ok());
  EXPECT_EQ((*path_style)->Stat("v/k").status().code(), Code::kNotFound);
}

TEST_F(S3BlobStoreTest, ListRefusesAServerListingOutOfOrder) {
  // s3rver walks its directory tree: "a/b" (below directory "a") comes before "a-b", although
  // '-' < '/'. S3 itself lists in byte order. A listing out of order must fail, not mislead.
  auto store = Open(server_->Options());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Put("a/b", "").ok());
  ASSERT_TRUE(store->Put("a-b", "").ok());
  Status s = store->List("", [](const ObjectInfo&) { return Status::OK(); });
  EXPECT_EQ(s.code(), Code::kIOError) << s.ToString();
  EXPECT_NE(s.message().find("out of order"), std::string::npos) << s.message();
}

// ---- On the wire ----------------------------------------------------------------------------

TEST_F(S3BlobStoreTest, UploadsCarryContentMd5AndTheSignedPayloadHash) {
  S3Options options = ThroughProxy();
  options.multipart_threshold = 1 << 20;
  options.multipart_part_size = 1 << 20;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::string single = RandomData(1000, 5);
  const std::string multi = RandomData((5 << 20) / 2, 6);  // 2.5 MiB: 3 parts
  ASSERT_TRUE(store->Put("single", single).ok());
  ASSERT_TRUE(store->Put("multi", multi).ok());

  std::vector<testing::ProxiedRequest> requests = proxy_->requests();
  ASSERT_EQ(requests.size(), 6u);
  auto expect_body = [](const testing::ProxiedRequest& r, std::string_view body) {
    EXPECT_EQ(r.Header("content-md5"), Base64Md5(body)) << r.target;
    EXPECT_EQ(r.Header("x-amz-content-sha256"), Sha256Hex(body)) << r.target;
    EXPECT_EQ(r.content_length, static_cast<int64_t>(body.size())) << r.target;
    const std::string auth = r.Header("authorization");
    EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=S3RVER/", 0), 0u) << auth;
    EXPECT_NE(auth.find("content-md5;"), std::string::npos) << auth;
    EXPECT_NE(auth.find("x-amz-content-sha256;x-amz-date"), std::string::npos) << auth;
  };
  EXPECT_EQ(requests[0].method, "PUT");
  expect_body(requests[0], single);
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_NE(requests[1].target.find("?uploads="), std::string::npos) << requests[1].target;
  for (int part = 1; part <= 3; ++part) {
    const testing::ProxiedRequest& r = requests[static_cast<size_t>(1 + part)];
    EXPECT_EQ(r.method, "PUT");
    EXPECT_NE(r.target.find("partNumber=" + std::to_string(part) + "&uploadId="), std::string::npos)
        << r.target;
    expect_body(r, std::string_view(multi).substr(static_cast<size_t>(part - 1) << 20, 1 << 20));
  }
  EXPECT_EQ(requests[5].method, "POST");
  EXPECT_NE(requests[5].target.find("?uploadId="), std::string::npos) << requests[5].target;
}

// ---- Faults ---------------------------------------------------------------------------------

TEST_F(S3BlobStoreTest, TransientErrorsAreRetriedUntilTheCallSucceeds) {
  auto store = Open(ThroughProxy());
  ASSERT_NE(store, nullptr);
  proxy_->FailNext(1, 500, "InternalError");
  proxy_->FailNext(1, 503, "SlowDown");
  proxy_->FailNext(1, 429, "TooManyRequests");
  ASSERT_TRUE(store->Put("k", "value").ok());
  EXPECT_EQ(proxy_->request_count(), 4);
  proxy_->FailNext(2, 503, "ServiceUnavailable");
  auto got = store->Get("k");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(*got, "value");
  EXPECT_EQ(proxy_->request_count(), 7);
  proxy_->FailNext(1, 500, "InternalError");
  int listed = 0;
  ASSERT_TRUE(store->List("", [&](const ObjectInfo&) { return ++listed, Status::OK(); }).ok());
  EXPECT_EQ(listed, 1);
}

TEST_F(S3BlobStoreTest, ExhaustedRetriesAreUnavailableNamingAttemptsAndLastError) {
  S3Options options = ThroughProxy();
  options.max_attempts = 3;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  proxy_->FailNext(100, 503, "SlowDown");
  Status s = store->Put("k", "v");
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("3 attempts"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("HTTP 503 SlowDown"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'k'"), std::string::npos) << s.message();
  EXPECT_EQ(proxy_->request_count(), 3);
  proxy_->ClearFaults();
  EXPECT_TRUE(store->Put("k", "v").ok()) << "the next call after failures succeeds";
}

TEST_F(S3BlobStoreTest, ForbiddenFailsFastWithOneAttemptAndNoSecrets) {
  S3Options options = ThroughProxy();
  options.secret_access_key = "kb-test-secret-never-shown";  // s3rver does not check it
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  testing::Fault forbidden;
  forbidden.http_status = 403;
  forbidden.s3_code = "AccessDenied";
  forbidden.s3_message = "Access Denied";
  proxy_->AddFault(forbidden);
  Status s = store->Put("k", "v");
  EXPECT_EQ(s.code(), Code::kPermissionDenied) << s.ToString();
  EXPECT_NE(s.message().find("AccessDenied: Access Denied"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("kb-test-secret-never-shown"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("Signature="), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("uthorization"), std::string::npos) << s.message();
  EXPECT_EQ(proxy_->request_count(), 1);
  EXPECT_EQ(store->attempt_count(), 1);
  EXPECT_TRUE(store->Put("k", "v").ok());
}

TEST_F(S3BlobStoreTest, ForbiddenHeadIsPermissionDenied) {
  auto store = Open(ThroughProxy());
  ASSERT_NE(store, nullptr);
  proxy_->FailNext(1, 403, "AccessDenied");
  EXPECT_EQ(store->Stat("k").status().code(), Code::kPermissionDenied);
  EXPECT_EQ(proxy_->request_count(), 1);
}

TEST_F(S3BlobStoreTest, NotFoundIsNotRetried) {
  auto store = Open(ThroughProxy());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->Get("missing").status().code(), Code::kNotFound);
  EXPECT_EQ(store->Stat("missing").status().code(), Code::kNotFound);
  EXPECT_TRUE(store->Delete("missing").ok());
  EXPECT_EQ(proxy_->request_count(), 3);
}

TEST_F(S3BlobStoreTest, MissingBucketIsFailedPrecondition) {
  S3Options options = ThroughProxy();
  options.multipart_threshold = 1000;
  auto store = Open(options, nullptr, "no-such-bucket-kb");
  ASSERT_NE(store, nullptr);
  Status put = store->Put("k", "v");
  EXPECT_EQ(put.code(), Code::kFailedPrecondition) << put.ToString();
  EXPECT_NE(put.message().find("bucket 'no-such-bucket-kb' does not exist"), std::string::npos)
      << put.message();
  EXPECT_EQ(store->Put("big", std::string(5000, 'b')).code(), Code::kFailedPrecondition);
  EXPECT_EQ(store->Get("k").status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(store->Delete("k").code(), Code::kFailedPrecondition);
  EXPECT_EQ(store->List("", [](const ObjectInfo&) { return Status::OK(); }).code(),
            Code::kFailedPrecondition);
  EXPECT_EQ(proxy_->request_count(), 5) << "never retried";
}

TEST_F(S3BlobStoreTest, ResetMidSinglePutIsRetried) {
  auto store = Open(ThroughProxy());
  ASSERT_NE(store, nullptr);
  const std::string data = RandomData(256 << 10, 7);
  proxy_->ResetNext(1, 1000);
  ASSERT_TRUE(store->Put("reset/single", data).ok());
  EXPECT_EQ(proxy_->request_count(), 2);
  auto got = store->Get("reset/single");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == data) << got->size() << " bytes read back, " << data.size() << " written";
}

TEST_F(S3BlobStoreTest, ResetMidMultipartPartIsRetried) {
  S3Options options = ThroughProxy();
  options.multipart_threshold = 1 << 20;
  options.multipart_part_size = 1 << 20;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::string data = RandomData((7 << 20) / 2, 8);  // 3.5 MiB: 4 parts
  proxy_->ResetNext(1, 300'000, "partNumber=2&");
  ASSERT_TRUE(store->Put("reset/multi", data).ok());
  int resets = 0;
  for (const auto& r : proxy_->requests()) resets += r.fault == "reset";
  EXPECT_EQ(resets, 1);
  auto got = store->Get("reset/multi");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(*got == data) << "the object assembled after a retried part differs";
}

TEST_F(S3BlobStoreTest, PersistentResetMidMultipartFailsLeavingNothingVisible) {
  S3Options options = ThroughProxy();
  options.multipart_threshold = 1 << 20;
  options.multipart_part_size = 1 << 20;
  options.max_attempts = 3;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::string data = RandomData(3 << 20, 9);
  proxy_->ResetNext(100, 300'000, "partNumber=2&");
  Status s = store->Put("reset/never", data);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("UploadPart 2"), std::string::npos) << s.message();
  EXPECT_EQ(store->Stat("reset/never").status().code(), Code::kNotFound);
  int listed = 0;
  ASSERT_TRUE(store->List("", [&](const ObjectInfo&) { return ++listed, Status::OK(); }).ok());
  EXPECT_EQ(listed, 0);
  bool aborted = false;
  for (const auto& r : proxy_->requests()) {
    aborted |= r.method == "DELETE" && r.target.find("uploadId=") != std::string::npos;
  }
  EXPECT_TRUE(aborted) << "a failed multipart upload is aborted";
  proxy_->ClearFaults();
  ASSERT_TRUE(store->Put("reset/never", data).ok());
  EXPECT_TRUE(*store->Get("reset/never") == data);
}

TEST_F(S3BlobStoreTest, FailedCompletionIsRetried) {
  S3Options options = ThroughProxy();
  options.multipart_threshold = 1 << 20;
  options.multipart_part_size = 1 << 20;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const std::string data = RandomData(2 << 20, 10);
  proxy_->FailNext(1, 503, "SlowDown", "?uploadId=");  // CompleteMultipartUpload only
  ASSERT_TRUE(store->Put("complete/retried", data).ok());
  EXPECT_TRUE(*store->Get("complete/retried") == data);
}

TEST_F(S3BlobStoreTest, SlowAnswersFailWithinTheDeadline) {
  S3Options options = ThroughProxy();
  options.request_timeout_ms = 300;
  options.operation_deadline_ms = 1'000;
  options.max_attempts = 100;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  proxy_->DelayNext(1000, 5'000);
  const auto start = std::chrono::steady_clock::now();
  Status s = store->Put("slow", "v");
  const int64_t elapsed = ElapsedMs(start);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.ToString();
  EXPECT_NE(s.message().find("deadline"), std::string::npos) << s.message();
  EXPECT_LT(elapsed, 2'500) << "the 1 s deadline was not kept";
  EXPECT_GE(elapsed, 900);
  proxy_->ClearFaults();
  proxy_->DelayNext(1, 100);  // slow but within the timeout
  EXPECT_TRUE(store->Put("slow", "v").ok());
  EXPECT_EQ(*store->Get("slow"), "v");
}

TEST_F(S3BlobStoreTest, RefusedConnectionsAreRetriedThenUnavailable) {
  S3Options options = server_->Options();
  options.endpoint = "http://127.0.0.1:" + std::to_string(testing::PickFreeLoopbackPort());
  options.max_attempts = 3;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  const auto start = std::chrono::steady_clock::now();
  auto got = store->Get("k");
  EXPECT_EQ(got.status().code(), Code::kUnavailable) << got.status().ToString();
  EXPECT_NE(got.status().message().find("3 attempts"), std::string::npos) << got.status().message();
  EXPECT_EQ(store->attempt_count(), 3);
  EXPECT_LT(ElapsedMs(start), 2'000);
}

}  // namespace
}  // namespace kb::blob
