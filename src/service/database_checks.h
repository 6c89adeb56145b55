// The checks of one SQLite file of a data directory, catalog.db or a project's kb.db: the
// "sqlite", "schema", "journal", "chunks", "content_checksum" and "keyword_index" rows of the
// table in service/integrity_check.h. Internal to the integrity check: integrity_check.cc walks
// the data directory, compares vector indexes and builds the report, and calls these for each
// database it finds. They are apart because they are one concern (what a sound database looks
// like, restating a little of docs/format/DATABASE.md in SQL) and the walk is another.
//
// Every file is opened read-only with its own connection, never through a ProjectStore or
// Catalog: those open read-write and migrate, which an offline check of a backup or of a
// damaged directory must not do: through store::ProjectReader and store::CatalogReader, which
// keep the SQL of both schemas in src/store.
//
// Thread-safety: reentrant functions; each call opens its own connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "service/integrity_check.h"
#include "store/catalog_reader.h"

namespace kb::integrity_internal {

// The first kMaxQuotedItems of `ids`, then "and N more" when `total` is larger.
std::string QuoteIds(const std::vector<int64_t>& ids, size_t total);
// "1 vector", "2 vectors".
std::string Plural(size_t n, const std::string& one, const std::string& many);

// Collects up to kMaxQuotedItems ids and counts them all.
struct IdSample {
  std::vector<int64_t> ids;
  size_t count = 0;
  void Add(int64_t id) {
    if (ids.size() < kMaxQuotedItems) ids.push_back(id);
    ++count;
  }
};

// What the meta row of a kb.db says.
struct MetaInfo {
  int dimension = 0;
  std::string checksum_hex;
  int64_t last_lsn = 0;
};

// The database checks of one kb.db (r->path), recorded in `r`; the meta row if the file could
// be interpreted (nullopt: missing, unreadable, or not a project database of `expected`).
// `cancelled` (may be empty) is asked while SQLite works: once it is true the running statement
// stops, and what `r` then holds is incomplete — the caller must discard it, never report it.
std::optional<MetaInfo> CheckProjectDatabase(const ExpectedProject& expected,
                                             DatabaseCheckReport* r,
                                             const std::function<bool()>& cancelled = {});

// The projects catalog.db lists, soft-deleted ones too, in creation order.
Result<std::vector<ExpectedProject>> ReadCatalogProjects(store::CatalogReader* db);
// Checks catalog.db (r->path), recorded in `r`; the projects it lists, or nullopt if they
// cannot be read.
std::optional<std::vector<ExpectedProject>> CheckCatalog(DatabaseCheckReport* r);

}  // namespace kb::integrity_internal
