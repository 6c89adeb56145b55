// The restore test's check of a restored data directory (`backup verify --restore-test`): the
// repository engine (src/repo/verify.h) restores a snapshot's files into a temporary directory
// and hands it here through VerifyOptions::restored_check, because judging the databases needs
// SQLite and the data directory check of src/service/integrity_check.h, which the engine must not
// know. Checked: every database, the journal, the content checksum recomputed from the rows, the
// vector index; and that each project holds the state its snapshot recorded — the one check a
// restore makes too (CheckProjectMatchesSnapshot in backup/restore.h: checksum, journal LSN,
// counts); and the audit log's chain, when the snapshot holds one (CheckRestoredAuditLog).
//
// Thread-safety: a pure function of the directory's files; calls on different directories may
// run concurrently.
#pragma once

#include <string>
#include <vector>

#include "repo/repository.h"

namespace kb::backup {

// The check of a restored directory (see above). A "projects" snapshot has no catalog.db: its
// project directories are checked one by one. Problems name the file or the project; empty =
// good.
std::vector<std::string> CheckRestoredDatabases(const std::string& dir,
                                                const repo::SnapshotManifest& m);

// The check of a restored audit log (`dir`/audit.db with its audit.head, as a full snapshot
// holds them): opened read-only, its hash chain, retention anchor and head file verified
// (audit::AuditLog::Verify). Returns the problems, each starting "audit log: " (empty = the
// chain is whole, or there is no audit.db in `dir`). A chain that is whole but records a loss
// found earlier (an audit.head_mismatch entry) is not a problem of the copy: its sentence goes
// to `*recorded_loss` when given.
std::vector<std::string> CheckRestoredAuditLog(const std::string& dir,
                                               std::string* recorded_loss = nullptr);

// `options` with restored_check set to CheckRestoredDatabases when it asks for a restore test
// and has no check yet: what every live-data caller of Repository::Verify passes.
repo::VerifyOptions WithRestoredCheck(repo::VerifyOptions options);

}  // namespace kb::backup
