// The hub's metadata lives in SQL: SQLite (embedded, one file in the data folder) by default, or a
// shared PostgreSQL. Both speak through this one small interface, with one dialect of SQL:
// parameters are $1, $2, ... in both; integers are INTEGER/BIGINT, booleans integers, times Unix
// seconds. The few differences (an auto-increment key) come from `dialect()`.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/result.h"

namespace sluice::hub {

using SqlValue = std::variant<std::nullptr_t, int64_t, std::string>;
using SqlRow = std::vector<SqlValue>;

// Column access that tolerates NULL (as 0 or "").
int64_t sql_int(const SqlValue& v);
std::string sql_text(const SqlValue& v);

enum class SqlDialect { Sqlite, Postgres };

class Database {
 public:
  virtual ~Database() = default;
  virtual SqlDialect dialect() const = 0;
  // One statement. Rows only for statements that return some (SELECT, ... RETURNING).
  virtual Result<std::vector<SqlRow>> query(std::string_view sql,
                                            const std::vector<SqlValue>& params = {}) = 0;
  Status exec(std::string_view sql, const std::vector<SqlValue>& params = {});
  // Runs `body` in a transaction: committed when it returns ok, rolled back otherwise (and on a
  // failed commit). Transactions do not nest. Statements from other threads wait for it.
  Status transaction(const std::function<Status()>& body);
  // Several statements separated by ';' (the schema), no parameters.
  virtual Status exec_script(std::string_view sql) = 0;

 protected:
  // Every statement runs under this lock, and a transaction holds it throughout, so one
  // connection serves every thread.
  std::recursive_mutex mutex_;
};

// `path`: the database file (created when missing). WAL mode, a busy timeout for other processes
// (the `sluice hub user add` CLI beside a running server).
Result<std::unique_ptr<Database>> open_sqlite(const std::string& path);
// `url`: a libpq connection string or postgres:// URL.
Result<std::unique_ptr<Database>> open_postgres(const std::string& url);

}  // namespace sluice::hub
