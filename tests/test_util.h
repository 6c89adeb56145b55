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

// Writes a file (creating parent directories); aborts the test on failure.
void WriteTestFile(const std::string& path, const std::string& content);

}  // namespace kb::testing
