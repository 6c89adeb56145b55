// The CLI's output shapes and error reporting (see output.h for the exit-code contract).
#include "cli/output.h"

#include <cstdio>
#include <iostream>

namespace kb::cli {

using Json = nlohmann::json;

int ReportError(const std::string& message, bool usage) {
  std::string line = message;
  // One line, always: multi-line messages (CLI11's) are joined.
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::cerr << "error: " << line << std::endl;
  return usage ? kExitUsage : kExitFailure;
}

int ReportError(const Status& status, bool usage) { return ReportError(status.message(), usage); }

void PrintJson(const Json& j) {
  std::cout << j.dump(2, ' ', false, Json::error_handler_t::replace) << std::endl;
}

std::string HumanBytes(double bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof buf, "%.0f %s", bytes, kUnits[unit]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", bytes, kUnits[unit]);
  }
  return buf;
}

}  // namespace kb::cli
