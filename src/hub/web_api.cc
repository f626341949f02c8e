// The hub's JSON API (/api/v1/), for the web UI and scripts: search, extension pages, the
// caller's account and tokens, users (administrators), organisations and the audit log.
#include <absl/strings/numbers.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "hub/hub.h"
#include "oci/json_fields.h"

namespace sluice::hub {

using nlohmann::json;

namespace {

json parsed_array(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_array() ? j : json::array();
}

json manifest_json(const ManifestRecord& m) {
  json annotations = json::parse(m.annotations, nullptr, false);
  if (!annotations.is_object()) annotations = json::object();
  // The README is the repository's, shown once, not once per version.
  annotations.erase("io.sluice.extension.readme");
  return json{{"digest", m.digest},
              {"media_type", m.media_type},
              {"created", m.created},
              {"pushed_by", m.pushed_by},
              {"abi_versions", parsed_array(m.abi_versions)},
              {"root_ids", parsed_array(m.root_ids)},
              {"host_functions", parsed_array(m.host_functions)},
              {"wasi_functions", parsed_array(m.wasi_functions)},
              {"missing_imports", parsed_array(m.missing_imports)},
              {"wasm_digest", m.wasm_digest},
              {"wasm_size", m.wasm_size},
              {"variant", m.variant},
              {"annotations", annotations}};
}

json repository_summary(const RepositoryRecord& r) {
  return json{{"name", r.name},          {"namespace", r.namespace_},
              {"private", r.is_private}, {"description", r.description},
              {"license", r.license},    {"source", r.source},
              {"language", r.language},  {"downloads", r.downloads},
              {"created", r.created},    {"updated", r.updated}};
}

// The summary plus what the newest push says: the card search results and lists show.
json extension_card(const RepositoryRecord& r, const std::optional<ManifestRecord>& latest,
                    const std::string& latest_tag) {
  json card = repository_summary(r);
  card["latest_tag"] = latest_tag;
  card["abi_versions"] = latest ? parsed_array(latest->abi_versions) : json::array();
  card["root_ids"] = latest ? parsed_array(latest->root_ids) : json::array();
  card["wasm_size"] = latest ? latest->wasm_size : 0;
  card["missing_imports"] = latest ? parsed_array(latest->missing_imports) : json::array();
  return card;
}

int64_t int_param(const HttpRequest& request, std::string_view name, int64_t fallback,
                  int64_t max) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(request.param(name), &v) || v < 0) return fallback;
  return std::min(v, max);
}

// "Who are you" failures: 401 for bad or missing credentials.
HttpResponse need_login(std::string_view why) {
  HttpResponse r = api_error(401, why);
  r.header("www-authenticate", "Bearer realm=\"sluice-hub\"");
  return r;
}

HttpResponse database_failed(const std::string& error) {
  spdlog::error("hub: {}", error);
  return api_error(500, "the hub's database failed");
}

// A JSON object body, or why not.
Result<json> object_body(const std::string& body) {
  json j = json::parse(body.empty() ? "{}" : body, nullptr, false);
  if (!j.is_object()) return Error{"the body must be a JSON object"};
  return j;
}

}  // namespace

HttpResponse api_error(int status, std::string_view message) {
  return HttpResponse::json(status, json{{"error", message}});
}

std::unique_ptr<Exchange> Hub::api(HttpRequest& request) {
  Result<Identity> who = auth_.authenticate(request.header("authorization"), unix_now());
  if (!who) return respond_now(need_login(who.error()));
  const std::string path = request.path.substr(std::string_view("/api/v1").size());
  const std::string& method = request.method;
  const bool read = method == "GET" || method == "HEAD";
  const Identity caller = *who;
  const HttpRequest* req = &request;
  // Bodies are small JSON documents.
  auto with_body = [](std::function<HttpResponse(std::string)> handler) {
    return collect_body(64 * 1024, std::move(handler), [](size_t limit) {
      return api_error(413, str_cat("request bodies are limited to ", limit, " bytes"));
    });
  };

  if (path == "/search" && read) return respond_now(api_search(request, caller));
  if (path.starts_with("/extensions/")) {
    const std::string name = path.substr(std::string_view("/extensions/").size());
    if (read) return respond_now(api_extension(request, caller, name));
    if (method == "PATCH") {
      return with_body([this, caller, name](std::string body) {
        return api_update_extension(caller, name, body);
      });
    }
    return respond_now(api_error(405, "use GET or PATCH"));
  }
  if (path == "/user" && read) return respond_now(api_me(caller));
  if (path == "/tokens" || path.starts_with("/tokens/")) {
    return with_body(
        [this, caller, req](std::string body) { return api_tokens(*req, caller, body); });
  }
  if (path == "/users" || path.starts_with("/users/")) {
    return with_body(
        [this, caller, req](std::string body) { return api_users(*req, caller, body); });
  }
  if (path == "/orgs" || path.starts_with("/orgs/")) {
    const std::string rest = path.substr(5);
    return with_body(
        [this, caller, req, rest](std::string body) { return api_orgs(*req, caller, rest, body); });
  }
  if (path == "/audit" && read) return respond_now(api_audit(request, caller));
  return respond_now(api_error(404, str_cat("no such API: ", method, " ", request.path)));
}

HttpResponse Hub::api_search(const HttpRequest& request, const Identity& who) {
  const int64_t limit = int_param(request, "limit", 20, 100);
  const int64_t offset = int_param(request, "offset", 0, 1000000);
  int64_t total = 0;
  Result<std::vector<SearchHit>> hits =
      store_.search(request.param("q"), who.viewer(), limit, offset, &total);
  if (!hits) return database_failed(hits.error());
  json results = json::array();
  for (const SearchHit& hit : *hits) {
    results.push_back(extension_card(hit.repository, hit.latest, hit.latest_tag));
  }
  return HttpResponse::json(200, json{{"query", request.param("q")},
                                      {"total", total},
                                      {"offset", offset},
                                      {"results", results}});
}

HttpResponse Hub::api_extension(const HttpRequest& request, const Identity& who,
                                const std::string& name) {
  Result<Access> access = repository_access(store_, who, name);
  if (!access) return database_failed(access.error());
  if (!access->pull) return api_error(404, str_cat("no extension ", name));
  Result<std::optional<RepositoryRecord>> repo = store_.repository(name);
  if (!repo) return database_failed(repo.error());
  if (!repo->has_value()) return api_error(404, str_cat("no extension ", name));
  Result<std::vector<TagRecord>> tags = store_.tags(name, "", 1000);
  if (!tags) return database_failed(tags.error());
  Result<std::vector<ManifestRecord>> manifests = store_.manifests(name);
  if (!manifests) return database_failed(manifests.error());
  // The newest version, and the newest tag naming it, as search shows them.
  std::optional<ManifestRecord> latest;
  if (!manifests->empty()) latest = manifests->front();
  std::string latest_tag;
  int64_t latest_tag_time = -1;
  for (const TagRecord& t : *tags) {
    if (latest && t.digest == latest->digest && t.updated > latest_tag_time) {
      latest_tag = t.tag;
      latest_tag_time = t.updated;
    }
  }
  json out = extension_card(**repo, latest, latest_tag);
  out["readme"] = (*repo)->readme;
  json tag_list = json::array();
  for (const TagRecord& t : *tags) {
    tag_list.push_back(json{{"tag", t.tag}, {"digest", t.digest}, {"updated", t.updated}});
  }
  out["tags"] = tag_list;
  json versions = json::array();
  for (const ManifestRecord& m : *manifests) {
    json v = manifest_json(m);
    json names = json::array();
    for (const TagRecord& t : *tags) {
      if (t.digest == m.digest) names.push_back(t.tag);
    }
    v["tags"] = names;
    versions.push_back(std::move(v));
  }
  out["versions"] = versions;
  // host[:port] as clients write it in a reference.
  std::string registry = options_.public_url;
  if (registry.empty()) {
    registry = std::string(request.host());
  } else {
    registry =
        registry.substr(registry.find("://") == std::string::npos ? 0 : registry.find("://") + 3);
  }
  out["registry"] = registry;
  out["can_push"] = access->push;
  return HttpResponse::json(200, out);
}

HttpResponse Hub::api_update_extension(const Identity& who, const std::string& name,
                                       const std::string& body) {
  Result<Access> access = repository_access(store_, who, name);
  if (!access) return database_failed(access.error());
  if (!access->exists || !access->pull) return api_error(404, str_cat("no extension ", name));
  if (!access->push) {
    return who.anonymous() ? need_login("log in to change an extension")
                           : api_error(403, str_cat(who.user, " may not change ", name));
  }
  Result<json> j = object_body(body);
  if (!j) return api_error(400, j.error());
  for (const auto& [key, value] : j->items()) {
    if (key != "private") return api_error(400, str_cat("unknown field ", key, " (only private)"));
    if (!value.is_boolean()) return api_error(400, "private must be true or false");
  }
  if (j->contains("private")) {
    if (Status s = store_.set_private(name, (*j)["private"].get<bool>()); !s) {
      return database_failed(s.error());
    }
    AuditEntry e{0,    unix_now(), who.user, (*j)["private"].get<bool>() ? "private" : "public",
                 name, "",         "",       "",
                 ""};
    (void)store_.add_audit(e);
  }
  Result<std::optional<RepositoryRecord>> repo = store_.repository(name);
  if (!repo || !repo->has_value()) return api_error(404, str_cat("no extension ", name));
  return HttpResponse::json(200, repository_summary(**repo));
}

HttpResponse Hub::api_me(const Identity& who) {
  if (who.anonymous()) return need_login("not logged in");
  Result<std::optional<User>> user = store_.user(who.user);
  if (!user) return database_failed(user.error());
  if (!user->has_value()) return need_login("no such user");
  Result<std::vector<std::pair<std::string, Role>>> orgs = store_.orgs_of(who.user);
  if (!orgs) return database_failed(orgs.error());
  json org_list = json::array();
  for (const auto& [org, role] : *orgs)
    org_list.push_back(json{{"name", org}, {"role", role_name(role)}});
  return HttpResponse::json(200, json{{"name", who.user},
                                      {"admin", (*user)->admin},
                                      {"token_scope", scope_name(who.scope)},
                                      {"orgs", org_list}});
}

HttpResponse Hub::api_tokens(const HttpRequest& request, const Identity& who,
                             const std::string& body) {
  if (who.anonymous()) return need_login("log in to manage tokens");
  const std::string& method = request.method;
  const int64_t now = unix_now();
  if (request.path == "/api/v1/tokens" && method == "GET") {
    Result<std::vector<TokenRecord>> tokens = store_.tokens_of(who.user);
    if (!tokens) return database_failed(tokens.error());
    json list = json::array();
    for (const TokenRecord& t : *tokens) {
      list.push_back(json{{"id", t.id},
                          {"scope", scope_name(t.scope)},
                          {"description", t.description},
                          {"created", t.created},
                          {"expires", t.expires},
                          {"expired", t.expires <= now},
                          {"last_used", t.last_used},
                          {"current", t.id == who.token_id}});
    }
    return HttpResponse::json(200, json{{"tokens", list}});
  }
  if (request.path == "/api/v1/tokens" && method == "POST") {
    Result<json> j = object_body(body);
    if (!j) return api_error(400, j.error());
    const std::string scope_text =
        j->contains("scope") ? oci::string_field(*j, "scope") : std::string("read");
    std::optional<Scope> scope = parse_scope(scope_text);
    if (!scope) return api_error(400, "scope must be read, push or admin");
    // A token never gets more than the one that made it.
    if (*scope > who.scope) {
      return api_error(
          403, str_cat("a ", scope_name(who.scope), " token cannot make a ", scope_text, " token"));
    }
    const json& days = (*j)["expires_in_days"];
    int64_t ttl = options_.default_token_ttl;
    if (!days.is_null()) {
      if (!days.is_number_integer() || days.get<int64_t>() < 1 || days.get<int64_t>() > 366) {
        return api_error(400, "expires_in_days must be a whole number from 1 to 366");
      }
      ttl = days.get<int64_t>() * 24 * 3600;
    }
    const json& description = (*j)["description"];
    if (!description.is_null() && !description.is_string()) {
      return api_error(400, "description must be a string");
    }
    NewToken t = make_access_token(
        who.user, *scope, description.is_string() ? description.get<std::string>() : "", now, ttl);
    if (Status s = store_.add_token(t.record); !s) return database_failed(s.error());
    (void)store_.add_audit(AuditEntry{0, now, who.user, "token.create", "", t.record.id, "",
                                      request.remote, std::string(scope_name(*scope))});
    return HttpResponse::json(201, json{{"id", t.record.id},
                                        {"token", t.token},
                                        {"scope", scope_name(*scope)},
                                        {"expires", t.record.expires}});
  }
  const std::string prefix = "/api/v1/tokens/";
  if (request.path.starts_with(prefix) && method == "DELETE") {
    const std::string id = request.path.substr(prefix.size());
    Result<bool> deleted = store_.delete_token(who.user, id);
    if (!deleted) return database_failed(deleted.error());
    if (!*deleted) return api_error(404, str_cat("no token ", id));
    (void)store_.add_audit(
        AuditEntry{0, now, who.user, "token.revoke", "", id, "", request.remote, ""});
    HttpResponse r;
    r.status = 204;
    return r;
  }
  return api_error(405, "GET or POST /api/v1/tokens, DELETE /api/v1/tokens/ID");
}

HttpResponse Hub::api_users(const HttpRequest& request, const Identity& who,
                            const std::string& body) {
  if (who.anonymous()) return need_login("log in as an administrator");
  if (!who.admin) return api_error(403, "managing users needs an administrator's admin token");
  if (request.method == "GET" && request.path == "/api/v1/users") {
    Result<std::vector<User>> users = store_.users();
    if (!users) return database_failed(users.error());
    json list = json::array();
    for (const User& u : *users) {
      list.push_back(json{{"name", u.name}, {"admin", u.admin}, {"created", u.created}});
    }
    return HttpResponse::json(200, json{{"users", list}});
  }
  if (request.method == "POST" && request.path == "/api/v1/users") {
    Result<json> j = object_body(body);
    if (!j) return api_error(400, j.error());
    const json& name = (*j)["name"];
    if (!name.is_string() || !is_account_name(name.get<std::string>())) {
      return api_error(400, "name: 2 to 39 lower-case letters, digits and single hyphens inside");
    }
    const json& admin_field = (*j)["admin"];
    if (!admin_field.is_null() && !admin_field.is_boolean()) {
      return api_error(400, "admin must be true or false");
    }
    const bool admin = admin_field.is_boolean() && admin_field.get<bool>();
    const int64_t now = unix_now();
    if (Status s = store_.add_user(name, admin, now); !s) return api_error(409, s.error());
    NewToken t = make_access_token(name, admin ? Scope::Admin : Scope::Push, "first token", now,
                                   options_.default_token_ttl);
    if (Status s = store_.add_token(t.record); !s) return database_failed(s.error());
    (void)store_.add_audit(AuditEntry{0, now, who.user, "user.add", "", name, "", request.remote,
                                      admin ? "admin" : ""});
    return HttpResponse::json(
        201,
        json{{"name", name}, {"admin", admin}, {"token", t.token}, {"expires", t.record.expires}});
  }
  return api_error(405, "GET or POST /api/v1/users");
}

HttpResponse Hub::api_orgs(const HttpRequest& request, const Identity& who, const std::string& rest,
                           const std::string& body) {
  const std::string& method = request.method;
  const int64_t now = unix_now();
  // rest: "", "/ORG", "/ORG/members/USER"
  const std::string tail = rest.empty() ? "" : rest.substr(1);
  const std::vector<std::string_view> parts = split(tail, '/');
  if (rest.empty() || rest == "/") {
    if (method != "POST") return api_error(405, "POST /api/v1/orgs makes an organisation");
    if (who.anonymous()) return need_login("log in to make an organisation");
    if (who.scope < Scope::Push) return api_error(403, "making an organisation needs a push token");
    Result<json> j = object_body(body);
    if (!j) return api_error(400, j.error());
    const json& name = (*j)["name"];
    if (!name.is_string() || !is_account_name(name.get<std::string>())) {
      return api_error(400, "name: 2 to 39 lower-case letters, digits and single hyphens inside");
    }
    if (Status s = store_.add_org(name, who.user, now); !s) return api_error(409, s.error());
    (void)store_.add_audit(
        AuditEntry{0, now, who.user, "org.create", "", name, "", request.remote, ""});
    return HttpResponse::json(201, json{{"name", name}, {"owner", who.user}});
  }
  const std::string org(parts[0]);
  Result<std::string> kind = store_.namespace_kind(org);
  if (!kind) return database_failed(kind.error());
  if (*kind != "org") return api_error(404, str_cat("no organisation ", org));
  Result<std::optional<Role>> role = namespace_role(store_, who, org);
  if (!role) return database_failed(role.error());
  if (parts.size() == 1) {
    if (method != "GET" && method != "HEAD") return api_error(405, "use GET");
    Result<std::vector<std::pair<std::string, Role>>> members = store_.members(org);
    if (!members) return database_failed(members.error());
    json list = json::array();
    // Who is in an organisation is for its members to see.
    if (role->has_value()) {
      for (const auto& [user, r] : *members)
        list.push_back(json{{"name", user}, {"role", role_name(r)}});
    }
    Result<std::vector<SearchHit>> repos = store_.namespace_repositories(org, who.viewer());
    if (!repos) return database_failed(repos.error());
    json repositories = json::array();
    for (const SearchHit& h : *repos) {
      repositories.push_back(extension_card(h.repository, h.latest, h.latest_tag));
    }
    return HttpResponse::json(
        200, json{{"name", org},
                  {"members", list},
                  {"your_role", role->has_value() ? json(role_name(**role)) : json(nullptr)},
                  {"repositories", repositories}});
  }
  if (parts.size() == 3 && parts[1] == "members") {
    const std::string user(parts[2]);
    if (who.anonymous()) return need_login("log in to manage an organisation");
    if (!role->has_value() || **role != Role::Owner || who.scope < Scope::Push) {
      return api_error(403, str_cat("only an owner of ", org, " (with a push token) may do that"));
    }
    Result<std::optional<User>> member = store_.user(user);
    if (!member) return database_failed(member.error());
    if (!member->has_value()) return api_error(404, str_cat("no user ", user));
    if (method == "PUT") {
      Result<json> j = object_body(body);
      if (!j) return api_error(400, j.error());
      std::optional<Role> new_role = parse_role(oci::string_field(*j, "role"));
      if (!new_role) return api_error(400, "role must be owner, maintainer or reader");
      if (Status s = store_.set_member(org, user, *new_role); !s) return database_failed(s.error());
      (void)store_.add_audit(AuditEntry{0, now, who.user, "org.member", org, user, "",
                                        request.remote, std::string(role_name(*new_role))});
      return HttpResponse::json(200, json{{"name", user}, {"role", role_name(*new_role)}});
    }
    if (method == "DELETE") {
      Result<std::vector<std::pair<std::string, Role>>> members = store_.members(org);
      if (!members) return database_failed(members.error());
      int owners = 0;
      bool removing_owner = false;
      for (const auto& [name, r] : *members) {
        if (r == Role::Owner) ++owners;
        if (name == user && r == Role::Owner) removing_owner = true;
      }
      if (removing_owner && owners == 1) {
        return api_error(409, str_cat(user, " is the last owner of ", org));
      }
      if (Status s = store_.remove_member(org, user); !s) return database_failed(s.error());
      (void)store_.add_audit(
          AuditEntry{0, now, who.user, "org.remove", org, user, "", request.remote, ""});
      HttpResponse r;
      r.status = 204;
      return r;
    }
    return api_error(405, "PUT or DELETE a member");
  }
  return api_error(404, str_cat("no such API: ", request.path));
}

HttpResponse Hub::api_audit(const HttpRequest& request, const Identity& who) {
  if (who.anonymous()) return need_login("log in to read the audit log");
  const std::string prefix = request.param("repository");
  const int64_t limit = int_param(request, "limit", 100, 1000);
  if (!who.admin) {
    // Owners read their namespace's log.
    const std::string ns = prefix.substr(0, prefix.find('/'));
    if (ns.empty()) {
      return api_error(403, "the whole log is for administrators: ask for ?repository=NS/...");
    }
    Result<std::optional<Role>> role = namespace_role(store_, who, ns);
    if (!role) return database_failed(role.error());
    if (!role->has_value() || **role != Role::Owner) {
      return api_error(403, str_cat("only owners of ", ns, " may read its audit log"));
    }
  }
  Result<std::vector<AuditEntry>> entries = store_.audit(prefix, limit);
  if (!entries) return database_failed(entries.error());
  json list = json::array();
  for (const AuditEntry& e : *entries) {
    list.push_back(json{{"id", e.id},
                        {"time", e.time},
                        {"actor", e.actor},
                        {"action", e.action},
                        {"repository", e.repository},
                        {"reference", e.reference},
                        {"digest", e.digest},
                        {"remote", e.remote},
                        {"detail", e.detail}});
  }
  return HttpResponse::json(200, json{{"entries", list}});
}

}  // namespace sluice::hub
