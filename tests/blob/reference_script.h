// Runs tests/blob/s3_reference.py (Debian's boto3/botocore) for the S3 tests. Always with
// /usr/bin/python3: the python3 first on PATH may be another interpreter without boto3.
#pragma once

#include <stdio.h>
#include <sys/wait.h>

#include <string>
#include <vector>

#ifndef KB_S3_REFERENCE_SCRIPT
#error "KB_S3_REFERENCE_SCRIPT must name tests/blob/s3_reference.py"
#endif

namespace kb::testing {

inline std::string ShellQuote(const std::string& arg) {
  std::string out = "'";
  for (char c : arg) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out.push_back(c);
    }
  }
  return out + "'";
}

// Runs the script with `args`; returns its exit status and puts stdout + stderr in `*output`.
inline int RunReferenceScript(const std::vector<std::string>& args, std::string* output) {
  std::string command = "/usr/bin/python3 " + ShellQuote(KB_S3_REFERENCE_SCRIPT);
  for (const std::string& arg : args) command += " " + ShellQuote(arg);
  command += " 2>&1";
  output->clear();
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace kb::testing
