// The MCP core (api/mcp.h) on a real KnowledgeBase in a temp dir: JSON-RPC framing, version
// negotiation, every tool's result against its declared output schema, permissions (scopes,
// project-limited keys, read-only mode), ingest_file's containment, resources; then POST /mcp on
// a real ApiServer (401, 403 origin, 400, 202, 405, read-only mode). tests/e2e/mcp_e2e_test.cc
// drives the real binary with the official TypeScript SDK.
#include "api/mcp.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>

#include "api/json_encoding.h"
#include "api/server.h"
#include "test_util.h"

namespace kb {
namespace {

using api::McpCaller;
using api::McpServer;
using nlohmann::json;

// Records what the core reports, to check the audit trail of writing tools.
class RecordingSink : public AuditSink {
 public:
  void Record(AuditEvent e) override {
    std::lock_guard<std::mutex> lock(mu_);
    events.push_back(std::move(e));
  }
  std::mutex mu_;
  std::vector<AuditEvent> events;
};

class McpCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    kb_ = std::move(kb).value();
    std::filesystem::create_directories(dir_.Sub("imports/sub"));
    testing::WriteTestFile(dir_.Sub("imports/sub/notes.md"), "# Notes\n\nGiraffes eat leaves.\n");
    testing::WriteTestFile(dir_.Sub("outside.txt"), "secret outside the roots");
    api::McpOptions options;
    options.import_roots = {dir_.Sub("imports")};
    options.audit = &sink_;
    mcp_ = std::make_unique<McpServer>(kb_.get(), options);
    admin_.actor = Actor{"cli", "cli"};
  }

  // Sends a request; returns the whole response.
  json Request(const std::string& method, json params, const McpCaller& caller) {
    json msg = {{"jsonrpc", "2.0"}, {"id", ++next_id_}, {"method", method}};
    if (!params.is_null()) msg["params"] = std::move(params);
    auto r = mcp_->HandleMessage(msg, caller);
    EXPECT_TRUE(r.has_value());
    return r.value_or(json());
  }
  // tools/call; returns the CallToolResult.
  json Call(const std::string& tool, json args, const McpCaller& caller) {
    json r = Request("tools/call", {{"name", tool}, {"arguments", std::move(args)}}, caller);
    EXPECT_TRUE(r.contains("result")) << r.dump();
    return r.value("result", json::object());
  }
  json Call(const std::string& tool, json args) { return Call(tool, std::move(args), admin_); }
  static std::string ErrorText(const json& result) {
    EXPECT_TRUE(result.value("isError", false)) << result.dump();
    return result["content"][0].value("text", "");
  }
  const api::McpToolInfo& Tool(const std::string& name) {
    for (const auto& t : mcp_->tools()) {
      if (t.name == name) return t;
    }
    ADD_FAILURE() << "no tool " << name;
    return mcp_->tools().front();
  }
  // A successful call whose structuredContent matches the tool's outputSchema and whose text is
  // the same JSON.
  json Ok(const std::string& tool, json args, const McpCaller* caller = nullptr) {
    json r = Call(tool, std::move(args), caller ? *caller : admin_);
    EXPECT_FALSE(r.value("isError", true)) << tool << ": " << r.dump();
    const json structured = r.value("structuredContent", json());
    Status valid = api::ValidateJsonSchema(Tool(tool).output_schema, structured);
    EXPECT_TRUE(valid.ok()) << tool << ": " << valid.ToString();
    EXPECT_EQ(json::parse(r["content"][0].value("text", "null"), nullptr, false), structured);
    return structured;
  }
  McpCaller KeyCaller(KeyScope scope, std::vector<std::string> projects = {}) {
    auto k = kb_->keys().CreateKey("k" + std::to_string(++next_id_), scope, projects, std::nullopt,
                                   Actor{});
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    McpCaller c;
    c.key = k->record;
    c.actor = Actor{k->record.id, k->record.name};
    return c;
  }
  std::string MakeProject(const std::string& name, json extra = json::object()) {
    extra["name"] = name;
    return Ok("create_project", extra)["project"]["id"].get<std::string>();
  }
  int64_t DocumentCount(const std::string& project) {
    auto page = kb_->ListDocuments(project, 10, 0);
    EXPECT_TRUE(page.ok());
    return page.ok() ? page->total : -1;
  }

  testing::TempDir dir_;
  std::unique_ptr<KnowledgeBase> kb_;
  RecordingSink sink_;
  std::unique_ptr<McpServer> mcp_;
  McpCaller admin_;
  int next_id_ = 0;
};

TEST_F(McpCoreTest, InitializeAnswersTheClientsVersionOrOurLatest) {
  json r = Request("initialize",
                   {{"protocolVersion", "2025-06-18"},
                    {"capabilities", json::object()},
                    {"clientInfo", {{"name", "t"}, {"version", "1"}}}},
                   admin_);
  EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_TRUE(r["result"]["capabilities"].contains("resources"));
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "knowledgebeast");
  r = Request("initialize", {{"protocolVersion", "1999-01-01"}}, admin_);
  EXPECT_EQ(r["result"]["protocolVersion"], api::kMcpProtocolVersions[0]);
  r = Request("initialize", json::object(), admin_);
  EXPECT_EQ(r["error"]["code"], api::kJsonRpcInvalidParams);
  EXPECT_EQ(Request("ping", json(), admin_)["result"], json::object());
}

TEST_F(McpCoreTest, NotificationsAndResponsesGetNoAnswer) {
  EXPECT_FALSE(
      mcp_->HandleText(R"({"jsonrpc":"2.0","method":"notifications/initialized"})", admin_));
  EXPECT_FALSE(mcp_->HandleText(R"({"jsonrpc":"2.0","method":"no/such/notification"})", admin_));
  // Even a notification that would fail as a request.
  EXPECT_FALSE(mcp_->HandleText(R"({"jsonrpc":"2.0","method":"tools/call","params":5})", admin_));
  EXPECT_FALSE(mcp_->HandleText(R"({"jsonrpc":"2.0","id":4,"result":{}})", admin_));
}

TEST_F(McpCoreTest, MalformedMessagesGetJsonRpcErrors) {
  auto code = [&](const std::string& text) {
    auto r = mcp_->HandleText(text, admin_);
    EXPECT_TRUE(r.has_value()) << text;
    return r ? r->value("error", json::object()).value("code", 0) : 0;
  };
  EXPECT_EQ(code("{not json"), api::kJsonRpcParseError);
  EXPECT_EQ(code(std::string(100, '[') + std::string(100, ']')), api::kJsonRpcParseError);
  EXPECT_EQ(code(R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])"), api::kJsonRpcInvalidRequest);
  EXPECT_EQ(code(R"("hello")"), api::kJsonRpcInvalidRequest);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":true,"method":"ping"})"), api::kJsonRpcInvalidRequest);
  EXPECT_EQ(code(R"({"jsonrpc":"1.0","id":1,"method":"ping"})"), api::kJsonRpcInvalidRequest);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":1,"method":7})"), api::kJsonRpcInvalidRequest);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":1,"method":"nope"})"), api::kJsonRpcMethodNotFound);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1]})"),
            api::kJsonRpcInvalidParams);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}})"),
            api::kJsonRpcInvalidParams);
  EXPECT_EQ(code(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})"),
            api::kJsonRpcInvalidParams);
  // The id comes back as sent, string or number.
  auto r = mcp_->HandleText(R"({"jsonrpc":"2.0","id":"abc","method":"ping"})", admin_);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["id"], "abc");
}

TEST_F(McpCoreTest, ToolsListDeclaresEveryToolWithSchemas) {
  json r = Request("tools/list", json(), admin_)["result"];
  std::set<std::string> names;
  for (const json& t : r["tools"]) {
    names.insert(t["name"].get<std::string>());
    EXPECT_EQ(t["inputSchema"]["type"], "object") << t.dump();
    EXPECT_EQ(t["outputSchema"]["type"], "object") << t.dump();
    EXPECT_FALSE(t.value("description", "").empty());
  }
  EXPECT_EQ(names, (std::set<std::string>{"search", "ingest_text", "ingest_file", "list_projects",
                                          "create_project", "list_documents", "get_document",
                                          "delete_document", "stats", "backup_status"}));
}

TEST_F(McpCoreTest, EveryToolWorksAndMatchesItsOutputSchema) {
  const std::string p = MakeProject("zoo");
  json doc = Ok("ingest_text", {{"project", "zoo"},
                                {"content", "Zebras have black and white stripes."},
                                {"title", "Zebras"},
                                {"source", "zebras.txt"},
                                {"metadata", {{"kind", "animal"}}}});
  EXPECT_EQ(doc["outcome"], "created");
  const std::string id = doc["document"]["id"];
  json file = Ok("ingest_file", {{"project", p}, {"path", dir_.Sub("imports/sub/notes.md")}});
  EXPECT_EQ(file["document"]["source"],
            std::filesystem::canonical(dir_.Sub("imports/sub/notes.md")).string());

  json found = Ok("search", {{"project", "zoo"}, {"query", "zebra stripes"}, {"top_k", 5}});
  ASSERT_FALSE(found["results"].empty());
  EXPECT_EQ(found["results"][0]["document_id"], id);
  EXPECT_EQ(found["results"][0]["source"], "zebras.txt");
  EXPECT_NE(found["results"][0]["text"].get<std::string>().find("stripes"), std::string::npos);
  json filtered = Ok("search", {{"project", "zoo"},
                                {"query", "leaves"},
                                {"mode", "keyword"},
                                {"filters", {{"kind", "animal"}}}});
  EXPECT_TRUE(filtered["results"].empty()) << filtered.dump();  // the giraffe has no "kind"

  json projects = Ok("list_projects", json::object());
  EXPECT_EQ(projects["count"], 1);
  json docs = Ok("list_documents", {{"project", "zoo"}, {"limit", 1}});
  EXPECT_EQ(docs["total"], 2);
  EXPECT_EQ(docs["documents"].size(), 1u);
  json got = Ok("get_document", {{"project", "zoo"}, {"document_id", id}});
  EXPECT_EQ(got["document"]["title"], "Zebras");
  EXPECT_EQ(got["uri"], "kb://" + p + "/documents/" + id);
  json stats = Ok("stats", json::object());
  EXPECT_EQ(stats["documents"], 2);
  json deleted = Ok("delete_document", {{"project", "zoo"}, {"document_id", id}});
  EXPECT_EQ(deleted["deleted"], true);
  EXPECT_EQ(DocumentCount(p), 1);
  EXPECT_NE(
      ErrorText(Call("get_document", {{"project", "zoo"}, {"document_id", id}})).find("not_found"),
      std::string::npos);
  // No backup service in this process: an error result that says where it works.
  EXPECT_NE(ErrorText(Call("backup_status", json::object())).find("/mcp"), std::string::npos);
}

TEST_F(McpCoreTest, BadInputIsAToolErrorNamingTheField) {
  MakeProject("p");
  EXPECT_NE(ErrorText(Call("search", {{"project", "p"}, {"query", "x"}, {"top_k", "ten"}}))
                .find("field 'top_k' must be an integer"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("search", {{"project", "p"}, {"query", "x"}, {"top_k", 1000}}))
                .find("field 'top_k' must be <= 100"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("search", {{"project", "p"}})).find("field 'query' is required"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("search", {{"project", "p"}, {"query", "x"}, {"mode", "fuzzy"}}))
                .find("field 'mode' must be one of"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("search", {{"project", "p"}, {"query", "x"}, {"bogus", 1}}))
                .find("field 'bogus'"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("ingest_text", {{"project", "p"}, {"content", ""}}))
                .find("field 'content' must not be empty"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("ingest_text", {{"project", "p"}, {"content", "x"}, {"metadata", 3}}))
                .find("field 'metadata' must be an object"),
            std::string::npos);
  EXPECT_NE(ErrorText(Call("search", {{"project", "nope"}, {"query", "x"}})).find("not_found"),
            std::string::npos);
  // Arguments that are not an object at all.
  json r = Request("tools/call", {{"name", "search"}, {"arguments", json::array()}}, admin_);
  EXPECT_TRUE(r["result"]["isError"].get<bool>());
  EXPECT_EQ(DocumentCount("p"), 0);
}

TEST_F(McpCoreTest, ReadKeyCannotCallAWritingTool) {
  const std::string p = MakeProject("p");
  McpCaller reader = KeyCaller(KeyScope::kRead);
  const size_t before = sink_.events.size();
  const std::string text =
      ErrorText(Call("ingest_text", {{"project", "p"}, {"content", "hello"}}, reader));
  EXPECT_NE(text.find("permission_denied"), std::string::npos) << text;
  EXPECT_NE(text.find("'write'"), std::string::npos) << text;
  EXPECT_EQ(DocumentCount(p), 0);
  ErrorText(Call("create_project", {{"name", "q"}}, reader));
  ErrorText(Call("backup_status", json::object(), KeyCaller(KeyScope::kWrite)));
  // The same key reads.
  Ok("search", {{"project", "p"}, {"query", "hello"}}, &reader);
  // A write key writes.
  McpCaller writer = KeyCaller(KeyScope::kWrite);
  Ok("ingest_text", {{"project", "p"}, {"content", "hello"}}, &writer);
  EXPECT_EQ(DocumentCount(p), 1);
  // The refusal and the write are in the audit trail, with the key as actor.
  ASSERT_GE(sink_.events.size(), before + 2);
  const AuditEvent& refused = sink_.events[before];
  EXPECT_EQ(refused.outcome, "refused");
  EXPECT_EQ(refused.actor_id, reader.actor.id);
  EXPECT_EQ(refused.action, "document.create");
  const AuditEvent& ok = sink_.events.back();
  EXPECT_EQ(ok.outcome, "ok");
  EXPECT_EQ(ok.actor_id, writer.actor.id);
  EXPECT_EQ(ok.project, p);
  ASSERT_EQ(ok.document_ids.size(), 1u);
}

TEST_F(McpCoreTest, ProjectLimitedKeySeesOnlyItsProjects) {
  const std::string mine = MakeProject("mine");
  const std::string other = MakeProject("other");
  Ok("ingest_text", {{"project", "mine"}, {"content", "alpha beta"}});
  const std::string secret_id =
      Ok("ingest_text", {{"project", "other"}, {"content", "gamma delta"}})["document"]["id"];
  McpCaller limited = KeyCaller(KeyScope::kWrite, {mine});
  EXPECT_EQ(Ok("list_projects", json::object(), &limited)["count"], 1);
  EXPECT_EQ(Ok("stats", json::object(), &limited)["documents"], 1);
  Ok("search", {{"project", "mine"}, {"query", "alpha"}}, &limited);
  EXPECT_NE(ErrorText(Call("search", {{"project", "other"}, {"query", "gamma"}}, limited))
                .find("not allowed on project 'other'"),
            std::string::npos);
  ErrorText(Call("search", {{"project", "no-such"}, {"query", "gamma"}}, limited));
  ErrorText(Call("delete_document", {{"project", "other"}, {"document_id", secret_id}}, limited));
  ErrorText(Call("create_project", {{"name", "new"}}, limited));  // unrestricted keys only
  EXPECT_EQ(DocumentCount(other), 1);
  json listed = Request("resources/list", json(), limited)["result"]["resources"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["uri"].get<std::string>().rfind("kb://" + mine + "/", 0), 0u);
  json read =
      Request("resources/read", {{"uri", "kb://" + other + "/documents/" + secret_id}}, limited);
  EXPECT_EQ(read["error"]["code"], api::kMcpResourceNotFound);
}

TEST_F(McpCoreTest, CheckWriteRefusesWritingToolsOnly) {
  const std::string p = MakeProject("p");
  McpCaller caller = KeyCaller(KeyScope::kAdmin);
  caller.check_write = [] { return Status::Unavailable("the server is read-only: test"); };
  EXPECT_NE(ErrorText(Call("ingest_text", {{"project", "p"}, {"content", "x"}}, caller))
                .find("read-only"),
            std::string::npos);
  ErrorText(Call("create_project", {{"name", "q"}}, caller));
  Ok("search", {{"project", "p"}, {"query", "x"}}, &caller);
  EXPECT_EQ(DocumentCount(p), 0);
}

TEST_F(McpCoreTest, IngestFileReadsOnlyBelowTheImportRoots) {
  const std::string p = MakeProject("p");
  auto refused = [&](const std::string& path) {
    return ErrorText(Call("ingest_file", {{"project", "p"}, {"path", path}}));
  };
  EXPECT_NE(refused(dir_.Sub("outside.txt")).find("outside the import roots"), std::string::npos);
  EXPECT_NE(refused(dir_.Sub("imports/../outside.txt")).find("outside the import roots"),
            std::string::npos);
  // A symlink inside a root that points out of it is judged by where it points.
  std::filesystem::create_symlink(dir_.Sub("outside.txt"), dir_.Sub("imports/link.txt"));
  EXPECT_NE(refused(dir_.Sub("imports/link.txt")).find("outside the import roots"),
            std::string::npos);
  // A sibling whose name starts like the root is not inside it.
  testing::WriteTestFile(dir_.Sub("imports-evil/x.txt"), "x");
  EXPECT_NE(refused(dir_.Sub("imports-evil/x.txt")).find("outside the import roots"),
            std::string::npos);
  EXPECT_NE(refused("imports/sub/notes.md").find("field 'path' must be an absolute path"),
            std::string::npos);
  EXPECT_NE(refused(dir_.Sub("imports/sub")).find("not a regular file"), std::string::npos);
  EXPECT_NE(refused(dir_.Sub("imports/missing.txt")).find("field 'path'"), std::string::npos);
  EXPECT_EQ(DocumentCount(p), 0);

  // No roots: everything refused, the root's own files too.
  McpServer closed(kb_.get(), api::McpOptions{});
  json r =
      closed
          .HandleMessage(
              {{"jsonrpc", "2.0"},
               {"id", 1},
               {"method", "tools/call"},
               {"params",
                {{"name", "ingest_file"},
                 {"arguments", {{"project", "p"}, {"path", dir_.Sub("imports/sub/notes.md")}}}}}},
              admin_)
          .value();
  EXPECT_TRUE(r["result"]["isError"].get<bool>());
  EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("no import roots"),
            std::string::npos);
  EXPECT_EQ(DocumentCount(p), 0);
}

TEST_F(McpCoreTest, ResourceReadGivesBackTheDocumentText) {
  // Small overlapping chunks: the text is rebuilt from slices, not pasted twice.
  const std::string p = MakeProject("p", {{"chunk_size", 60}, {"chunk_overlap", 20}});
  std::string content;
  for (int i = 0; i < 12; ++i) {
    content += "Sentence number " + std::to_string(i) + " talks about owls and their nests. ";
  }
  content.pop_back();
  json doc = Ok("ingest_text", {{"project", "p"}, {"content", content}});
  ASSERT_GT(doc["document"]["chunk_count"].get<int>(), 3);
  const std::string uri = "kb://" + p + "/documents/" + doc["document"]["id"].get<std::string>();
  json r = Request("resources/read", {{"uri", uri}}, admin_)["result"];
  ASSERT_EQ(r["contents"].size(), 1u);
  EXPECT_EQ(r["contents"][0]["uri"], uri);
  EXPECT_EQ(r["contents"][0]["text"], content);
  // The project's name works as well as its id.
  r = Request("resources/read",
              {{"uri", "kb://p/documents/" + doc["document"]["id"].get<std::string>()}}, admin_);
  EXPECT_EQ(r["result"]["contents"][0]["text"], content);
  for (const std::string bad : {"kb://p/documents/nope", "http://x/y", "kb://p/other/1",
                                "kb:///documents/x", "kb://p/documents/"}) {
    EXPECT_EQ(Request("resources/read", {{"uri", bad}}, admin_)["error"]["code"],
              api::kMcpResourceNotFound)
        << bad;
  }
  EXPECT_EQ(Request("resources/read", json::object(), admin_)["error"]["code"],
            api::kJsonRpcInvalidParams);
  json templates = Request("resources/templates/list", json(), admin_)["result"];
  EXPECT_EQ(templates["resourceTemplates"][0]["uriTemplate"], "kb://{project}/documents/{id}");
}

TEST_F(McpCoreTest, ResourcesListPagesThroughEveryDocumentOnce) {
  MakeProject("a");
  MakeProject("b");
  const int n = static_cast<int>(api::kMcpResourcePageSize) + 7;
  for (int i = 0; i < n; ++i) {
    IngestRequest req;
    req.content = "document " + std::to_string(i);
    req.source = "s" + std::to_string(i);
    ASSERT_TRUE(kb_->Ingest(i % 3 == 0 ? "a" : "b", req, Actor{}).ok());
  }
  std::set<std::string> seen;
  json params = json::object();
  int pages = 0;
  while (true) {
    json r = Request("resources/list", params, admin_)["result"];
    ++pages;
    for (const json& res : r["resources"]) EXPECT_TRUE(seen.insert(res["uri"]).second);
    if (!r.contains("nextCursor")) break;
    params = {{"cursor", r["nextCursor"]}};
    ASSERT_LT(pages, 10);
  }
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(seen.size(), static_cast<size_t>(n));
  EXPECT_EQ(Request("resources/list", {{"cursor", "x"}}, admin_)["error"]["code"],
            api::kJsonRpcInvalidParams);
}

// Whatever arrives, the answer is a well-formed JSON-RPC message (or nothing), and never the
// catch-all internal error: every field of every message and every tool argument is given
// values of every JSON type, extremes and ill-formed text.
TEST_F(McpCoreTest, ArbitraryMessagesGetWellFormedAnswers) {
  MakeProject("p");
  Ok("ingest_text", {{"project", "p"}, {"content", "fuzz target text"}});
  const std::vector<json> values = {nullptr,
                                    true,
                                    false,
                                    0,
                                    -1,
                                    1,
                                    3.0,
                                    2.5,
                                    1e30,
                                    -1e300,
                                    std::numeric_limits<uint64_t>::max(),
                                    std::numeric_limits<int64_t>::min(),
                                    "",
                                    "p",
                                    "kb://p/documents/x",
                                    std::string(5000, 'a'),
                                    "\xff\xfe bad utf-8",
                                    json::array(),
                                    json::array({1, "x", nullptr}),
                                    json::object(),
                                    json{{"kind", {{"$in", json::array()}}}},
                                    json{{"a", {{"b", 1}}}}};
  std::vector<json> messages;
  for (const json& v : values) {
    messages.push_back({{"jsonrpc", "2.0"}, {"id", v}, {"method", "ping"}});
    messages.push_back({{"jsonrpc", v}, {"id", 1}, {"method", "ping"}});
    messages.push_back({{"jsonrpc", "2.0"}, {"id", 1}, {"method", v}});
    for (const char* method :
         {"initialize", "tools/call", "resources/list", "resources/read", "tools/list"}) {
      messages.push_back({{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", v}});
      for (const char* field : {"protocolVersion", "name", "arguments", "cursor", "uri"}) {
        messages.push_back(
            {{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", {{field, v}}}});
      }
    }
    for (const api::McpToolInfo& tool : mcp_->tools()) {
      messages.push_back({{"jsonrpc", "2.0"},
                          {"id", 1},
                          {"method", "tools/call"},
                          {"params", {{"name", tool.name}, {"arguments", v}}}});
      for (const auto& [field, unused] : tool.input_schema["properties"].items()) {
        // Valid-looking defaults for the other required fields, `v` for this one.
        json args = {{"project", "p"},         {"query", "text"}, {"content", "c"},
                     {"path", "/nonexistent"}, {"name", "n"},     {"document_id", "d"}};
        args[field] = v;
        messages.push_back({{"jsonrpc", "2.0"},
                            {"id", 1},
                            {"method", "tools/call"},
                            {"params", {{"name", tool.name}, {"arguments", args}}}});
      }
    }
  }
  ASSERT_GT(messages.size(), 1000u);
  for (const json& m : messages) {
    std::optional<json> r = mcp_->HandleMessage(m, admin_);
    // Through the text path as well (what the transports use).
    std::optional<json> t = mcp_->HandleText(api::DumpJson(m), admin_);
    ASSERT_EQ(r.has_value(), t.has_value()) << m.dump();
    if (!r) continue;
    ASSERT_TRUE(r->is_object()) << m.dump();
    EXPECT_EQ((*r)["jsonrpc"], "2.0");
    ASSERT_NE(r->contains("result"), r->contains("error")) << r->dump();
    if (r->contains("error")) {
      EXPECT_NE((*r)["error"]["code"], api::kJsonRpcInternalError)
          << m.dump() << " -> " << r->dump();
      EXPECT_TRUE((*r)["error"]["message"].is_string());
    }
  }
}

TEST(McpSchemaTest, ValidatesTheSubsetTheToolsUse) {
  const json schema = {{"type", "object"},
                       {"properties",
                        {{"n", {{"type", "integer"}, {"minimum", 1}, {"maximum", 5}}},
                         {"s", {{"type", "string"}, {"minLength", 1}, {"maxLength", 3}}},
                         {"e", {{"enum", {"a", "b"}}}},
                         {"l", {{"type", "array"}, {"items", {{"type", "string"}}}}}}},
                       {"required", {"n"}},
                       {"additionalProperties", false}};
  EXPECT_TRUE(api::ValidateJsonSchema(schema, {{"n", 3}}).ok());
  EXPECT_TRUE(api::ValidateJsonSchema(schema, {{"n", 3.0}}).ok());  // 3.0 is an integer
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 3.5}}).message(),
            "field 'n' must be an integer, not a number");
  EXPECT_EQ(api::ValidateJsonSchema(schema, json::object()).message(), "field 'n' is required");
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 0}}).message(), "field 'n' must be >= 1");
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 1}, {"s", "abcd"}}).message(),
            "field 's' must be at most 3 characters");
  // Characters, not bytes: three two-byte characters fit.
  EXPECT_TRUE(api::ValidateJsonSchema(schema, {{"n", 1}, {"s", "\xc3\xa9\xc3\xa9\xc3\xa9"}}).ok());
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 1}, {"e", "c"}}).message(),
            "field 'e' must be one of \"a\", \"b\"");
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 1}, {"l", {"x", 2}}}).message(),
            "field 'l[1]' must be a string, not an integer");
  EXPECT_EQ(api::ValidateJsonSchema(schema, {{"n", 1}, {"zz", 1}}).message(),
            "field 'zz' is not a known field");
  EXPECT_EQ(api::ValidateJsonSchema(schema, json::array()).message(),
            "arguments must be an object, not an array");
}

// --- POST /mcp on a real server -----------------------------------------------------------------

constexpr const char* kAdminToken = "mcp-test-admin-token-0123456789";

class McpHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KbOptions o;
    o.data_dir = dir_.Sub("data");
    o.index_save_interval_ms = 0;
    auto kb = KnowledgeBase::Open(o);
    ASSERT_TRUE(kb.ok()) << kb.status().ToString();
    kb_ = std::move(kb).value();
    ASSERT_TRUE(kb_->keys().EnsureAdminKey(kAdminToken).ok());
    auto reader = kb_->keys().CreateKey("reader", KeyScope::kRead, {}, std::nullopt, Actor{});
    ASSERT_TRUE(reader.ok());
    read_key_ = reader->secret;
    ServerOptions so;
    so.port = 0;
    so.threads = 2;
    so.cors_origins = {"https://app.example.com"};
    so.containment_poll_ms = 0;
    auto s = ApiServer::Start(kb_.get(), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value();
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }
  httplib::Result Post(const json& body, const std::string& key, httplib::Headers extra = {}) {
    if (!key.empty()) extra.emplace("Authorization", "Bearer " + key);
    return client_->Post("/mcp", extra, body.dump(), "application/json");
  }
  void MakeProject(const std::string& name) {
    CreateProjectRequest req;
    req.name = name;
    ASSERT_TRUE(kb_->CreateProject(req, Actor{}).ok());
  }
  json CallTool(const std::string& tool, json args, const std::string& key) {
    auto r = Post({{"jsonrpc", "2.0"},
                   {"id", 1},
                   {"method", "tools/call"},
                   {"params", {{"name", tool}, {"arguments", std::move(args)}}}},
                  key);
    EXPECT_TRUE(r);
    if (!r) return json();
    EXPECT_EQ(r->status, 200) << r->body;
    return json::parse(r->body, nullptr, false).value("result", json());
  }

  testing::TempDir dir_;
  std::unique_ptr<KnowledgeBase> kb_;
  std::unique_ptr<ApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
  std::string read_key_;
};

TEST_F(McpHttpTest, NeedsAKeyAndAnswersJson) {
  const json ping = {{"jsonrpc", "2.0"}, {"id", 7}, {"method", "ping"}};
  auto r = Post(ping, "");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "unauthenticated");
  r = Post(ping, "wrong-key");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401);
  r = Post(ping, read_key_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body),
            (json{{"jsonrpc", "2.0"}, {"id", 7}, {"result", json::object()}}));
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
}

TEST_F(McpHttpTest, ReadKeySearchesButCannotWrite) {
  MakeProject("p");
  json r = CallTool("ingest_text", {{"project", "p"}, {"content", "hello"}}, read_key_);
  EXPECT_TRUE(r.value("isError", false)) << r.dump();
  EXPECT_NE(r.dump().find("permission_denied"), std::string::npos);
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 0);
  r = CallTool("search", {{"project", "p"}, {"query", "hello"}}, read_key_);
  EXPECT_FALSE(r.value("isError", true)) << r.dump();
  r = CallTool("ingest_text", {{"project", "p"}, {"content", "hello"}}, kAdminToken);
  EXPECT_FALSE(r.value("isError", true)) << r.dump();
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 1);
}

TEST_F(McpHttpTest, ReadOnlyModeRefusesWritingTools) {
  MakeProject("p");
  auto mode = client_->Post("/api/v1/admin/lockdown",
                            {{"Authorization", std::string("Bearer ") + kAdminToken}},
                            R"({"mode":"read_only","reason":"test"})", "application/json");
  ASSERT_TRUE(mode);
  ASSERT_EQ(mode->status, 200) << mode->body;
  json r = CallTool("ingest_text", {{"project", "p"}, {"content", "hello"}}, kAdminToken);
  EXPECT_TRUE(r.value("isError", false)) << r.dump();
  EXPECT_NE(r.dump().find("read-only"), std::string::npos);
  EXPECT_EQ(kb_->ListDocuments("p", 10, 0)->total, 0);
  r = CallTool("search", {{"project", "p"}, {"query", "hello"}}, kAdminToken);
  EXPECT_FALSE(r.value("isError", true)) << r.dump();
}

TEST_F(McpHttpTest, TransportRules) {
  // A notification is accepted with 202 and no body.
  auto r = Post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, read_key_);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_TRUE(r->body.empty());
  // Unreadable JSON: 400 with a JSON-RPC parse error.
  r = client_->Post("/mcp", {{"Authorization", "Bearer " + read_key_}}, "{oops",
                    "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["error"]["code"], api::kJsonRpcParseError);
  // A protocol version we do not speak.
  const json ping = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}};
  r = Post(ping, read_key_, {{"MCP-Protocol-Version", "1999-01-01"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  r = Post(ping, read_key_, {{"MCP-Protocol-Version", "2025-06-18"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // DNS rebinding: a foreign page's Origin is refused; a configured one is served.
  r = Post(ping, read_key_, {{"Origin", "http://evil.example"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  r = Post(ping, read_key_, {{"Origin", "https://app.example.com"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  // No server-to-client stream.
  auto g = client_->Get("/mcp", {{"Authorization", "Bearer " + read_key_}});
  ASSERT_TRUE(g);
  EXPECT_EQ(g->status, 405);
}

}  // namespace
}  // namespace kb
