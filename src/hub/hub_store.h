// The hub's metadata over a Database: accounts (users, organisations and their members, access
// tokens), repositories with their manifests, tags and blob links, uploads in progress, the
// search index of extension metadata and the audit log. Content (blobs) is in BlobStore.
//
// Names: a namespace is a user's or an organisation's name; a repository is "namespace/name"
// (possibly with more path components). Times are Unix seconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "hub/database.h"

namespace sluice::hub {

enum class Role { Reader = 0, Maintainer = 1, Owner = 2 };
std::string_view role_name(Role r);
std::optional<Role> parse_role(std::string_view name);

// What a token may do: read (pull, browse private repositories it can see), push (and delete),
// admin (everything its user may do, including managing users when the user is an administrator).
enum class Scope { Read = 0, Push = 1, Admin = 2 };
std::string_view scope_name(Scope s);
std::optional<Scope> parse_scope(std::string_view name);

struct User {
  std::string name;
  bool admin = false;
  int64_t created = 0;
};

struct TokenRecord {
  std::string id;  // the public part of the token, also its key
  std::string user;
  std::string hash;  // sha256 of the whole token: the token itself is never stored
  Scope scope = Scope::Read;
  std::string description;
  int64_t created = 0;
  int64_t expires = 0;
  int64_t last_used = 0;
};

struct RepositoryRecord {
  std::string name;
  std::string namespace_;
  bool is_private = false;
  std::string description, readme, license, source, language;
  int64_t created = 0, updated = 0, downloads = 0;
};

// One pushed image manifest and what the hub read from its module.
struct ManifestRecord {
  std::string repository, digest, media_type;
  int64_t size = 0, created = 0;
  std::string pushed_by;
  // JSON arrays (text): ABI versions, root ids, host functions, WASI functions, missing imports.
  std::string abi_versions = "[]", root_ids = "[]", host_functions = "[]", wasi_functions = "[]",
              missing_imports = "[]";
  std::string wasm_digest;
  int64_t wasm_size = 0;
  std::string variant;             // "oci" or "compat"
  std::string annotations = "{}";  // the manifest's annotations (JSON object)
  std::vector<std::string> blobs;  // config and layers, kept linked while the manifest exists
};

struct TagRecord {
  std::string tag, digest;
  int64_t updated = 0;
};

struct AuditEntry {
  int64_t id = 0, time = 0;
  std::string actor, action, repository, reference, digest, remote, detail;
};

struct SearchHit {
  RepositoryRecord repository;
  std::optional<ManifestRecord> latest;  // the newest manifest
  std::string latest_tag;
};

// Who is asking, for visibility: anonymous (""), a user, or an administrator who sees all.
struct Viewer {
  std::string user;
  bool admin = false;
};

class HubStore {
 public:
  explicit HubStore(Database& db) : db_(db) {}
  Database& db() { return db_; }

  // Creates the tables (idempotent) and the token-signing secret.
  Status migrate();
  // The key registry tokens are signed with, made once and kept in the database so that every
  // hub on one database accepts the others' tokens.
  Result<std::string> signing_secret();

  // --- accounts ---
  Status add_user(const std::string& name, bool admin, int64_t now);
  Result<std::optional<User>> user(const std::string& name);
  Result<std::vector<User>> users();
  Status add_org(const std::string& name, const std::string& owner, int64_t now);
  // "user", "org" or "" (unknown).
  Result<std::string> namespace_kind(const std::string& name);
  Result<std::optional<Role>> member_role(const std::string& org, const std::string& user);
  Status set_member(const std::string& org, const std::string& user, Role role);
  Status remove_member(const std::string& org, const std::string& user);
  Result<std::vector<std::pair<std::string, Role>>> members(const std::string& org);
  Result<std::vector<std::pair<std::string, Role>>> orgs_of(const std::string& user);

  Status add_token(const TokenRecord& token);
  Result<std::optional<TokenRecord>> token(const std::string& id);
  Result<std::vector<TokenRecord>> tokens_of(const std::string& user);
  // false when the user has no such token.
  Result<bool> delete_token(const std::string& user, const std::string& id);
  Status touch_token(const std::string& id, int64_t now);

  // --- repositories and content ---
  Result<std::optional<RepositoryRecord>> repository(const std::string& name);
  Status set_private(const std::string& name, bool is_private);
  Status count_download(const std::string& name);

  Status link_blob(const std::string& repository, const std::string& digest);
  Result<bool> blob_linked(const std::string& repository, const std::string& digest);
  Status unlink_blob(const std::string& repository, const std::string& digest);
  // A manifest of the repository that names the blob, if any.
  Result<std::optional<std::string>> manifest_using_blob(const std::string& repository,
                                                         const std::string& digest);

  Status add_upload(const std::string& id, const std::string& repository, const std::string& user,
                    int64_t now);
  // The repository an upload belongs to, or "" when unknown.
  Result<std::string> upload_repository(const std::string& id);
  Status remove_upload(const std::string& id);
  Result<std::vector<std::string>> uploads_before(int64_t time);

  // Stores a verified manifest (and its tag when `tag` is not empty), creating the repository
  // on its first push and taking its descriptive metadata from `meta`, all in one transaction
  // with its audit entry.
  Status put_manifest(const ManifestRecord& manifest, const std::string& tag,
                      const RepositoryRecord& meta, const AuditEntry& audit);
  Result<std::optional<ManifestRecord>> manifest(const std::string& repository,
                                                 const std::string& digest);
  Result<std::vector<ManifestRecord>> manifests(const std::string& repository);
  Result<std::optional<std::string>> tag_digest(const std::string& repository,
                                                const std::string& tag);
  // Tags in lexical order after `last`, at most `limit`.
  Result<std::vector<TagRecord>> tags(const std::string& repository, const std::string& last,
                                      int64_t limit);
  // Deletes a manifest and the tags naming it; false when there was none.
  Result<bool> delete_manifest(const std::string& repository, const std::string& digest,
                               const AuditEntry& audit);
  Result<bool> delete_tag(const std::string& repository, const std::string& tag,
                          const AuditEntry& audit);

  // Repositories the viewer may see, in name order after `last`.
  Result<std::vector<std::string>> catalog(const Viewer& viewer, const std::string& last,
                                           int64_t limit);
  // Repositories whose name, description, README, language, or newest push's root ids, ABI
  // versions or host functions contain every word of `query` (case-insensitive), most
  // downloaded first; `total` gets the number of matches.
  Result<std::vector<SearchHit>> search(const std::string& query, const Viewer& viewer,
                                        int64_t limit, int64_t offset, int64_t* total);

  // The repositories of namespace `ns` the viewer may see (with at least one manifest), by name.
  Result<std::vector<SearchHit>> namespace_repositories(const std::string& ns,
                                                        const Viewer& viewer);

  Status add_audit(const AuditEntry& entry);
  // Newest first: entries of a repository or namespace and everything under it ("" for all).
  Result<std::vector<AuditEntry>> audit(const std::string& repository_prefix, int64_t limit);

 private:
  // Each repository row's newest manifest and the newest tag naming it.
  Result<std::vector<SearchHit>> with_latest(const std::vector<SqlRow>& rows);
  // The visibility condition on repositories r for `viewer`, with its parameters appended.
  std::string visible_clause(const Viewer& viewer, std::vector<SqlValue>& params);
  Database& db_;
};

}  // namespace sluice::hub
