// Structured logging: one JSON object per line on stderr, so logs can be shipped and queried.
// Built on spdlog; call InitLogging once at program start. Messages never contain secrets.
#pragma once

#include <string>
#include <string_view>

namespace kb {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// `json` selects JSON lines (the server default) or plain text (CLI tools).
void InitLogging(LogLevel level, bool json);
bool ParseLogLevel(std::string_view name, LogLevel* out);

// Logs `message` with extra key/values given as a JSON object text (may be empty), e.g.
// Log(LogLevel::kInfo, "request", R"({"request_id":"...","status":200})").
void Log(LogLevel level, std::string_view message, std::string_view fields_json = {});

inline void LogInfo(std::string_view m, std::string_view f = {}) { Log(LogLevel::kInfo, m, f); }
inline void LogWarn(std::string_view m, std::string_view f = {}) { Log(LogLevel::kWarn, m, f); }
inline void LogError(std::string_view m, std::string_view f = {}) { Log(LogLevel::kError, m, f); }

}  // namespace kb
