// Helpers shared by every test binary: temporary directories that clean up after themselves.
#pragma once

#include <string>

namespace kb::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction unless
// KB_KEEP_TEST_DIRS is set (for post-mortems).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// How many times longer a guard against quadratic time may take in a sanitizer build (KB_SANITIZE:
// instrumented, unoptimised code runs several times slower). Such a guard bounds seconds where
// the quadratic case would take minutes, so the slack does not hide what it guards against.
#ifdef KB_SANITIZED_BUILD
inline constexpr double kSanitizerTimeSlack = 4.0;
#else
inline constexpr double kSanitizerTimeSlack = 1.0;
#endif

// Writes a file (creating parent directories); aborts the test on failure.
void WriteTestFile(const std::string& path, const std::string& content);

}  // namespace kb::testing
