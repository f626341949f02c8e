// An OCI image reference, `[oci://]host[:port]/repository[:tag][@sha256:digest]`, as Docker,
// skopeo and Istio's WasmPlugin spell it. The registry host is always written out: Sluice has no
// implicit default registry (`docker.io/...` names Docker Hub explicitly).
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace sluice::oci {

struct Reference {
  std::string registry;    // "host[:port]", as written (the key for credentials)
  std::string repository;  // "namespace/name", lower case, checked against the OCI grammar
  std::string tag;         // "latest" when neither a tag nor a digest is given
  std::string digest;      // "sha256:<64 hex>", or empty

  // By digest when there is one (a digest pins the content; a tag can move).
  std::string manifest_ref() const { return digest.empty() ? tag : digest; }
  // host/repository:tag, host/repository@digest or host/repository:tag@digest.
  std::string to_string() const;
};

// Parses a reference; the error says which part is wrong.
Result<Reference> parse_reference(std::string_view text);

// "sha256:" and 64 lower-case hex digits: the only digests Sluice names content by.
bool is_sha256_digest(std::string_view digest);

// True when `text` starts with "oci://" (how a configuration URI names an image).
bool is_oci_uri(std::string_view text);

// The host that serves the registry API for `registry`: Docker Hub's "docker.io" is served from
// "registry-1.docker.io"; every other registry serves itself.
std::string api_host(std::string_view registry);

}  // namespace sluice::oci
