#include "hub/hub_store.h"

#include "common/random.h"
#include "common/strings.h"

namespace sluice::hub {
namespace {

// The schema, in the SQL both databases accept; {id} is the auto-increment key's declaration.
constexpr std::string_view kSchema = R"(
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS namespaces (
  name TEXT PRIMARY KEY, kind TEXT NOT NULL, is_admin INTEGER NOT NULL DEFAULT 0,
  created BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  org TEXT NOT NULL, username TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (org, username));
CREATE TABLE IF NOT EXISTS tokens (
  id TEXT PRIMARY KEY, username TEXT NOT NULL, hash TEXT NOT NULL, scope TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', created BIGINT NOT NULL, expires BIGINT NOT NULL,
  last_used BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS repositories (
  name TEXT PRIMARY KEY, namespace TEXT NOT NULL, is_private INTEGER NOT NULL DEFAULT 0,
  description TEXT NOT NULL DEFAULT '', readme TEXT NOT NULL DEFAULT '',
  license TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
  language TEXT NOT NULL DEFAULT '', keywords TEXT NOT NULL DEFAULT '',
  created BIGINT NOT NULL, updated BIGINT NOT NULL, downloads BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS manifests (
  repository TEXT NOT NULL, digest TEXT NOT NULL, media_type TEXT NOT NULL, size BIGINT NOT NULL,
  created BIGINT NOT NULL, pushed_by TEXT NOT NULL, abi_versions TEXT NOT NULL,
  root_ids TEXT NOT NULL, host_functions TEXT NOT NULL, wasi_functions TEXT NOT NULL,
  missing_imports TEXT NOT NULL, wasm_digest TEXT NOT NULL, wasm_size BIGINT NOT NULL,
  variant TEXT NOT NULL, annotations TEXT NOT NULL, PRIMARY KEY (repository, digest));
CREATE TABLE IF NOT EXISTS manifest_blobs (
  repository TEXT NOT NULL, manifest TEXT NOT NULL, blob TEXT NOT NULL,
  PRIMARY KEY (repository, manifest, blob));
CREATE TABLE IF NOT EXISTS repository_blobs (
  repository TEXT NOT NULL, digest TEXT NOT NULL, PRIMARY KEY (repository, digest));
CREATE TABLE IF NOT EXISTS tags (
  repository TEXT NOT NULL, tag TEXT NOT NULL, digest TEXT NOT NULL, updated BIGINT NOT NULL,
  PRIMARY KEY (repository, tag));
CREATE TABLE IF NOT EXISTS uploads (
  id TEXT PRIMARY KEY, repository TEXT NOT NULL, username TEXT NOT NULL, started BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
  id {id}, time BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
  repository TEXT NOT NULL, reference TEXT NOT NULL, digest TEXT NOT NULL, remote TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS audit_repository ON audit (repository, id);
)";

std::string like_pattern(std::string_view word) {
  std::string out = "%";
  for (char c : to_lower(word)) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

TokenRecord token_from(const SqlRow& r) {
  TokenRecord t;
  t.id = sql_text(r[0]);
  t.user = sql_text(r[1]);
  t.hash = sql_text(r[2]);
  t.scope = parse_scope(sql_text(r[3])).value_or(Scope::Read);
  t.description = sql_text(r[4]);
  t.created = sql_int(r[5]);
  t.expires = sql_int(r[6]);
  t.last_used = sql_int(r[7]);
  return t;
}
constexpr std::string_view kTokenColumns =
    "id, username, hash, scope, description, created, expires, last_used";

RepositoryRecord repository_from(const SqlRow& r) {
  RepositoryRecord x;
  x.name = sql_text(r[0]);
  x.namespace_ = sql_text(r[1]);
  x.is_private = sql_int(r[2]) != 0;
  x.description = sql_text(r[3]);
  x.readme = sql_text(r[4]);
  x.license = sql_text(r[5]);
  x.source = sql_text(r[6]);
  x.language = sql_text(r[7]);
  x.created = sql_int(r[8]);
  x.updated = sql_int(r[9]);
  x.downloads = sql_int(r[10]);
  return x;
}
constexpr std::string_view kRepositoryColumns =
    "r.name, r.namespace, r.is_private, r.description, r.readme, r.license, r.source, r.language, "
    "r.created, r.updated, r.downloads";

ManifestRecord manifest_from(const SqlRow& r) {
  ManifestRecord m;
  m.repository = sql_text(r[0]);
  m.digest = sql_text(r[1]);
  m.media_type = sql_text(r[2]);
  m.size = sql_int(r[3]);
  m.created = sql_int(r[4]);
  m.pushed_by = sql_text(r[5]);
  m.abi_versions = sql_text(r[6]);
  m.root_ids = sql_text(r[7]);
  m.host_functions = sql_text(r[8]);
  m.wasi_functions = sql_text(r[9]);
  m.missing_imports = sql_text(r[10]);
  m.wasm_digest = sql_text(r[11]);
  m.wasm_size = sql_int(r[12]);
  m.variant = sql_text(r[13]);
  m.annotations = sql_text(r[14]);
  return m;
}
constexpr std::string_view kManifestColumns =
    "repository, digest, media_type, size, created, pushed_by, abi_versions, root_ids, "
    "host_functions, wasi_functions, missing_imports, wasm_digest, wasm_size, variant, "
    "annotations";

}  // namespace

std::string_view role_name(Role r) {
  switch (r) {
    case Role::Reader:
      return "reader";
    case Role::Maintainer:
      return "maintainer";
    case Role::Owner:
      return "owner";
  }
  return "reader";
}

std::optional<Role> parse_role(std::string_view name) {
  if (name == "reader") return Role::Reader;
  if (name == "maintainer") return Role::Maintainer;
  if (name == "owner") return Role::Owner;
  return std::nullopt;
}

std::string_view scope_name(Scope s) {
  switch (s) {
    case Scope::Read:
      return "read";
    case Scope::Push:
      return "push";
    case Scope::Admin:
      return "admin";
  }
  return "read";
}

std::optional<Scope> parse_scope(std::string_view name) {
  if (name == "read") return Scope::Read;
  if (name == "push") return Scope::Push;
  if (name == "admin") return Scope::Admin;
  return std::nullopt;
}

Status HubStore::migrate() {
  std::string schema(kSchema);
  const std::string id = db_.dialect() == SqlDialect::Sqlite ? "INTEGER PRIMARY KEY AUTOINCREMENT"
                                                             : "BIGSERIAL PRIMARY KEY";
  schema.replace(schema.find("{id}"), 4, id);
  if (Status s = db_.exec_script(schema); !s) return s;
  Result<std::string> secret = signing_secret();
  if (!secret) return Error{secret.error()};
  return {};
}

Result<std::string> HubStore::signing_secret() {
  // Two hubs starting at once on one database: the first insert wins, both read it back.
  const std::string fresh = random_hex(32);
  if (fresh.empty()) return Error{"no randomness for the token-signing secret"};
  if (Status s = db_.exec(
          "INSERT INTO settings (key, value) VALUES ('token_secret', $1) ON CONFLICT DO NOTHING",
          {fresh});
      !s) {
    return Error{s.error()};
  }
  auto rows = db_.query("SELECT value FROM settings WHERE key = 'token_secret'");
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return Error{"the token-signing secret is missing"};
  return sql_text((*rows)[0][0]);
}

// --- accounts -------------------------------------------------------------------------------

Status HubStore::add_user(const std::string& name, bool admin, int64_t now) {
  auto rows = db_.query(
      "INSERT INTO namespaces (name, kind, is_admin, created) VALUES ($1, 'user', $2, $3) "
      "ON CONFLICT DO NOTHING RETURNING name",
      {name, int64_t{admin}, now});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return Error{str_cat("the name ", name, " is taken")};
  return {};
}

Result<std::optional<User>> HubStore::user(const std::string& name) {
  auto rows = db_.query(
      "SELECT name, is_admin, created FROM namespaces WHERE name = $1 AND kind = 'user'", {name});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<User>();
  const SqlRow& r = (*rows)[0];
  return std::optional<User>(User{sql_text(r[0]), sql_int(r[1]) != 0, sql_int(r[2])});
}

Result<std::vector<User>> HubStore::users() {
  auto rows =
      db_.query("SELECT name, is_admin, created FROM namespaces WHERE kind = 'user' ORDER BY name");
  if (!rows) return Error{rows.error()};
  std::vector<User> out;
  for (const SqlRow& r : *rows)
    out.push_back(User{sql_text(r[0]), sql_int(r[1]) != 0, sql_int(r[2])});
  return out;
}

Status HubStore::add_org(const std::string& name, const std::string& owner, int64_t now) {
  return db_.transaction([&]() -> Status {
    auto rows = db_.query(
        "INSERT INTO namespaces (name, kind, is_admin, created) VALUES ($1, 'org', 0, $2) "
        "ON CONFLICT DO NOTHING RETURNING name",
        {name, now});
    if (!rows) return Error{rows.error()};
    if (rows->empty()) return Error{str_cat("the name ", name, " is taken")};
    return set_member(name, owner, Role::Owner);
  });
}

Result<std::string> HubStore::namespace_kind(const std::string& name) {
  auto rows = db_.query("SELECT kind FROM namespaces WHERE name = $1", {name});
  if (!rows) return Error{rows.error()};
  return rows->empty() ? std::string() : sql_text((*rows)[0][0]);
}

Result<std::optional<Role>> HubStore::member_role(const std::string& org, const std::string& user) {
  auto rows = db_.query("SELECT role FROM members WHERE org = $1 AND username = $2", {org, user});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<Role>();
  return parse_role(sql_text((*rows)[0][0]));
}

Status HubStore::set_member(const std::string& org, const std::string& user, Role role) {
  return db_.exec(
      "INSERT INTO members (org, username, role) VALUES ($1, $2, $3) "
      "ON CONFLICT (org, username) DO UPDATE SET role = excluded.role",
      {org, user, std::string(role_name(role))});
}

Status HubStore::remove_member(const std::string& org, const std::string& user) {
  return db_.exec("DELETE FROM members WHERE org = $1 AND username = $2", {org, user});
}

Result<std::vector<std::pair<std::string, Role>>> HubStore::members(const std::string& org) {
  auto rows =
      db_.query("SELECT username, role FROM members WHERE org = $1 ORDER BY username", {org});
  if (!rows) return Error{rows.error()};
  std::vector<std::pair<std::string, Role>> out;
  for (const SqlRow& r : *rows) {
    out.emplace_back(sql_text(r[0]), parse_role(sql_text(r[1])).value_or(Role::Reader));
  }
  return out;
}

Result<std::vector<std::pair<std::string, Role>>> HubStore::orgs_of(const std::string& user) {
  auto rows = db_.query("SELECT org, role FROM members WHERE username = $1 ORDER BY org", {user});
  if (!rows) return Error{rows.error()};
  std::vector<std::pair<std::string, Role>> out;
  for (const SqlRow& r : *rows) {
    out.emplace_back(sql_text(r[0]), parse_role(sql_text(r[1])).value_or(Role::Reader));
  }
  return out;
}

Status HubStore::add_token(const TokenRecord& t) {
  return db_.exec(
      str_cat("INSERT INTO tokens (", kTokenColumns, ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"),
      {t.id, t.user, t.hash, std::string(scope_name(t.scope)), t.description, t.created, t.expires,
       t.last_used});
}

Result<std::optional<TokenRecord>> HubStore::token(const std::string& id) {
  auto rows = db_.query(str_cat("SELECT ", kTokenColumns, " FROM tokens WHERE id = $1"), {id});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<TokenRecord>();
  return std::optional<TokenRecord>(token_from((*rows)[0]));
}

Result<std::vector<TokenRecord>> HubStore::tokens_of(const std::string& user) {
  auto rows = db_.query(
      str_cat("SELECT ", kTokenColumns, " FROM tokens WHERE username = $1 ORDER BY created, id"),
      {user});
  if (!rows) return Error{rows.error()};
  std::vector<TokenRecord> out;
  for (const SqlRow& r : *rows) out.push_back(token_from(r));
  return out;
}

Result<bool> HubStore::delete_token(const std::string& user, const std::string& id) {
  auto rows =
      db_.query("DELETE FROM tokens WHERE id = $1 AND username = $2 RETURNING id", {id, user});
  if (!rows) return Error{rows.error()};
  return !rows->empty();
}

Status HubStore::touch_token(const std::string& id, int64_t now) {
  return db_.exec("UPDATE tokens SET last_used = $2 WHERE id = $1", {id, now});
}

// --- repositories ---------------------------------------------------------------------------

Result<std::optional<RepositoryRecord>> HubStore::repository(const std::string& name) {
  auto rows = db_.query(
      str_cat("SELECT ", kRepositoryColumns, " FROM repositories r WHERE r.name = $1"), {name});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<RepositoryRecord>();
  return std::optional<RepositoryRecord>(repository_from((*rows)[0]));
}

Status HubStore::set_private(const std::string& name, bool is_private) {
  return db_.exec("UPDATE repositories SET is_private = $2 WHERE name = $1",
                  {name, int64_t{is_private}});
}

Status HubStore::count_download(const std::string& name) {
  return db_.exec("UPDATE repositories SET downloads = downloads + 1 WHERE name = $1", {name});
}

Status HubStore::link_blob(const std::string& repository, const std::string& digest) {
  return db_.exec(
      "INSERT INTO repository_blobs (repository, digest) VALUES ($1, $2) ON CONFLICT DO NOTHING",
      {repository, digest});
}

Result<bool> HubStore::blob_linked(const std::string& repository, const std::string& digest) {
  auto rows = db_.query("SELECT 1 FROM repository_blobs WHERE repository = $1 AND digest = $2",
                        {repository, digest});
  if (!rows) return Error{rows.error()};
  return !rows->empty();
}

Status HubStore::unlink_blob(const std::string& repository, const std::string& digest) {
  return db_.exec("DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2",
                  {repository, digest});
}

Result<std::optional<std::string>> HubStore::manifest_using_blob(const std::string& repository,
                                                                 const std::string& digest) {
  auto rows =
      db_.query("SELECT manifest FROM manifest_blobs WHERE repository = $1 AND blob = $2 LIMIT 1",
                {repository, digest});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<std::string>();
  return std::optional<std::string>(sql_text((*rows)[0][0]));
}

Status HubStore::add_upload(const std::string& id, const std::string& repository,
                            const std::string& user, int64_t now) {
  return db_.exec("INSERT INTO uploads (id, repository, username, started) VALUES ($1, $2, $3, $4)",
                  {id, repository, user, now});
}

Result<std::string> HubStore::upload_repository(const std::string& id) {
  auto rows = db_.query("SELECT repository FROM uploads WHERE id = $1", {id});
  if (!rows) return Error{rows.error()};
  return rows->empty() ? std::string() : sql_text((*rows)[0][0]);
}

Status HubStore::remove_upload(const std::string& id) {
  return db_.exec("DELETE FROM uploads WHERE id = $1", {id});
}

Result<std::vector<std::string>> HubStore::uploads_before(int64_t time) {
  auto rows = db_.query("SELECT id FROM uploads WHERE started < $1", {time});
  if (!rows) return Error{rows.error()};
  std::vector<std::string> out;
  for (const SqlRow& r : *rows) out.push_back(sql_text(r[0]));
  return out;
}

Status HubStore::put_manifest(const ManifestRecord& m, const std::string& tag,
                              const RepositoryRecord& meta, const AuditEntry& audit) {
  return db_.transaction([&]() -> Status {
    // The repository, created on its first push; its description and README follow the
    // newest push that has them.
    if (Status s = db_.exec(
            "INSERT INTO repositories (name, namespace, is_private, description, readme, license, "
            "source, language, keywords, created, updated) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) "
            "ON CONFLICT (name) DO UPDATE SET updated = $10, "
            "description = CASE WHEN $4 = '' THEN repositories.description ELSE $4 END, "
            "readme = CASE WHEN $5 = '' THEN repositories.readme ELSE $5 END, "
            "license = CASE WHEN $6 = '' THEN repositories.license ELSE $6 END, "
            "source = CASE WHEN $7 = '' THEN repositories.source ELSE $7 END, "
            "language = CASE WHEN $8 = '' THEN repositories.language ELSE $8 END, "
            "keywords = $9",
            {meta.name, meta.namespace_, int64_t{meta.is_private}, meta.description, meta.readme,
             meta.license, meta.source, meta.language,
             str_cat(m.root_ids, " ", m.abi_versions, " ", m.host_functions), m.created});
        !s) {
      return s;
    }
    if (Status s = db_.exec(
            str_cat("INSERT INTO manifests (", kManifestColumns,
                    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
                    "ON CONFLICT (repository, digest) DO NOTHING"),
            {m.repository, m.digest, m.media_type, m.size, m.created, m.pushed_by, m.abi_versions,
             m.root_ids, m.host_functions, m.wasi_functions, m.missing_imports, m.wasm_digest,
             m.wasm_size, m.variant, m.annotations});
        !s) {
      return s;
    }
    for (const std::string& blob : m.blobs) {
      if (Status s = db_.exec(
              "INSERT INTO manifest_blobs (repository, manifest, blob) VALUES ($1, $2, $3) "
              "ON CONFLICT DO NOTHING",
              {m.repository, m.digest, blob});
          !s) {
        return s;
      }
    }
    if (Status s = link_blob(m.repository, m.digest); !s) return s;
    if (!tag.empty()) {
      if (Status s = db_.exec(
              "INSERT INTO tags (repository, tag, digest, updated) VALUES ($1, $2, $3, $4) "
              "ON CONFLICT (repository, tag) DO UPDATE SET digest = $3, updated = $4",
              {m.repository, tag, m.digest, m.created});
          !s) {
        return s;
      }
    }
    return add_audit(audit);
  });
}

Result<std::optional<ManifestRecord>> HubStore::manifest(const std::string& repository,
                                                         const std::string& digest) {
  auto rows = db_.query(
      str_cat("SELECT ", kManifestColumns, " FROM manifests WHERE repository = $1 AND digest = $2"),
      {repository, digest});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<ManifestRecord>();
  return std::optional<ManifestRecord>(manifest_from((*rows)[0]));
}

Result<std::vector<ManifestRecord>> HubStore::manifests(const std::string& repository) {
  auto rows =
      db_.query(str_cat("SELECT ", kManifestColumns,
                        " FROM manifests WHERE repository = $1 ORDER BY created DESC, digest"),
                {repository});
  if (!rows) return Error{rows.error()};
  std::vector<ManifestRecord> out;
  for (const SqlRow& r : *rows) out.push_back(manifest_from(r));
  return out;
}

Result<std::optional<std::string>> HubStore::tag_digest(const std::string& repository,
                                                        const std::string& tag) {
  auto rows =
      db_.query("SELECT digest FROM tags WHERE repository = $1 AND tag = $2", {repository, tag});
  if (!rows) return Error{rows.error()};
  if (rows->empty()) return std::optional<std::string>();
  return std::optional<std::string>(sql_text((*rows)[0][0]));
}

Result<std::vector<TagRecord>> HubStore::tags(const std::string& repository,
                                              const std::string& last, int64_t limit) {
  auto rows = db_.query(
      "SELECT tag, digest, updated FROM tags WHERE repository = $1 AND tag > $2 "
      "ORDER BY tag LIMIT $3",
      {repository, last, limit});
  if (!rows) return Error{rows.error()};
  std::vector<TagRecord> out;
  for (const SqlRow& r : *rows)
    out.push_back(TagRecord{sql_text(r[0]), sql_text(r[1]), sql_int(r[2])});
  return out;
}

Result<bool> HubStore::delete_manifest(const std::string& repository, const std::string& digest,
                                       const AuditEntry& audit) {
  bool found = false;
  Status s = db_.transaction([&]() -> Status {
    auto rows =
        db_.query("DELETE FROM manifests WHERE repository = $1 AND digest = $2 RETURNING digest",
                  {repository, digest});
    if (!rows) return Error{rows.error()};
    found = !rows->empty();
    if (!found) return {};
    for (const char* sql : {"DELETE FROM tags WHERE repository = $1 AND digest = $2",
                            "DELETE FROM manifest_blobs WHERE repository = $1 AND manifest = $2",
                            "DELETE FROM repository_blobs WHERE repository = $1 AND digest = $2"}) {
      if (Status e = db_.exec(sql, {repository, digest}); !e) return e;
    }
    return add_audit(audit);
  });
  if (!s) return Error{s.error()};
  return found;
}

Result<bool> HubStore::delete_tag(const std::string& repository, const std::string& tag,
                                  const AuditEntry& audit) {
  bool found = false;
  Status s = db_.transaction([&]() -> Status {
    auto rows = db_.query("DELETE FROM tags WHERE repository = $1 AND tag = $2 RETURNING tag",
                          {repository, tag});
    if (!rows) return Error{rows.error()};
    found = !rows->empty();
    return found ? add_audit(audit) : Status{};
  });
  if (!s) return Error{s.error()};
  return found;
}

std::string HubStore::visible_clause(const Viewer& viewer, std::vector<SqlValue>& params) {
  if (viewer.admin) return "1 = 1";
  if (viewer.user.empty()) return "r.is_private = 0";
  params.emplace_back(viewer.user);
  const std::string p = str_cat("$", params.size());
  return str_cat("(r.is_private = 0 OR r.namespace = ", p,
                 " OR r.namespace IN (SELECT org FROM members WHERE username = ", p, "))");
}

Result<std::vector<std::string>> HubStore::catalog(const Viewer& viewer, const std::string& last,
                                                   int64_t limit) {
  std::vector<SqlValue> params{last, limit};
  const std::string where = visible_clause(viewer, params);
  auto rows =
      db_.query(str_cat("SELECT r.name FROM repositories r WHERE r.name > $1 AND ", where,
                        " AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = r.name) "
                        "ORDER BY r.name LIMIT $2"),
                params);
  if (!rows) return Error{rows.error()};
  std::vector<std::string> out;
  for (const SqlRow& r : *rows) out.push_back(sql_text(r[0]));
  return out;
}

Result<std::vector<SearchHit>> HubStore::search(const std::string& query, const Viewer& viewer,
                                                int64_t limit, int64_t offset, int64_t* total) {
  std::vector<SqlValue> params;
  std::string where =
      str_cat(visible_clause(viewer, params),
              " AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = r.name)");
  for (std::string_view word : split(query, ' ')) {
    word = trim(word);
    if (word.empty()) continue;
    params.emplace_back(like_pattern(word));
    const std::string p = str_cat("$", params.size());
    where += " AND (";
    bool first = true;
    for (const char* column : {"r.name", "r.description", "r.readme", "r.language", "r.keywords"}) {
      str_append(&where, first ? "" : " OR ", "lower(", column, ") LIKE ", p, " ESCAPE '\\'");
      first = false;
    }
    where += ")";
  }
  auto count = db_.query(str_cat("SELECT count(*) FROM repositories r WHERE ", where), params);
  if (!count) return Error{count.error()};
  if (total) *total = count->empty() ? 0 : sql_int((*count)[0][0]);
  params.emplace_back(limit);
  params.emplace_back(offset);
  auto rows = db_.query(str_cat("SELECT ", kRepositoryColumns, " FROM repositories r WHERE ", where,
                                " ORDER BY r.downloads DESC, r.updated DESC, r.name LIMIT $",
                                params.size() - 1, " OFFSET $", params.size()),
                        params);
  if (!rows) return Error{rows.error()};
  return with_latest(*rows);
}

Result<std::vector<SearchHit>> HubStore::namespace_repositories(const std::string& ns,
                                                                const Viewer& viewer) {
  std::vector<SqlValue> params{ns};
  const std::string where =
      str_cat("r.namespace = $1 AND ", visible_clause(viewer, params),
              " AND EXISTS (SELECT 1 FROM manifests m WHERE m.repository = r.name)");
  auto rows = db_.query(str_cat("SELECT ", kRepositoryColumns, " FROM repositories r WHERE ", where,
                                " ORDER BY r.name"),
                        params);
  if (!rows) return Error{rows.error()};
  return with_latest(*rows);
}

Result<std::vector<SearchHit>> HubStore::with_latest(const std::vector<SqlRow>& rows) {
  std::vector<SearchHit> hits;
  for (const SqlRow& r : rows) {
    SearchHit hit;
    hit.repository = repository_from(r);
    auto latest = db_.query(str_cat("SELECT ", kManifestColumns,
                                    " FROM manifests WHERE repository = $1 "
                                    "ORDER BY created DESC, digest LIMIT 1"),
                            {hit.repository.name});
    if (!latest) return Error{latest.error()};
    if (!latest->empty()) {
      hit.latest = manifest_from((*latest)[0]);
      auto tag = db_.query(
          "SELECT tag FROM tags WHERE repository = $1 AND digest = $2 ORDER BY updated DESC, tag "
          "LIMIT 1",
          {hit.repository.name, hit.latest->digest});
      if (!tag) return Error{tag.error()};
      if (!tag->empty()) hit.latest_tag = sql_text((*tag)[0][0]);
    }
    hits.push_back(std::move(hit));
  }
  return hits;
}

Status HubStore::add_audit(const AuditEntry& e) {
  return db_.exec(
      "INSERT INTO audit (time, actor, action, repository, reference, digest, remote, detail) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
      {e.time, e.actor, e.action, e.repository, e.reference, e.digest, e.remote, e.detail});
}

Result<std::vector<AuditEntry>> HubStore::audit(const std::string& repository_prefix,
                                                int64_t limit) {
  auto rows = db_.query(
      "SELECT id, time, actor, action, repository, reference, digest, remote, detail FROM audit "
      "WHERE $1 = '' OR repository = $1 OR substr(repository, 1, length($1) + 1) = $1 || '/' "
      "ORDER BY id DESC LIMIT $2",
      {repository_prefix, limit});
  if (!rows) return Error{rows.error()};
  std::vector<AuditEntry> out;
  for (const SqlRow& r : *rows) {
    out.push_back(AuditEntry{sql_int(r[0]), sql_int(r[1]), sql_text(r[2]), sql_text(r[3]),
                             sql_text(r[4]), sql_text(r[5]), sql_text(r[6]), sql_text(r[7]),
                             sql_text(r[8])});
  }
  return out;
}

}  // namespace sluice::hub
