// Our SigV4 signer against two references: AWS's published S3 example, and botocore's
// S3SigV4Auth (Debian's python3-botocore) on a set of fixed requests at fixed times. s3rver does
// not verify signatures, so this is where the signer is actually tested.
#include "blob/sigv4.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/crypto_util.h"
#include "reference_script.h"
#include "test_util.h"

namespace kb::blob {
namespace {

int64_t At(const char* iso8601) { return *ParseIso8601(iso8601); }

std::string HeaderOf(const SignedRequest& signed_request, const std::string& name) {
  for (const auto& [n, v] : signed_request.headers) {
    if (n == name) return v;
  }
  return "";
}

TEST(SigV4Test, MatchesAwsPublishedGetObjectExample) {
  // "GET Object" example of AWS's "Signature Calculations for the Authorization Header".
  SigV4Request request;
  request.method = "GET";
  request.host = "examplebucket.s3.amazonaws.com";
  request.path = "/test.txt";
  request.headers = {{"Range", "bytes=0-9"}};
  request.payload_sha256 = Sha256Hex("");
  SignedRequest s =
      SignRequest(request, {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""},
                  "us-east-1", At("2013-05-24T00:00:00Z"));
  EXPECT_EQ(HeaderOf(s, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
      << s.canonical_request;
  EXPECT_EQ(HeaderOf(s, "x-amz-date"), "20130524T000000Z");
  EXPECT_EQ(HeaderOf(s, "x-amz-content-sha256"), Sha256Hex(""));
  EXPECT_EQ(HeaderOf(s, "x-amz-security-token"), "");
}

TEST(SigV4Test, EncodesLikeSigV4Expects) {
  EXPECT_EQ(UriEncode("aZ09-_.~", false), "aZ09-_.~");
  EXPECT_EQ(UriEncode("a/b c+d=e&f", false), "a%2Fb%20c%2Bd%3De%26f");
  EXPECT_EQ(UriEncode("a/b c", true), "a/b%20c");
  EXPECT_EQ(UriEncode("\xc3\xa9", false), "%C3%A9");
  EXPECT_EQ(CanonicalQueryString({{"uploads", ""}}), "uploads=");
  EXPECT_EQ(CanonicalQueryString({{"uploadId", "x/y"}, {"partNumber", "2"}}),
            "partNumber=2&uploadId=x%2Fy");
  EXPECT_EQ(AmzDate(At("2024-02-29T23:59:59.999Z")), "20240229T235959Z");
}

// One request to sign both ways.
struct Case {
  std::string name;
  std::string url;  // without query, as sent
  SigV4Request request;
  std::string body;
  std::string region = "us-east-1";
  SigV4Credentials credentials{"S3RVER", "S3RVER", ""};
  std::string time = "2026-11-26T10:19:00Z";
};

std::vector<Case> Cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, std::string method, std::string scheme_host, std::string host,
                 std::string path, HeaderList query, HeaderList headers, std::string body) {
    Case c;
    c.name = std::move(name);
    c.url = scheme_host + path;
    c.request.method = std::move(method);
    c.request.host = std::move(host);
    c.request.path = std::move(path);
    c.request.query = std::move(query);
    c.request.headers = std::move(headers);
    c.body = std::move(body);
    c.request.payload_sha256 = Sha256Hex(c.body);
    cases.push_back(std::move(c));
  };
  const std::string local = "http://127.0.0.1:9000";
  add("get", "GET", local, "127.0.0.1:9000", "/kb-test/repo/snapshots/001", {}, {}, "");
  add("put", "PUT", local, "127.0.0.1:9000", "/kb-test/repo/data/ab/cdef", {},
      {{"content-md5", "XrY7u+Ae7tCTyyK7j1rNww=="}, {"content-type", "application/octet-stream"}},
      std::string("hello\0world\xff", 12));
  add("create-multipart", "POST", local, "127.0.0.1:9000", "/kb-test/big", {{"uploads", ""}},
      {{"content-type", "application/octet-stream"}}, "");
  add("upload-part", "PUT", local, "127.0.0.1:9000", "/kb-test/big",
      {{"partNumber", "3"}, {"uploadId", "abc/def+ghi="}},
      {{"content-md5", "1B2M2Y8AsgTpgAmY7PhCfg=="}}, std::string(1000, 'p'));
  add("complete", "POST", local, "127.0.0.1:9000", "/kb-test/big", {{"uploadId", "u-1"}},
      {{"content-type", "application/xml"}},
      "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;x&quot;</ETag></Part>"
      "</CompleteMultipartUpload>");
  add("list", "GET", local, "127.0.0.1:9000", "/kb-test",
      {{"list-type", "2"},
       {"prefix", "repo/a b&c=d/"},
       {"max-keys", "7"},
       {"continuation-token", "1/Ab+cd=="}},
      {}, "");
  add("delete", "DELETE", "http://localhost", "localhost", "/kb-test/k", {}, {}, "");
  add("whitespace", "PUT", "https://s3.example.com:8443", "s3.example.com:8443", "/b/k", {},
      {{"Content-Type", "  text/plain;   charset=utf-8  "}}, "x");
  Case vhost;
  vhost.name = "virtual-host-with-session-token";
  vhost.url = "https://my-bucket.s3.eu-west-1.amazonaws.com/path/to/object";
  vhost.request.method = "GET";
  vhost.request.host = "my-bucket.s3.eu-west-1.amazonaws.com";
  vhost.request.path = "/path/to/object";
  vhost.request.headers = {{"range", "bytes=100-199"}};
  vhost.request.payload_sha256 = Sha256Hex("");
  vhost.region = "eu-west-1";
  vhost.credentials = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                       "FQoGZXIvYXdzEJr//token="};
  vhost.time = "2024-02-29T23:59:59Z";
  cases.push_back(vhost);
  return cases;
}

TEST(SigV4Test, MatchesBotocoreOnFixedRequests) {
  const std::vector<Case> cases = Cases();
  nlohmann::json specs = nlohmann::json::array();
  std::vector<SignedRequest> ours;
  for (const Case& c : cases) {
    SignedRequest s = SignRequest(c.request, c.credentials, c.region, At(c.time.c_str()));
    nlohmann::json params = nlohmann::json::array();
    for (const auto& [n, v] : c.request.query) params.push_back({n, v});
    nlohmann::json headers = nlohmann::json::array();
    for (const auto& [n, v] : c.request.headers) headers.push_back({n, v});
    specs.push_back({{"method", c.request.method},
                     {"url", c.url},
                     {"params", params},
                     {"headers", headers},
                     {"body_hex", HexEncode(c.body)},
                     {"region", c.region},
                     {"access_key", c.credentials.access_key_id},
                     {"secret_key", c.credentials.secret_access_key},
                     {"token", c.credentials.session_token},
                     {"timestamp", HeaderOf(s, "x-amz-date")}});
    ours.push_back(std::move(s));
  }
  testing::TempDir dir;
  const std::string path = dir.Sub("requests.json");
  std::ofstream(path) << specs.dump();
  std::string output;
  ASSERT_EQ(testing::RunReferenceScript({"sign", path}, &output), 0)
      << "botocore signer failed (is python3-boto3 installed?):\n"
      << output;
  nlohmann::json results = nlohmann::json::parse(output, nullptr, false);
  ASSERT_TRUE(results.is_array()) << output;
  ASSERT_EQ(results.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(HeaderOf(ours[i], "authorization"), results[i]["authorization"].get<std::string>())
        << cases[i].name << "\nours:\n"
        << ours[i].canonical_request << "\nbotocore:\n"
        << results[i]["canonical_request"].get<std::string>();
  }
}

TEST(SigV4Test, SessionTokenIsSentAndSigned) {
  SigV4Request request;
  request.method = "GET";
  request.host = "h";
  request.path = "/b/k";
  request.payload_sha256 = Sha256Hex("");
  SignedRequest s = SignRequest(request, {"AKID", "secret", "token-1"}, "us-east-1", 0);
  EXPECT_EQ(HeaderOf(s, "x-amz-security-token"), "token-1");
  EXPECT_NE(HeaderOf(s, "authorization").find("x-amz-security-token"), std::string::npos);
  EXPECT_EQ(HeaderOf(s, "authorization").find("secret"), std::string::npos);
}

}  // namespace
}  // namespace kb::blob
