// The job store's tables, created and migrated step by step, for SQLite and PostgreSQL alike.
#pragma once

#include "common/status.h"
#include "server/jobs/sql/sql_connection.h"

namespace selene::jobs {

// Version of the tables this build writes. Both engines number their schema the same way.
inline constexpr int kStoreSchemaVersion = 2;

// Brings the store's tables to kStoreSchemaVersion in one transaction: creates them in an empty
// database, migrates an older schema one step at a time, and refuses (FailedPrecondition naming
// both versions) a schema newer than this build, or a database that holds other tables but no
// Selene schema. On PostgreSQL an advisory lock makes servers that start together migrate once.
// `target` below kStoreSchemaVersion stops there (tests make older stores with it).
Status MigrateStoreSchema(sql::SqlConnection& db, int target = kStoreSchemaVersion);

// The schema version of an existing store, without changing anything (a read-only store).
StatusOr<int> StoreSchemaVersion(sql::SqlConnection& db);

}  // namespace selene::jobs
