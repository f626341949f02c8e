#include "hub/database.h"

namespace sluice::hub {

int64_t sql_int(const SqlValue& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* s = std::get_if<std::string>(&v)) {
    try {
      return std::stoll(*s);
    } catch (...) {
      return 0;
    }
  }
  return 0;
}

std::string sql_text(const SqlValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<int64_t>(&v)) return std::to_string(*i);
  return "";
}

Status Database::exec(std::string_view sql, const std::vector<SqlValue>& params) {
  Result<std::vector<SqlRow>> r = query(sql, params);
  if (!r) return Error{r.error()};
  return {};
}

Status Database::transaction(const std::function<Status()>& body) {
  std::lock_guard lock(mutex_);
  // SQLite: IMMEDIATE takes the write lock now, so two writers never deadlock on an upgrade.
  if (Status s = exec(dialect() == SqlDialect::Sqlite ? "BEGIN IMMEDIATE" : "BEGIN"); !s) return s;
  Status result = body();
  if (result) {
    if (Status s = exec("COMMIT"); !s) result = s;
  }
  if (!result) (void)exec("ROLLBACK");
  return result;
}

}  // namespace sluice::hub
