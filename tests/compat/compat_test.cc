// Format compatibility, proven with frozen files: tests/testdata/v2-data (a data directory) and
// tests/testdata/v2-repo (a version-2 backup repository of it) were written ONCE by an earlier
// binary (tests/testdata/make_testdata.sh) and are never regenerated. Today's binary must open
// them and give back exactly what was written: the ids, counts, content checksums and search hits
// below were read from those files when they were frozen. A change to the database, journal,
// vector index, audit log or repository format that breaks reading fails here; the fix is a
// migration or a reader for the old version, never new frozen files.
//
// Everything runs the real binary in a child process on a COPY of the frozen files (opening a
// data directory or verifying a repository writes to it), so the test depends on no engine
// header. SHA256SUMS pins every frozen byte first.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/crypto_util.h"
#include "process.h"
#include "test_util.h"

namespace kb {
namespace {

namespace fs = std::filesystem;
using kb::testing::CliRun;
using kb::testing::TempDir;
using nlohmann::json;

const std::string kTestdata = KB_TESTDATA_DIR;
// The repository's passphrase (tests/testdata/README.md); its key is at scrypt N = 2^14.
constexpr const char* kPassphrase = "knowledgebeast compat v2";

// What the frozen files hold (read from them when they were frozen).
constexpr const char* kHandbookId = "0134305b-250e-4878-9492-5e1118a99736";
constexpr const char* kRecipesId = "2452d7d0-a08e-4d63-a9c1-9f62b9789e3a";
constexpr const char* kFirstSnapshot = "20261207T071211Z-0ffb1fc4";   // tag "first"
constexpr const char* kSecondSnapshot = "20261207T071213Z-b462788a";  // tag "second"
// meta.content_checksum (docs/format/DATABASE.md section 5) of each project's kb.db.
constexpr const char* kHandbookChecksum =
    "646da92e1a6ab733bd743e7a92d684f7f6c83f5199f8b91509e8747703860c8c";  // 4 documents
constexpr const char* kHandbookChecksumAtFirst =
    "25ee097f5f9d1ba9a324984aaea0b43dcd84dbb9c2e15f7fe41f6973f69265b9";  // 3: before kayak.txt
constexpr const char* kRecipesChecksum =
    "0d4b37711bd3ac0af31ec46056c2830f5b472cd979f8d0df43ac5b6e15387988";

struct Doc {
  const char* project;
  const char* id;
  const char* source;
  const char* query;  // keyword query that finds this document first
};
const std::vector<Doc> kDocs = {
    {"handbook", "95992ab3-150e-4245-acc3-3c37861949ae", "backups.md", "weekly drill scratch"},
    {"handbook", "407848ab-1565-4362-98ea-ab552b906172", "glossary.txt", "quokka marsupial"},
    {"handbook", "f4f839d9-f7fe-4c4a-8481-4081e3676420", "oncall.md", "pages fifteen minutes"},
    {"handbook", "a68dee8c-c1b3-472b-96a2-abbe2e257066", "kayak.txt", "kayak paddle"},
    {"recipes", "a234f7ff-45a5-4174-a291-b95647f9f1ad", "bread.md", "sourdough starter"},
    {"recipes", "473b6097-70b4-4846-afbd-9fcf9a11f3bb", "soup.html", "pumpkin garlic"},
};

class CompatTest : public ::testing::Test {
 protected:
  // Runs the binary in the temp dir with the repository passphrase and no KB_* of the caller's.
  CliRun Run(std::vector<std::string> args) {
    return kb::testing::RunProcess(KB_CLI_BINARY, args, {{"KB_BACKUP_PASSWORD", kPassphrase}},
                                   dir_.path());
  }
  // A writable copy of a frozen directory.
  std::string Copy(const std::string& frozen) {
    const std::string to = dir_.Sub(frozen);
    fs::copy(kTestdata + "/" + frozen, to, fs::copy_options::recursive);
    return to;
  }
  std::string RepoUrl() { return "file://" + Copy("v2-repo"); }

  // The documents a keyword query finds first, by id and source; fails the test if none.
  std::pair<std::string, std::string> TopHit(const std::string& data_dir, const Doc& d) {
    CliRun r = Run(
        {"query", "-p", d.project, d.query, "--mode", "keyword", "--json", "--data-dir", data_dir});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    json j = r.Json();
    if (j.is_discarded() || j["results"].empty()) {
      ADD_FAILURE() << "no hit for '" << d.query << "' in " << d.project << ": " << r.out;
      return {};
    }
    return {j["results"][0].value("document_id", ""), j["results"][0].value("source", "")};
  }

  TempDir dir_;
};

// meta.content_checksum and meta.last_lsn of a kb.db, read with SQLite directly.
std::pair<std::string, int64_t> Meta(const std::string& db_path) {
  sqlite3* db = nullptr;
  std::pair<std::string, int64_t> out{"", -1};
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT content_checksum, last_lsn FROM meta", -1, &st, nullptr) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      out = {reinterpret_cast<const char*>(sqlite3_column_text(st, 0)),
             sqlite3_column_int64(st, 1)};
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

std::string KbDb(const std::string& data_dir, const std::string& project_id) {
  return data_dir + "/projects/" + project_id + "/kb.db";
}

// Every frozen file is byte-for-byte what SHA256SUMS says, and SHA256SUMS names every file.
TEST_F(CompatTest, FrozenFilesMatchTheirChecksums) {
  std::ifstream sums(kTestdata + "/SHA256SUMS");
  ASSERT_TRUE(sums) << "missing " << kTestdata << "/SHA256SUMS";
  std::set<std::string> listed;
  std::string line;
  while (std::getline(sums, line)) {
    if (line.empty()) continue;
    ASSERT_GT(line.size(), 66u) << line;
    const std::string want = line.substr(0, 64), name = line.substr(66);
    listed.insert(name);
    const std::string bytes = kb::testing::ReadWholeFile(kTestdata + "/" + name);
    EXPECT_EQ(Sha256Hex(bytes), want)
        << name << " changed: frozen files are never regenerated (tests/testdata/README.md)";
  }
  std::set<std::string> present;
  for (const char* top : {"v2-data", "v2-repo"}) {
    for (const auto& e : fs::recursive_directory_iterator(kTestdata + "/" + top)) {
      if (e.is_regular_file()) present.insert(fs::relative(e.path(), kTestdata).string());
    }
  }
  EXPECT_EQ(present, listed);
  EXPECT_EQ(listed.size(), 19u);
}

TEST_F(CompatTest, FrozenDataDirectoryChecksClean) {
  const std::string data = Copy("v2-data");
  CliRun r = Run({"check", "--json", "--data-dir", data});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  json report = r.Json();
  ASSERT_FALSE(report.is_discarded()) << r.out;
  EXPECT_EQ(report["status"], "ok");
  ASSERT_EQ(report["databases"].size(), 3u);                        // catalog.db and two projects
  std::map<std::string, std::map<std::string, std::string>> notes;  // project -> check -> note
  for (const auto& db : report["databases"]) {
    if (db["kind"] != "project") continue;
    for (const auto& c : db["checks"]) {
      EXPECT_TRUE(c["ok"].get<bool>()) << db["project_name"] << ": " << c.dump();
      if (c["note"].is_string()) notes[db["project_id"]][c["name"]] = c["note"];
    }
  }
  EXPECT_EQ(notes[kHandbookId]["journal"], "LSN 1 to 4");
  EXPECT_EQ(notes[kHandbookId]["content_checksum"], "4 documents");
  EXPECT_EQ(notes[kHandbookId]["vector_index"], "saved at LSN 4, 4 vectors");
  EXPECT_EQ(notes[kRecipesId]["journal"], "LSN 1 to 2");
  EXPECT_EQ(notes[kRecipesId]["vector_index"], "saved at LSN 2, 2 vectors");

  CliRun audit = Run({"audit", "verify", "--data-dir", data});
  EXPECT_EQ(audit.exit_code, 0) << audit.out << audit.err;
  EXPECT_NE(audit.out.find("audit log intact"), std::string::npos) << audit.out;
}

TEST_F(CompatTest, FrozenDataDirectoryServesItsDocumentsAndSearchHits) {
  const std::string data = Copy("v2-data");
  EXPECT_EQ(Meta(KbDb(data, kHandbookId)), std::make_pair(std::string(kHandbookChecksum), 4L));
  EXPECT_EQ(Meta(KbDb(data, kRecipesId)), std::make_pair(std::string(kRecipesChecksum), 2L));

  CliRun projects = Run({"projects", "list", "--json", "--data-dir", data});
  ASSERT_EQ(projects.exit_code, 0) << projects.err;
  std::map<std::string, std::string> ids;  // name -> id
  const json listed = projects.Json();  // a named value: the loop must not outlive a temporary
  for (const auto& p : listed["projects"]) ids[p["name"]] = p["id"];
  EXPECT_EQ(ids, (std::map<std::string, std::string>{{"handbook", kHandbookId},
                                                     {"recipes", kRecipesId}}));

  CliRun stats = Run({"stats", "--json", "--data-dir", data});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  json s = stats.Json();
  EXPECT_EQ(s["documents"], 6);
  EXPECT_EQ(s["chunks"], 6);
  EXPECT_EQ(s["content_bytes"], 812);

  for (const Doc& d : kDocs) {
    EXPECT_EQ(TopHit(data, d), std::make_pair(std::string(d.id), std::string(d.source))) << d.query;
  }
  // The saved vector index (not only the keyword index) answers.
  CliRun v = Run({"query", "-p", "recipes", "pumpkin garlic soup", "--mode", "vector", "--json",
                  "--data-dir", data});
  ASSERT_EQ(v.exit_code, 0) << v.err;
  json hits = v.Json()["results"];
  ASSERT_EQ(hits.size(), 2u) << v.out;
  EXPECT_EQ(hits[0]["document_id"], "473b6097-70b4-4846-afbd-9fcf9a11f3bb");
  EXPECT_EQ(hits[1]["document_id"], "a234f7ff-45a5-4174-a291-b95647f9f1ad");
}

TEST_F(CompatTest, FrozenRepositoryListsBothSnapshotsAndVerifiesEveryByte) {
  const std::string repo = RepoUrl();
  const std::string data = dir_.Sub("unused-data");
  CliRun list = Run({"backup", "list", "--json", "--repo", repo, "--data-dir", data});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json snaps = list.Json()["snapshots"];
  ASSERT_EQ(snaps.size(), 2u) << list.out;
  EXPECT_EQ(snaps[0]["id"], kFirstSnapshot);
  EXPECT_EQ(snaps[1]["id"], kSecondSnapshot);
  for (const auto& s : snaps) {
    EXPECT_EQ(s["projects"], json::array({"handbook", "recipes"}));
    EXPECT_EQ(s["scope"], "full");
  }
  EXPECT_EQ(snaps[0]["bytes"], 230078);
  EXPECT_EQ(snaps[1]["bytes"], 235854);

  CliRun verify =
      Run({"backup", "verify", "--read-data", "--json", "--repo", repo, "--data-dir", data});
  EXPECT_EQ(verify.exit_code, 0) << verify.out << verify.err;
  json v = verify.Json();
  EXPECT_EQ(v["ok"], true) << verify.out;
  ASSERT_EQ(v["snapshots"].size(), 2u);
  for (const auto& s : v["snapshots"]) {
    EXPECT_EQ(s["ok"], true) << s.dump();
    EXPECT_GT(s["bytes_read"].get<int64_t>(), 0);
  }

  CliRun check = Run({"repo", "check", "--repo", repo, "--data-dir", data});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  // The passphrase is what opens it: a wrong one is refused.
  CliRun wrong =
      kb::testing::RunProcess(KB_CLI_BINARY, {"backup", "list", "--repo", repo, "--data-dir", data},
                              {{"KB_BACKUP_PASSWORD", "not the passphrase"}}, dir_.path());
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("the key does not open repository"), std::string::npos) << wrong.err;
}

TEST_F(CompatTest, RestoringTheFrozenRepositoryGivesBackTheDocuments) {
  const std::string repo = RepoUrl();

  // The newest snapshot: the whole data directory as it was frozen.
  const std::string latest = dir_.Sub("restored-latest");
  CliRun r = Run({"restore", "--json", "--repo", repo, "--data-dir", latest});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.Json()["snapshot"], kSecondSnapshot);
  EXPECT_EQ(Meta(KbDb(latest, kHandbookId)), std::make_pair(std::string(kHandbookChecksum), 4L));
  EXPECT_EQ(Meta(KbDb(latest, kRecipesId)), std::make_pair(std::string(kRecipesChecksum), 2L));
  for (const Doc& d : kDocs) {
    EXPECT_EQ(TopHit(latest, d), std::make_pair(std::string(d.id), std::string(d.source)))
        << d.query;
  }
  CliRun check = Run({"check", "--data-dir", latest});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  // The first snapshot: handbook without kayak.txt, which came between the two.
  const std::string first = dir_.Sub("restored-first");
  r = Run({"restore", "--snapshot", kFirstSnapshot, "--repo", repo, "--data-dir", first});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Meta(KbDb(first, kHandbookId)),
            std::make_pair(std::string(kHandbookChecksumAtFirst), 3L));
  EXPECT_EQ(Meta(KbDb(first, kRecipesId)), std::make_pair(std::string(kRecipesChecksum), 2L));
  CliRun stats = Run({"stats", "--json", "--data-dir", first});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_EQ(stats.Json()["documents"], 5);
  CliRun kayak = Run({"query", "-p", "handbook", "kayak paddle", "--mode", "keyword", "--json",
                      "--data-dir", first});
  ASSERT_EQ(kayak.exit_code, 0) << kayak.err;
  EXPECT_TRUE(kayak.Json()["results"].empty()) << kayak.out;
  EXPECT_EQ(TopHit(first, kDocs[1]),
            std::make_pair(std::string(kDocs[1].id), std::string(kDocs[1].source)));
}

}  // namespace
}  // namespace kb
