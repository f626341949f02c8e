#include "oci/reference.h"

#include "common/sha256.h"

#include <algorithm>

#include "common/strings.h"

namespace sluice::oci {
namespace {

bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) { return lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

// One path component of a repository name (OCI distribution spec):
// [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*. Rules out "..", empty parts and upper case.
bool valid_component(std::string_view c) {
  if (c.empty() || !lower_alnum(c.front()) || !lower_alnum(c.back())) return false;
  for (size_t i = 0; i < c.size(); ++i) {
    const char ch = c[i];
    if (lower_alnum(ch)) continue;
    if (ch == '.') {
      if (!lower_alnum(c[i + 1])) return false;  // one dot between alphanumerics
      continue;
    }
    if (ch == '_') {
      if (c[i + 1] == '_') ++i;  // "__" is one separator
      if (!lower_alnum(c[i + 1])) return false;
      continue;
    }
    if (ch == '-') {
      while (c[i + 1] == '-') ++i;  // any run of dashes
      if (!lower_alnum(c[i + 1])) return false;
      continue;
    }
    return false;
  }
  return true;
}

// [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > 128 || !(alnum(t[0]) || t[0] == '_')) return false;
  return std::all_of(t.begin(), t.end(),
                     [](char c) { return alnum(c) || c == '_' || c == '.' || c == '-'; });
}

// host, host:port, [v6]:port; letters, digits, dots, dashes.
bool valid_registry(std::string_view r) {
  if (r.empty()) return false;
  std::string_view host = r;
  std::string_view port;
  if (r.front() == '[') {
    const size_t close = r.find(']');
    if (close == std::string_view::npos) return false;
    host = r.substr(1, close - 1);
    const std::string_view rest = r.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return false;
    if (!rest.empty()) port = rest.substr(1);
    if (host.empty() || !std::all_of(host.begin(), host.end(),
                                     [](char c) { return alnum(c) || c == ':' || c == '.'; })) {
      return false;
    }
  } else {
    const size_t colon = r.find(':');
    if (colon != std::string_view::npos) {
      host = r.substr(0, colon);
      port = r.substr(colon + 1);
      if (port.empty()) return false;
    }
    if (host.empty() || !std::all_of(host.begin(), host.end(),
                                     [](char c) { return alnum(c) || c == '.' || c == '-'; })) {
      return false;
    }
  }
  if (!port.empty() && (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) {
                          return c >= '0' && c <= '9';
                        }))) {
    return false;
  }
  return true;
}

}  // namespace

bool is_sha256_digest(std::string_view d) {
  return d.substr(0, 7) == "sha256:" && is_sha256_hex(d.substr(7));
}

bool is_oci_uri(std::string_view text) { return text.substr(0, 6) == "oci://"; }

std::string Reference::to_string() const {
  std::string out = str_cat(registry, "/", repository);
  if (!tag.empty()) str_append(&out, ":", tag);
  if (!digest.empty()) str_append(&out, "@", digest);
  return out;
}

std::string api_host(std::string_view registry) {
  if (registry == "docker.io" || registry == "index.docker.io") return "registry-1.docker.io";
  return std::string(registry);
}

Result<Reference> parse_reference(std::string_view text) {
  const std::string_view original = text;
  if (is_oci_uri(text)) text.remove_prefix(6);
  auto fail = [&](std::string_view why) {
    return Error{str_cat("'", original, "' is not an OCI reference ", why,
                         " (expected [oci://]host[:port]/repository[:tag|@sha256:digest])")};
  };
  Reference ref;
  const size_t at = text.find('@');
  if (at != std::string_view::npos) {
    ref.digest = std::string(text.substr(at + 1));
    text = text.substr(0, at);
    if (!is_sha256_digest(ref.digest)) {
      return fail("(the digest must be sha256: and 64 lower-case hex digits)");
    }
  }
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    return fail("(it names no registry host)");
  }
  ref.registry = std::string(text.substr(0, slash));
  if (!valid_registry(ref.registry)) return fail(str_cat("(bad registry '", ref.registry, "')"));
  std::string_view path = text.substr(slash + 1);
  const size_t colon = path.rfind(':');
  if (colon != std::string_view::npos) {
    ref.tag = std::string(path.substr(colon + 1));
    path = path.substr(0, colon);
    if (!valid_tag(ref.tag)) {
      return fail(
          str_cat("(bad tag '", ref.tag, "': letters, digits, '_', '.', '-', at most 128)"));
    }
  }
  if (path.empty()) return fail("(it names no repository)");
  for (std::string_view rest = path;;) {
    const size_t next = rest.find('/');
    const std::string_view component = rest.substr(0, next);
    if (!valid_component(component)) {
      return fail(str_cat("(bad repository path component '", component,
                          "': lower-case letters and digits, separated by '.', '_', '__' or "
                          "dashes)"));
    }
    if (next == std::string_view::npos) break;
    rest = rest.substr(next + 1);
  }
  ref.repository = std::string(path);
  // Docker Hub's official images live under library/.
  if ((ref.registry == "docker.io" || ref.registry == "index.docker.io") &&
      ref.repository.find('/') == std::string::npos) {
    ref.repository = str_cat("library/", ref.repository);
  }
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = "latest";
  return ref;
}

}  // namespace sluice::oci
