#include "common/logging.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>

#include "common/clock.h"
#include "common/thread_annotations.h"

namespace kb {

namespace {
std::atomic<bool> g_json{false};
std::atomic<bool> g_initialized{false};
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
// Serialises whole lines on the sink (no data of ours): lines of two threads never interleave.
Mutex g_mu;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}
}  // namespace

void InitLogging(LogLevel level, bool json) {
  g_level = static_cast<int>(level);
  g_json = json;
  auto logger = spdlog::stderr_logger_mt("kb");
  logger->set_pattern("%v");
  spdlog::set_default_logger(logger);
  g_initialized = true;
}

bool ParseLogLevel(std::string_view name, LogLevel* out) {
  if (name == "debug") *out = LogLevel::kDebug;
  else if (name == "info") *out = LogLevel::kInfo;
  else if (name == "warn" || name == "warning") *out = LogLevel::kWarn;
  else if (name == "error") *out = LogLevel::kError;
  else return false;
  return true;
}

void Log(LogLevel level, std::string_view message, std::string_view fields_json) {
  if (static_cast<int>(level) < g_level.load()) return;
  std::string line;
  if (g_json) {
    line = "{\"ts\":\"" + FormatIso8601(SystemClock::Default()->NowMillis()) + "\",\"level\":\"" +
           LevelName(level) + "\",\"msg\":";
    AppendJsonString(&line, message);
    // fields_json is an object "{...}": splice its members in.
    if (fields_json.size() > 2 && fields_json.front() == '{' && fields_json.back() == '}') {
      line += ",";
      line.append(fields_json.substr(1, fields_json.size() - 2));
    }
    line += "}";
  } else {
    line = FormatIso8601(SystemClock::Default()->NowMillis()) + " " + LevelName(level) + " " +
           std::string(message);
    if (!fields_json.empty()) {
      line += " ";
      line.append(fields_json);
    }
  }
  MutexLock lock(g_mu);
  if (g_initialized) {
    auto* logger = spdlog::default_logger_raw();
    logger->info("{}", line);
    logger->flush();
  } else {
    fprintf(stderr, "%s\n", line.c_str());
  }
}

}  // namespace kb
