// Durability under a process crash: a child process writes documents and reports each one only
// after PutDocument returned OK; the parent SIGKILLs it mid-stream and checks that every
// acknowledged document survived whole and that nothing is half-written.
// (SIGKILL loses the process, not the OS page cache; power-loss durability rests on
// synchronous=FULL, which this test cannot observe.)
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <sstream>

#include "store/project_store.h"
#include "store_test_util.h"
#include "test_util.h"

namespace kb {
namespace {

using kb::testing::kTestDimension;
using kb::testing::TempDir;
using kb::testing::TestChunks;
using kb::testing::TestDoc;

constexpr char kProject[] = "crash-proj";

// Runs in the forked child; never returns.
[[noreturn]] void WriterChild(const std::string& path, int fd, int round) {
  auto store = ProjectStore::Open(path, kProject, kTestDimension, SystemClock::Default());
  if (!store.ok()) _exit(2);
  for (int i = 0; i < 1'000'000; ++i) {
    int n = 1 + i % 7;
    std::vector<std::string> texts;
    for (int j = 0; j < n; ++j) {
      texts.push_back("round " + std::to_string(round) + " doc " + std::to_string(i) + " chunk " +
                      std::to_string(j) + " " + std::string(200 + 37 * j, 'q'));
    }
    DocumentRecord d = TestDoc("r" + std::to_string(round) + "-" + std::to_string(i));
    // Every few documents replace an earlier one, so crashes also land inside replacements.
    if (i % 5 == 4) d = TestDoc("r" + std::to_string(round) + "-" + std::to_string(i - 2), "h2");
    // Announce the put first: a replacement that commits but is killed before its
    // acknowledgement legitimately supersedes the earlier acknowledged version.
    std::string intent = "P " + d.source + " " + std::to_string(n) + "\n";
    if (write(fd, intent.data(), intent.size()) != static_cast<ssize_t>(intent.size())) _exit(4);
    auto r = (*store)->PutDocument(d, TestChunks(texts, i), "crash");
    if (!r.ok()) _exit(3);
    std::string line = "A " + r->document.id + " " + std::to_string(n) + "\n";
    if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) _exit(4);
  }
  _exit(0);
}

TEST(StoreCrashTest, AcknowledgedDocumentsSurviveSigkill) {
  TempDir dir;
  std::string path = dir.Sub("kb.db");
  std::map<std::string, int> acked;  // document id -> chunk count of its latest acknowledged put
  // The put announced but not acknowledged when the child died: (source, chunk count).
  std::optional<std::pair<std::string, int>> in_flight;
  for (int round = 0; round < 3; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      WriterChild(path, fds[1], round);
    }
    close(fds[1]);
    const size_t want = 15 + 10 * static_cast<size_t>(round);
    std::string buffer;
    size_t lines = 0;
    auto consume = [&] {
      size_t nl;
      while ((nl = buffer.find('\n')) != std::string::npos) {
        std::istringstream in(buffer.substr(0, nl));
        std::string kind, key;
        int n = 0;
        in >> kind >> key >> n;
        if (kind == "P") {
          in_flight = {key, n};
        } else {
          acked[key] = n;
          in_flight.reset();
          ++lines;
        }
        buffer.erase(0, nl + 1);
      }
    };
    while (lines < want) {
      pollfd p{fds[0], POLLIN, 0};
      ASSERT_GT(poll(&p, 1, 30'000), 0) << "child stopped acknowledging";
      char chunk[4096];
      ssize_t got = read(fds[0], chunk, sizeof(chunk));
      ASSERT_GT(got, 0) << "child exited early";
      buffer.append(chunk, static_cast<size_t>(got));
      consume();
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child ended on its own, status " << status;
    // Acknowledgements written before the kill are still in the pipe.
    char chunk[4096];
    ssize_t got;
    while ((got = read(fds[0], chunk, sizeof(chunk))) > 0) buffer.append(chunk, size_t(got));
    consume();
    close(fds[0]);

    auto store = ProjectStore::Open(path, kProject, kTestDimension, SystemClock::Default());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (auto& [id, n] : acked) {
      auto doc = (*store)->GetDocument(id);
      ASSERT_TRUE(doc.ok()) << "acknowledged document " << id << " lost in round " << round;
      bool superseded =
          in_flight && in_flight->first == doc->source && doc->chunk_count == in_flight->second;
      if (superseded) {
        n = doc->chunk_count;  // the in-flight replacement committed; later rounds expect it
      } else {
        EXPECT_EQ(doc->chunk_count, n) << id;
      }
      auto chunks = (*store)->GetDocumentChunks(id);
      ASSERT_TRUE(chunks.ok());
      EXPECT_EQ(static_cast<int>(chunks->size()), doc->chunk_count) << id;
    }
    in_flight.reset();
    // No document anywhere is half-present: IntegrityCheck compares chunk_count with the rows.
    Status integrity = (*store)->IntegrityCheck();
    EXPECT_TRUE(integrity.ok()) << integrity.ToString();
    auto verified = (*store)->VerifyContentChecksum();
    EXPECT_TRUE(verified.ok()) << verified.status().ToString();
    auto journal = (*store)->ReadJournal(0, 1'000'000);
    ASSERT_TRUE(journal.ok());
    EXPECT_EQ(static_cast<int64_t>(journal->size()), *(*store)->LastLsn());
    EXPECT_EQ(journal->back().checksum, *(*store)->ContentChecksum());
  }
}

}  // namespace
}  // namespace kb
