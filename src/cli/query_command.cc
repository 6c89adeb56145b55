// `query` and `stats`: the read-only commands. Both work offline on a data directory (safe while
// a server runs: SQLite WAL readers never block or corrupt the writer) or through --url.
#include <cstdio>
#include <iostream>

#include "api/json_encoding.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace kb::cli {
namespace {

// Characters of chunk text shown per hit in the readable output.
constexpr size_t kSnippetBytes = 240;

struct QueryOptions {
  CommonOptions common;
  std::string project;
  std::vector<std::string> words;
  int top_k = kDefaultTopK;
  int offset = 0;
  std::string mode = "hybrid";
  std::string fusion = "weighted";
  double alpha = kDefaultAlpha;
  std::string filters_json;
};

// Whitespace collapsed to single spaces, cut at a UTF-8 boundary near `max_bytes`.
std::string Snippet(const std::string& text, size_t max_bytes) {
  std::string out;
  bool space = false;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
    if (out.size() >= max_bytes) break;
  }
  if (out.size() >= max_bytes) {
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out.resize(cut);
    out += "...";
  }
  return out;
}

void PrintHits(const QueryResponse& resp) {
  if (resp.hits.empty()) {
    std::cout << "No results." << std::endl;
    return;
  }
  for (const QueryHit& h : resp.hits) {
    char score[32];
    std::snprintf(score, sizeof score, "%.4f", h.score);
    std::cout << h.rank << ". " << score << "  " << (h.title.empty() ? h.source : h.title);
    if (!h.heading_path.empty()) std::cout << "  [" << h.heading_path << "]";
    std::cout << "\n   source: " << h.source << "  document: " << h.document_id << "\n   "
              << Snippet(h.text, kSnippetBytes) << "\n";
  }
  std::cout << resp.hits.size() << " result(s) in " << resp.took_ms << " ms" << std::endl;
}

int RunQuery(const QueryOptions& opts) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadCommandConfig(opts.common, false, &exit_code);
  if (!config) return exit_code;

  QueryRequest req;
  for (const std::string& w : opts.words) req.text += (req.text.empty() ? "" : " ") + w;
  std::optional<SearchMode> mode = ParseSearchMode(opts.mode);
  if (!mode) return ReportError("--mode must be hybrid, vector or keyword", /*usage=*/true);
  std::optional<FusionMethod> fusion = ParseFusionMethod(opts.fusion);
  if (!fusion) return ReportError("--fusion must be weighted or rrf", /*usage=*/true);
  req.mode = *mode;
  req.fusion = *fusion;
  req.alpha = opts.alpha;
  req.top_k = opts.top_k;
  req.offset = opts.offset;
  req.filters_json = opts.filters_json;

  Result<std::unique_ptr<Backend>> backend = OpenBackend(*config);
  if (!backend.ok()) return ReportError(backend.status());
  Result<QueryResponse> resp = (*backend)->Query(opts.project, req);
  if (!resp.ok()) return ReportError(resp.status());
  if (opts.common.json) {
    PrintJson(api::EncodeQueryResponse(req, *resp));
  } else {
    PrintHits(*resp);
  }
  return kExitOk;
}

struct StatsOptions {
  CommonOptions common;
};

int RunStats(const StatsOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<KbStats> stats = backend->Stats();
  if (!stats.ok()) return ReportError(stats.status());
  if (opts.common.json) {
    PrintJson(api::EncodeStats(*stats));
    return kExitOk;
  }
  std::cout << "projects:  " << stats->projects << "\n"
            << "documents: " << stats->documents << "\n"
            << "chunks:    " << stats->chunks << "\n"
            << "content:   " << HumanBytes(static_cast<double>(stats->content_bytes)) << "\n"
            << "on disk:   " << HumanBytes(static_cast<double>(stats->disk_bytes)) << "\n";
  std::cout << "uptime:    " << stats->uptime_seconds << " s (of this process in direct mode)\n";
  for (const ProjectStats& p : stats->per_project) {
    std::cout << "  " << p.project.name << ": " << p.counts.documents << " documents, "
              << p.counts.chunks << " chunks, " << p.index_vectors << " vectors indexed, "
              << HumanBytes(static_cast<double>(p.disk_bytes)) << " on disk\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

}  // namespace

void RegisterQueryCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<QueryOptions>();
  CLI::App* cmd = root->add_subcommand(
      "query", "Search a project (hybrid by default) and print ranked results");
  cmd->footer(std::string("Reading a data directory directly is safe while a server runs "
                          "(SQLite WAL), but only the server's index reflects its latest "
                          "writes.\n\n") +
              kDirectModeNote);
  cmd->add_option("text", opts->words, "the query text")->required();
  cmd->add_option("-p,--project", opts->project, "project id or name")->required();
  cmd->add_option("-k,--top-k", opts->top_k, "number of results, 1.." + std::to_string(kMaxTopK))
      ->check(CLI::Range(1, kMaxTopK));
  cmd->add_option("--offset", opts->offset, "skip this many results (pagination)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--mode", opts->mode, "hybrid, vector or keyword")
      ->check(CLI::IsMember({"hybrid", "vector", "keyword"}));
  cmd->add_option("--fusion", opts->fusion, "hybrid score fusion: weighted or rrf")
      ->check(CLI::IsMember({"weighted", "rrf"}));
  cmd->add_option("--alpha", opts->alpha, "weight of the vector score in weighted fusion, 0..1")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--filter", opts->filters_json,
                  R"(metadata filter, a JSON object: {"key": value | {"$in": [...]}})");
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunQuery(*opts); });
}

void RegisterStatsCommand(CLI::App* root, CommandRegistry* registry) {
  auto opts = std::make_shared<StatsOptions>();
  CLI::App* cmd = root->add_subcommand(
      "stats", "Counts of projects, documents, chunks and bytes, in total and per project");
  cmd->footer(kDirectModeNote);
  AddClientOptions(cmd, &opts->common);
  registry->Add(cmd, [opts] { return RunStats(*opts); });
}

}  // namespace kb::cli
