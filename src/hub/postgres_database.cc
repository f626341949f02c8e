// The shared metadata database: PostgreSQL through libpq, one connection (reconnected when it
// breaks) shared by the hub's threads.
#include <libpq-fe.h>

#include "common/strings.h"
#include "hub/database.h"

namespace sluice::hub {
namespace {

// pg_type OIDs of the integer types, whose text the rows turn back into integers.
constexpr Oid kInt8 = 20, kInt2 = 21, kInt4 = 23;

class PostgresDatabase : public Database {
 public:
  PostgresDatabase(std::string url, PGconn* conn) : url_(std::move(url)), conn_(conn) {}
  ~PostgresDatabase() override { PQfinish(conn_); }
  SqlDialect dialect() const override { return SqlDialect::Postgres; }

  Result<std::vector<SqlRow>> query(std::string_view sql,
                                    const std::vector<SqlValue>& params) override {
    std::lock_guard lock(mutex_);
    if (Status s = ensure_connected(); !s) return Error{s.error()};
    std::vector<std::string> texts(params.size());
    std::vector<const char*> values(params.size(), nullptr);
    for (size_t i = 0; i < params.size(); ++i) {
      if (std::holds_alternative<std::nullptr_t>(params[i])) continue;
      texts[i] = sql_text(params[i]);
      values[i] = texts[i].c_str();
    }
    PGresult* res = PQexecParams(conn_, std::string(sql).c_str(), static_cast<int>(params.size()),
                                 nullptr, values.data(), nullptr, nullptr, 0);
    std::unique_ptr<PGresult, decltype(&PQclear)> guard(res, PQclear);
    const ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      return Error{str_cat("PostgreSQL: ", trim(PQerrorMessage(conn_)))};
    }
    std::vector<SqlRow> rows;
    const int n = PQntuples(res), columns = PQnfields(res);
    rows.reserve(n);
    for (int r = 0; r < n; ++r) {
      SqlRow row;
      row.reserve(columns);
      for (int c = 0; c < columns; ++c) {
        if (PQgetisnull(res, r, c)) {
          row.emplace_back(nullptr);
          continue;
        }
        std::string text(PQgetvalue(res, r, c), PQgetlength(res, r, c));
        const Oid type = PQftype(res, c);
        if (type == kInt8 || type == kInt4 || type == kInt2) {
          row.emplace_back(int64_t{std::stoll(text)});
        } else {
          row.emplace_back(std::move(text));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  Status exec_script(std::string_view sql) override {
    std::lock_guard lock(mutex_);
    if (Status s = ensure_connected(); !s) return s;
    PGresult* res = PQexec(conn_, std::string(sql).c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> guard(res, PQclear);
    const ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      return Error{str_cat("PostgreSQL: ", trim(PQerrorMessage(conn_)))};
    }
    return {};
  }

 private:
  // A server restart breaks the connection; the next statement reconnects (never inside a
  // transaction, whose statements then fail as they should).
  Status ensure_connected() {
    if (PQstatus(conn_) == CONNECTION_OK) return {};
    PQreset(conn_);
    if (PQstatus(conn_) != CONNECTION_OK) {
      return Error{str_cat("PostgreSQL: cannot reconnect: ", trim(PQerrorMessage(conn_)))};
    }
    return {};
  }

  std::string url_;
  PGconn* conn_;
};

}  // namespace

Result<std::unique_ptr<Database>> open_postgres(const std::string& url) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = str_cat("cannot connect to PostgreSQL: ", trim(PQerrorMessage(conn)));
    PQfinish(conn);
    return Error{error};
  }
  // Notices (e.g. "relation already exists, skipping") are not the hub's log.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Database>(std::make_unique<PostgresDatabase>(url, conn));
}

}  // namespace sluice::hub
