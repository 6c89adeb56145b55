// `ingest`: bulk-load files and directory trees into a project, directly or through a server.
//
// Files are chosen by extension (the parser's own rules, so the CLI never disagrees with the
// server about what is supported); others are skipped and counted, unless --all sends them
// anyway. Each file is one Ingest call, so one bad file fails alone and the summary can list
// it; the exit code is 1 if any file failed, so a script cannot mistake a partial load for a
// complete one.
//
// A document's source is its path relative to the directory argument (or its file name when a
// file is named directly): re-running the same command replaces changed files and reports
// unchanged ones as no-ops instead of duplicating them.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "ingest/parser.h"

namespace kb::cli {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// Redraw the progress line at most this often; a terminal cannot show faster updates anyway.
constexpr int64_t kProgressIntervalMicros = 100'000;
constexpr int kProgressBarWidth = 24;

struct IngestOptions {
  CommonOptions common;
  std::vector<std::string> paths;
  std::string project;
  bool create = false;
  bool all = false;
  bool no_progress = false;
  std::string metadata_json = "{}";
};

struct FileToIngest {
  std::string path;    // as found on disk
  std::string source;  // recorded with the document
  int64_t bytes = 0;
};

struct Plan {
  std::vector<FileToIngest> files;
  std::vector<std::string> skipped;                           // unsupported type
  std::vector<std::pair<std::string, std::string>> failures;  // path, message
  int64_t total_bytes = 0;
};

// True if the parsers accept this file name. The probe bytes carry no hint (binary of no known
// kind), so only a recognised extension makes DetectContentType succeed.
bool SupportedByName(const std::string& filename) {
  static const std::string kNoHint(1, '\0');
  return DetectContentType("", filename, kNoHint).ok();
}

bool IsHidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.size() > 1 && name[0] == '.';
}

void Consider(const fs::path& path, const std::string& source, bool all, Plan* plan) {
  std::error_code ec;
  const int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
  if (ec) {
    plan->failures.emplace_back(path.string(), ec.message());
    return;
  }
  if (!all && !SupportedByName(path.filename().string())) {
    plan->skipped.push_back(path.string());
    return;
  }
  plan->files.push_back({path.string(), source, size});
  plan->total_bytes += size;
}

// Expands the arguments into files; directories recursively (hidden entries skipped), in
// sorted order so runs are reproducible.
Plan MakePlan(const std::vector<std::string>& args, bool all) {
  Plan plan;
  for (const std::string& arg : args) {
    const fs::path root(arg);
    std::error_code ec;
    const fs::file_status st = fs::status(root, ec);
    if (ec || !fs::exists(st)) {
      plan.failures.emplace_back(arg, "no such file or directory");
      continue;
    }
    if (fs::is_regular_file(st)) {
      Consider(root, root.filename().string(), all, &plan);
      continue;
    }
    if (!fs::is_directory(st)) {
      plan.failures.emplace_back(arg, "not a regular file or directory");
      continue;
    }
    std::vector<fs::path> found;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec);
    if (ec) {
      plan.failures.emplace_back(arg, ec.message());
      continue;
    }
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (IsHidden(it->path())) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file()) found.push_back(it->path());
    }
    if (ec) plan.failures.emplace_back(arg, ec.message());
    std::sort(found.begin(), found.end());
    for (const fs::path& p : found) {
      Consider(p, p.lexically_relative(root).generic_string(), all, &plan);
    }
  }
  return plan;
}

class ProgressLine {
 public:
  ProgressLine(bool enabled, size_t files, int64_t bytes)
      : enabled_(enabled), total_files_(files), total_bytes_(bytes), start_(MonotonicMicros()) {}

  void Update(size_t files_done, int64_t bytes_done, size_t failed, bool force) {
    if (!enabled_) return;
    const int64_t now = MonotonicMicros();
    if (!force && now - last_draw_ < kProgressIntervalMicros) return;
    last_draw_ = now;
    const double fraction =
        total_bytes_ > 0
            ? static_cast<double>(bytes_done) / static_cast<double>(total_bytes_)
            : (total_files_ > 0
                   ? static_cast<double>(files_done) / static_cast<double>(total_files_)
                   : 1.0);
    const int filled = static_cast<int>(fraction * kProgressBarWidth);
    const double seconds = static_cast<double>(now - start_) / 1e6;
    const double rate = seconds > 0 ? static_cast<double>(bytes_done) / seconds : 0;
    std::string bar(static_cast<size_t>(filled), '#');
    bar.append(static_cast<size_t>(kProgressBarWidth - filled), '-');
    std::fprintf(stderr, "\r\033[K[%s] %zu/%zu files  %s/%s  %s/s", bar.c_str(), files_done,
                 total_files_, HumanBytes(static_cast<double>(bytes_done)).c_str(),
                 HumanBytes(static_cast<double>(total_bytes_)).c_str(), HumanBytes(rate).c_str());
    if (failed > 0) std::fprintf(stderr, "  %zu failed", failed);
    std::fflush(stderr);
  }

  void Finish() {
    if (!enabled_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
  }

 private:
  bool enabled_;
  size_t total_files_;
  int64_t total_bytes_;
  int64_t start_;
  int64_t last_draw_ = 0;
};

std::string FormatSeconds(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", seconds);
  return buf;
}

// The project to ingest into: found, or created when --create allows it.
Result<ProjectRecord> ResolveProject(Backend* backend, const IngestOptions& opts) {
  Result<ProjectRecord> project = backend->GetProject(opts.project);
  if (project.ok() || project.status().code() != Code::kNotFound) return project;
  if (!opts.create) {
    return Status::NotFound(project.status().message() + " (use --create to create it)");
  }
  CreateProjectRequest req;
  req.name = opts.project;
  return backend->CreateProject(req);
}

int RunIngest(const IngestOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadCommandConfig(opts.common, false, &exit_code);
  if (!config) return exit_code;
  Json metadata = Json::parse(opts.metadata_json, nullptr, false);
  if (metadata.is_discarded() || !metadata.is_object()) {
    return ReportError("--metadata must be a JSON object", /*usage=*/true);
  }

  Plan plan = MakePlan(opts.paths, opts.all);
  Result<std::unique_ptr<Backend>> backend = OpenBackend(*config);
  if (!backend.ok()) return ReportError(backend.status());
  Result<ProjectRecord> project = ResolveProject(backend->get(), opts);
  if (!project.ok()) return ReportError(project.status());

  const int64_t start = MonotonicMicros();
  ProgressLine progress(!opts.no_progress && isatty(STDERR_FILENO) != 0, plan.files.size(),
                        plan.total_bytes);
  int64_t created = 0, replaced = 0, unchanged = 0, chunks = 0, bytes_done = 0;
  Json files = Json::array();
  progress.Update(0, 0, plan.failures.size(), /*force=*/true);
  for (size_t i = 0; i < plan.files.size(); ++i) {
    const FileToIngest& file = plan.files[i];
    Result<std::string> content = ReadFile(file.path);
    if (!content.ok()) {
      plan.failures.emplace_back(file.path, content.status().message());
    } else {
      IngestRequest req;
      req.content = std::move(content).value();
      req.filename = file.source;
      req.source = file.source;
      req.metadata_json = opts.metadata_json;
      Result<IngestResult> result = (*backend)->Ingest(project->id, req);
      if (!result.ok()) {
        plan.failures.emplace_back(file.path, result.status().message());
      } else {
        switch (result->outcome) {
          case PutOutcome::kCreated:
            ++created;
            break;
          case PutOutcome::kReplaced:
            ++replaced;
            break;
          case PutOutcome::kUnchanged:
            ++unchanged;
            break;
        }
        if (result->outcome != PutOutcome::kUnchanged) chunks += result->document.chunk_count;
        files.push_back({{"path", file.path},
                         {"source", file.source},
                         {"outcome", std::string(api::OutcomeName(result->outcome))},
                         {"document_id", result->document.id},
                         {"chunks", result->document.chunk_count},
                         {"bytes", file.bytes}});
      }
    }
    bytes_done += file.bytes;
    progress.Update(i + 1, bytes_done, plan.failures.size(), i + 1 == plan.files.size());
  }
  progress.Finish();
  (*backend)->Close();
  const double seconds = static_cast<double>(MonotonicMicros() - start) / 1e6;

  if (opts.common.json) {
    Json failures = Json::array();
    for (const auto& [path, message] : plan.failures) {
      failures.push_back({{"path", path}, {"error", message}});
    }
    PrintJson({{"project", {{"id", project->id}, {"name", project->name}}},
               {"ingested", created + replaced},
               {"created", created},
               {"replaced", replaced},
               {"unchanged", unchanged},
               {"skipped", plan.skipped.size()},
               {"failed", plan.failures.size()},
               {"chunks", chunks},
               {"bytes", bytes_done},
               {"seconds", seconds},
               {"files", files},
               {"skipped_files", plan.skipped},
               {"failures", failures}});
  } else {
    std::cout << "Ingested " << (created + replaced) << " files into '" << project->name << "' ("
              << created << " new, " << replaced << " replaced), " << unchanged << " unchanged, "
              << plan.skipped.size() << " skipped (unsupported type), " << plan.failures.size()
              << " failed; " << chunks << " chunks, " << HumanBytes(static_cast<double>(bytes_done))
              << " in " << FormatSeconds(seconds) << "." << std::endl;
  }
  if (plan.failures.empty()) return kExitOk;
  for (const auto& [path, message] : plan.failures) {
    std::cerr << "failed: " << path << ": " << message << std::endl;
  }
  return ReportError(std::to_string(plan.failures.size()) + " file(s) failed to ingest");
}

}  // namespace

void RegisterIngestCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<IngestOptions>();
  CLI::App* cmd = root->add_subcommand("ingest", "Ingest files and directories into a project");
  cmd->footer(std::string("Directories are walked recursively; hidden entries are skipped. Only "
                          "supported types (.txt .text .md .markdown .html .htm .pdf) are sent "
                          "unless --all. A progress bar is drawn when stderr is a terminal. "
                          "Exits 1 if any file failed, listing each failure on stderr.\n\n") +
              kDirectModeNote);
  cmd->add_option("paths", opts->paths, "files or directories")->required();
  cmd->add_option("-p,--project", opts->project, "project id or name")->required();
  cmd->add_flag("--create", opts->create, "create the project if it does not exist");
  cmd->add_flag("--all", opts->all, "send every file, not only supported types");
  cmd->add_option("--metadata", opts->metadata_json, "JSON object stored with every document");
  cmd->add_flag("--no-progress", opts->no_progress, "no progress bar even on a terminal");
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunIngest(*opts); });
}

}  // namespace kb::cli
