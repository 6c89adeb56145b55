// How the CLI talks back: the --json shapes of the service types, human-readable sizes, and the
// one place where a failure becomes "error: ..." on stderr and an exit code.
//
// Exit codes are a contract with scripts: 0 success, 1 the operation failed (not found, refused,
// server unreachable, some files failed to ingest), 2 the command line or configuration was
// wrong. --json output uses the API's own encoders (api/json_encoding.h), so a record printed by
// the CLI has exactly the shape docs/API.md documents for it.
//
// Thread-safety: pure functions, except the printers which write to stdout/stderr.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "common/status.h"
#include "service/knowledge_base.h"

namespace kb::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Prints "error: <message>" on stderr and returns kExitFailure (kExitUsage if `usage`).
int ReportError(const Status& status, bool usage = false);
int ReportError(const std::string& message, bool usage = false);

// Pretty-printed JSON on stdout, newline-terminated.
void PrintJson(const nlohmann::json& j);

// "1.5 MiB", "512 B".
std::string HumanBytes(double bytes);

}  // namespace kb::cli
