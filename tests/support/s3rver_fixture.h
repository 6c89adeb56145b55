// A real S3-compatible server for tests: the npm package s3rver (pinned by
// scripts/install-deps.sh, installed into <repo>/.cache/s3rver) run by Node as a child process
// on a free loopback port, with its data in a fresh temporary directory.
//
// Tests that need it must FAIL, not skip, when it cannot start: CI installs it, so a missing
// s3rver is a broken machine, not an optional feature. Start() returns the reason (with the
// server's log) for the test to report.
//
// What s3rver does and does not do (see also /work/shared/NOTES.md, "S3 test server"): it checks
// the access key but not SigV4 signatures (the signer is tested against botocore instead), it
// does not verify Content-MD5, it lacks AbortMultipartUpload (405), and paginated ListObjectsV2
// needs NODE_OPTIONS=--openssl-legacy-provider on Node 20, which Start() sets.
//
// Thread-safety: Start/Stop from one thread; the server itself serves any number of clients.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "blob/blob_store.h"
#include "blob/s3_blob_store.h"
#include "common/status.h"
#include "test_util.h"

namespace kb::testing {

// The bucket every fixture creates at start.
inline constexpr const char* kS3rverBucket = "kb-test";
// s3rver's one built-in account.
inline constexpr const char* kS3rverAccessKey = "S3RVER";
inline constexpr const char* kS3rverSecretKey = "S3RVER";

class S3rverProcess {
 public:
  S3rverProcess();
  ~S3rverProcess();  // stops the server
  S3rverProcess(const S3rverProcess&) = delete;
  S3rverProcess& operator=(const S3rverProcess&) = delete;

  // Starts s3rver with `buckets` created, and waits until it accepts connections. Retries on
  // another port if the chosen one was taken meanwhile. FailedPrecondition when s3rver is not
  // installed, Unavailable when it does not come up within `timeout_ms`.
  Status Start(const std::vector<std::string>& buckets = {kS3rverBucket}, int timeout_ms = 30'000);
  // SIGTERM, then SIGKILL after 5 s; reaps the child. Idempotent.
  void Stop();

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  // "http://127.0.0.1:PORT" (path-style addressing).
  std::string endpoint() const;
  // "http://s3.localhost:PORT": with path_style = false, buckets are addressed as
  // "<bucket>.s3.localhost", which curl resolves to loopback and s3rver maps to the bucket.
  std::string virtual_host_endpoint() const;
  // Settings that reach this server: endpoint, region us-east-1, s3rver's keys, path style,
  // and timeouts and backoff short enough for tests.
  blob::S3Options Options() const;
  // Creates another bucket (PUT /bucket). OK if it already exists.
  Status CreateBucket(const std::string& name) const;
  // The server's stdout and stderr so far.
  std::string Log() const;

 private:
  Status StartOnce(const std::vector<std::string>& buckets, int timeout_ms);

  std::unique_ptr<TempDir> dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// One server for the whole test binary, started on first use and stopped at exit. Returns
// nullptr and sets `*error` when it cannot start (the caller FAILs with that message).
S3rverProcess* SharedS3rver(std::string* error);

// An S3BlobStore with `options` on `bucket`, under a prefix unique to this call, so tests
// sharing one server never see each other's objects.
Result<std::unique_ptr<blob::S3BlobStore>> OpenS3TestStore(
    const blob::S3Options& options, const std::string& bucket = kS3rverBucket);

// A prefix no other call in this process returns: "t<pid>-<n>".
std::string UniqueTestPrefix();

// A port that was free a moment ago (bind to port 0 on loopback, read it back, close).
int PickFreeLoopbackPort();

}  // namespace kb::testing
