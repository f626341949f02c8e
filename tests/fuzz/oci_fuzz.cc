// libFuzzer target: what Sluice reads from OCI registries and users, none of which it controls:
// image references, WWW-Authenticate challenges, image manifests and indexes, tar layers (gzip
// or not) and Docker credential files. Byte 0 picks the parser; the rest is its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "oci/credentials.h"
#include "oci/reference.h"
#include "oci/registry_client.h"
#include "oci/wasm_image.h"

using namespace sluice::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 6) {
    case 0: {
      auto ref = parse_reference(input);
      if (!ref) break;
      // What a reference prints parses back to itself.
      auto again = parse_reference(ref->to_string());
      FUZZ_CHECK(again.ok(), "'%s' does not parse back", ref->to_string().c_str());
      FUZZ_CHECK(again->registry == ref->registry && again->repository == ref->repository &&
                     again->tag == ref->tag && again->digest == ref->digest,
                 "'%s' parses back differently", ref->to_string().c_str());
      FUZZ_CHECK(ref->repository.find("..") == std::string::npos, "'..' in a repository");
      break;
    }
    case 1:
      (void)parse_challenge(input);
      break;
    case 2: {
      auto layer = find_wasm_layer(input);
      if (layer)
        FUZZ_CHECK(layer->digest.size() == 71, "a layer digest of %zu chars", layer->digest.size());
      break;
    }
    case 3: {
      auto chosen = pick_from_index(input);
      if (chosen)
        FUZZ_CHECK(chosen->size() == 71, "a manifest digest of %zu chars", chosen->size());
      break;
    }
    case 4: {
      auto code = extract_plugin_wasm(input, 4096);
      if (code) FUZZ_CHECK(code->size() <= 4096, "%zu bytes past a 4096-byte limit", code->size());
      break;
    }
    case 5: {
      auto store = CredentialStore::parse(input, "fuzz");
      if (store) (void)store->find("127.0.0.1:5000");
      break;
    }
  }
  return 0;
}
