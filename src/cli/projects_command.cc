// `projects list | create | show | delete`: project management, directly or through --url.
#include <iostream>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"

namespace kb::cli {
namespace {

struct ProjectsOptions {
  CommonOptions common;
  std::string name;
  std::string description;
  std::string metadata_json = "{}";
  std::string embedder = "builtin-hash";
  int dimension = 0;
};

using Json = nlohmann::json;

void PrintProject(const ProjectRecord& p) {
  std::cout << "id:          " << p.id << "\n"
            << "name:        " << p.name << "\n"
            << "description: " << p.description << "\n"
            << "metadata:    " << p.metadata_json << "\n"
            << "embedder:    " << p.embedder_name << " (" << p.embedding_dimension
            << " dimensions)\n"
            << "chunking:    " << p.chunk_size << " characters, " << p.chunk_overlap << " overlap\n"
            << "created:     " << FormatIso8601(p.created_at_ms) << "\n"
            << "updated:     " << FormatIso8601(p.updated_at_ms) << std::endl;
}

int RunList(const ProjectsOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<std::vector<ProjectRecord>> projects = backend->ListProjects();
  if (!projects.ok()) return ReportError(projects.status());
  if (opts.common.json) {
    Json list = Json::array();
    for (const ProjectRecord& p : *projects) list.push_back(api::EncodeProject(p));
    PrintJson({{"projects", list}, {"count", projects->size()}});
    return kExitOk;
  }
  if (projects->empty()) {
    std::cout << "No projects." << std::endl;
    return kExitOk;
  }
  for (const ProjectRecord& p : *projects) {
    std::cout << p.id << "  " << p.name;
    if (!p.description.empty()) std::cout << "  - " << p.description;
    std::cout << "\n";
  }
  std::cout << std::flush;
  return kExitOk;
}

int RunCreate(const ProjectsOptions& opts) {
  Json metadata = Json::parse(opts.metadata_json, nullptr, false);
  if (metadata.is_discarded() || !metadata.is_object()) {
    return ReportError("--metadata must be a JSON object", /*usage=*/true);
  }
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  CreateProjectRequest req;
  req.name = opts.name;
  req.description = opts.description;
  req.metadata_json = opts.metadata_json;
  req.embedder.kind = opts.embedder;
  if (opts.dimension > 0) req.embedder.dimension = opts.dimension;
  Result<ProjectRecord> project = backend->CreateProject(req);
  if (!project.ok()) return ReportError(project.status());
  if (opts.common.json) {
    PrintJson(api::EncodeProject(*project));
  } else {
    std::cout << "Created project '" << project->name << "' (" << project->id << ")" << std::endl;
  }
  return kExitOk;
}

int RunShow(const ProjectsOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Result<ProjectRecord> project = backend->GetProject(opts.name);
  if (!project.ok()) return ReportError(project.status());
  if (opts.common.json) {
    PrintJson(api::EncodeProject(*project));
  } else {
    PrintProject(*project);
  }
  return kExitOk;
}

int RunDelete(const ProjectsOptions& opts) {
  int exit_code = kExitOk;
  std::unique_ptr<Backend> backend = ConnectForCommand(opts.common, &exit_code);
  if (!backend) return exit_code;
  Status status = backend->DeleteProject(opts.name);
  if (!status.ok()) return ReportError(status);
  if (opts.common.json) {
    PrintJson({{"deleted", opts.name}});
  } else {
    std::cout << "Deleted project '" << opts.name << "'" << std::endl;
  }
  return kExitOk;
}

}  // namespace

void RegisterProjectsCommand(CLI::App* root, CommandRegistry* registry) {
  CLI::App* projects = root->add_subcommand("projects", "List, create, show and delete projects");
  projects->footer(kDirectModeNote);
  projects->require_subcommand(1);

  auto list = std::make_shared<ProjectsOptions>();
  CLI::App* cmd = AddClientSubcommand(projects, "list", "List live projects.", &list->common);
  registry->Add(cmd, [list] { return RunList(*list); });

  auto create = std::make_shared<ProjectsOptions>();
  cmd = AddClientSubcommand(projects, "create", "Create a project.", &create->common);
  cmd->add_option("name", create->name,
                  "1-100 letters, digits, spaces, '_' or '-'; unique among live projects")
      ->required();
  cmd->add_option("-d,--description", create->description, "free-text description");
  cmd->add_option("--metadata", create->metadata_json, "JSON object stored with the project");
  cmd->add_option("--embedder", create->embedder,
                  "builtin-hash (default) or external (bring your own vectors)")
      ->check(CLI::IsMember({"builtin-hash", "external"}));
  cmd->add_option("--dimension", create->dimension, "embedding dimension (external projects)")
      ->check(CLI::PositiveNumber);
  registry->Add(cmd, [create] { return RunCreate(*create); });

  auto show = std::make_shared<ProjectsOptions>();
  cmd = AddClientSubcommand(projects, "show", "Show one project.", &show->common);
  cmd->add_option("name", show->name, "project id or name")->required();
  registry->Add(cmd, [show] { return RunShow(*show); });

  auto del = std::make_shared<ProjectsOptions>();
  cmd = AddClientSubcommand(projects, "delete",
                            "Delete a project (soft delete: it disappears from listings).",
                            &del->common);
  cmd->add_option("name", del->name, "project id or name")->required();
  registry->Add(cmd, [del] { return RunDelete(*del); });
}

}  // namespace kb::cli
