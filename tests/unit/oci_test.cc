// The OCI pieces that need no registry: references, auth challenges, credential files, and
// finding the module inside each image variant (the registry exchanges are in e2e/wasm_oci).
#include <archive.h>
#include <archive_entry.h>

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include "common/sha256.h"
#include "oci/credentials.h"
#include "oci/reference.h"
#include "oci/registry_client.h"
#include "oci/wasm_image.h"

namespace sluice::oci {
namespace {

const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(OciReference, ParsesEveryForm) {
  auto r = parse_reference("oci://127.0.0.1:5000/ext/add-header:v1");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->repository, "ext/add-header");
  EXPECT_EQ(r->tag, "v1");
  EXPECT_EQ(r->digest, "");
  EXPECT_EQ(r->manifest_ref(), "v1");
  EXPECT_EQ(r->to_string(), "127.0.0.1:5000/ext/add-header:v1");

  r = parse_reference("ghcr.io/org/team/filter@" + kDigest);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->registry, "ghcr.io");
  EXPECT_EQ(r->repository, "org/team/filter");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->manifest_ref(), kDigest);

  r = parse_reference("localhost:5000/a.b_c__d--e:tag@" + kDigest);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->repository, "a.b_c__d--e");
  EXPECT_EQ(r->tag, "tag");
  EXPECT_EQ(r->manifest_ref(), kDigest) << "a digest wins over a tag";
  EXPECT_EQ(r->to_string(), "localhost:5000/a.b_c__d--e:tag@" + kDigest);

  r = parse_reference("registry.example.com/filter");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->tag, "latest");

  r = parse_reference("docker.io/istio-filter");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->repository, "library/istio-filter");
  EXPECT_EQ(api_host(r->registry), "registry-1.docker.io");

  r = parse_reference("[::1]:5000/x:1");
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->registry, "[::1]:5000");
}

TEST(OciReference, RejectsWhatIsNotAReference) {
  for (const std::string& bad : std::vector<std::string>{"",
                                                         "oci://",
                                                         "filter",
                                                         "oci:///x",
                                                         "host/",
                                                         "host/UPPER",
                                                         "host/../etc/passwd",
                                                         "host/a/../b",
                                                         "host/a//b",
                                                         "host/-a",
                                                         "host/a-",
                                                         "host/a:",
                                                         "host/a:-tag",
                                                         "host/a@sha256:abc",
                                                         "host/a@md5:" + std::string(32, 'a'),
                                                         "host/a@sha256:" + std::string(64, 'A'),
                                                         "ho st/a",
                                                         "host:/a",
                                                         "host:port/a",
                                                         "host:123456/a",
                                                         "host/a:" + std::string(129, 't'),
                                                         "host/a b"}) {
    auto r = parse_reference(bad);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' parsed as " << (r.ok() ? r->to_string() : "");
    if (!r.ok()) {
      EXPECT_NE(r.error().find("is not an OCI reference"), std::string::npos);
    }
  }
  auto r = parse_reference("host/a/../b");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("'..'"), std::string::npos) << r.error();
}

TEST(OciChallenge, ParsesBearerAndBasic) {
  auto c = parse_challenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example.com/token");
  EXPECT_EQ(c->params["service"], "registry.example.com");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull,push") << "commas inside quotes stay";

  c = parse_challenge(R"(Basic realm="basic-realm")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params["realm"], "basic-realm");

  c = parse_challenge(R"(bearer Realm=http://x/token , Service = "a\"b")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->params["realm"], "http://x/token");
  EXPECT_EQ(c->params["service"], "a\"b");
  EXPECT_FALSE(parse_challenge("   "));
}

TEST(OciCredentials, ReadsDockerConfigForms) {
  // "auth" is base64("alice:s3cr:et"); Docker Hub's key is a URL.
  auto store = CredentialStore::parse(R"({
    "auths": {
      "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcjpldA=="},
      "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
      "helper.example.com": {}
    },
    "credHelpers": {"helper.example.com": "ecr-login"}
  })",
                                      "test");
  ASSERT_TRUE(store.ok()) << store.error();
  auto alice = store->find("127.0.0.1:5000");
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice->username, "alice");
  EXPECT_EQ(alice->password, "s3cr:et") << "only the first colon separates";
  auto bob = store->find("docker.io");
  ASSERT_TRUE(bob);
  EXPECT_EQ(bob->username, "bob");
  EXPECT_FALSE(store->find("127.0.0.1:5001"));
  EXPECT_FALSE(store->find("helper.example.com"));
  EXPECT_NE(store->helper_note("helper.example.com").find("docker-credential-ecr-login"),
            std::string::npos);
  EXPECT_EQ(store->helper_note("127.0.0.1:5000"), "");
}

TEST(OciCredentials, BadFilesAreErrors) {
  EXPECT_FALSE(CredentialStore::parse("not json", "f").ok());
  EXPECT_FALSE(CredentialStore::parse(R"({"auths": []})", "f").ok());
  auto r = CredentialStore::parse(R"({"auths": {"h": {"auth": "bm9jb2xvbg=="}}})", "f");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("user:password"), std::string::npos) << r.error();
  EXPECT_FALSE(CredentialStore::parse(R"({"auths": {"h": {"auth": "!!"}}})", "f").ok());
  auto missing = CredentialStore::load("/nonexistent/config.json");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("/nonexistent/config.json"), std::string::npos);
  EXPECT_TRUE(CredentialStore::parse("{}", "f")->empty());
}

std::string layer_json(std::string_view type, std::string_view digest) {
  return "{\"mediaType\":\"" + std::string(type) + "\",\"digest\":\"" + std::string(digest) +
         "\",\"size\":1}";
}
std::string manifest_json(const std::vector<std::string>& layers) {
  std::string out =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("config":{"mediaType":"application/vnd.module.wasm.config.v1+json","digest":")" +
      kDigest + R"(","size":2},"layers":[)";
  for (size_t i = 0; i < layers.size(); ++i) out += (i ? "," : "") + layers[i];
  return out + "]}";
}

TEST(OciWasmImage, FindsTheModuleLayerOfEachVariant) {
  const std::string d1 = "sha256:" + std::string(64, '1');
  const std::string d2 = "sha256:" + std::string(64, '2');
  auto oci = find_wasm_layer(manifest_json({layer_json(kWasmLayer, d1)}));
  ASSERT_TRUE(oci.ok()) << oci.error();
  EXPECT_EQ(oci->variant, "oci");
  EXPECT_FALSE(oci->tar);
  EXPECT_EQ(oci->digest, d1);

  auto artifact = find_wasm_layer(manifest_json({layer_json(kWasmArtifactLayer, d2)}));
  ASSERT_TRUE(artifact.ok()) << artifact.error();
  EXPECT_EQ(artifact->variant, "oci");

  auto compat = find_wasm_layer(
      manifest_json({layer_json("application/vnd.docker.image.rootfs.diff.tar.gzip", d1),
                     layer_json("application/vnd.oci.image.layer.v1.tar+gzip", d2)}));
  ASSERT_TRUE(compat.ok()) << compat.error();
  EXPECT_EQ(compat->variant, "compat");
  EXPECT_TRUE(compat->tar);
  EXPECT_EQ(compat->digest, d2) << "the last layer";

  auto none = find_wasm_layer(manifest_json({layer_json("application/json", d1)}));
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().find("application/json"), std::string::npos) << none.error();

  auto two =
      find_wasm_layer(manifest_json({layer_json(kWasmLayer, d1), layer_json(kWasmLayer, d2)}));
  EXPECT_FALSE(two.ok());
  EXPECT_FALSE(find_wasm_layer(manifest_json({layer_json(kWasmLayer, "sha256:short")})).ok());
  EXPECT_FALSE(find_wasm_layer(manifest_json({})).ok());
  EXPECT_FALSE(find_wasm_layer(R"({"schemaVersion":1,"fsLayers":[]})").ok());
  EXPECT_FALSE(find_wasm_layer("[]").ok());
}

// A registry may send fields of the wrong type: an error, never an exception (one thrown on the
// proxy's image thread would end the process).
TEST(OciWasmImage, FieldsOfTheWrongTypeAreErrors) {
  const std::string d = "sha256:" + std::string(64, '1');
  EXPECT_FALSE(find_wasm_layer(R"({"schemaVersion":"2","layers":[]})").ok());
  EXPECT_FALSE(
      find_wasm_layer(R"({"schemaVersion":2,"layers":[{"mediaType":7,"digest":")" + d + R"("}]})")
          .ok());
  EXPECT_FALSE(find_wasm_layer(R"({"schemaVersion":2,"layers":[{"digest":["x"]}]})").ok());
  EXPECT_FALSE(find_wasm_layer(R"({"schemaVersion":2,"layers":[3]})").ok());
  auto index = pick_from_index(R"({"manifests":[{"digest":")" + d + R"(","platform":"wasm"}]})");
  ASSERT_TRUE(index.ok()) << index.error();
  EXPECT_EQ(*index, d);
  EXPECT_FALSE(pick_from_index(R"({"manifests":[{"digest":5,"platform":{"os":1}}]})").ok());
  EXPECT_FALSE(
      find_wasm_layer(manifest_json({layer_json(kWasmLayer, "sha256:" + std::string(64, 'G'))}))
          .ok())
      << "digests are lower-case hex";
}

TEST(OciWasmImage, PicksTheWasmPlatformFromAnIndex) {
  const std::string d1 = "sha256:" + std::string(64, '1');
  const std::string d2 = "sha256:" + std::string(64, '2');
  const std::string index = R"({"schemaVersion":2,"manifests":[)"
                            R"({"digest":")" +
                            d1 +
                            R"(","platform":{"os":"linux","architecture":"amd64"}},)"
                            R"({"digest":")" +
                            d2 + R"(","platform":{"os":"wasip1","architecture":"wasm"}}]})";
  auto picked = pick_from_index(index);
  ASSERT_TRUE(picked.ok()) << picked.error();
  EXPECT_EQ(*picked, d2);
  auto only = pick_from_index(R"({"manifests":[{"digest":")" + d1 + R"("}]})");
  ASSERT_TRUE(only.ok());
  EXPECT_EQ(*only, d1);
  EXPECT_FALSE(
      pick_from_index(R"({"manifests":[{"digest":")" + d1 + R"("},{"digest":")" + d2 + R"("}]})")
          .ok());
  EXPECT_FALSE(pick_from_index(R"({"manifests":[]})").ok());
}

// A tar layer built with libarchive, gzip-compressed or not.
std::string make_tar(const std::vector<std::pair<std::string, std::string>>& files, bool gzip) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* user, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& [name, content] : files) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_size(e, static_cast<la_int64_t>(content.size()));
    archive_entry_set_filetype(e, name.back() == '/' ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_write_header(a, e);
    archive_write_data(a, content.data(), content.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

TEST(OciWasmImage, ExtractsPluginWasmFromATarLayer) {
  const std::string module = std::string("\0asm\1\0\0\0", 8) + "payload";
  auto gz = extract_plugin_wasm(
      make_tar({{"README", "x"}, {"./plugin.wasm", module}}, /*gzip=*/true), 1 << 20);
  ASSERT_TRUE(gz.ok()) << gz.error();
  EXPECT_EQ(*gz, module);
  auto plain = extract_plugin_wasm(make_tar({{"plugin.wasm", module}}, false), 1 << 20);
  ASSERT_TRUE(plain.ok()) << plain.error();
  EXPECT_EQ(*plain, module);

  auto elsewhere =
      extract_plugin_wasm(make_tar({{"lib/", ""}, {"lib/plugin.wasm", module}}, true), 1 << 20);
  ASSERT_FALSE(elsewhere.ok());
  EXPECT_NE(elsewhere.error().find("lib/plugin.wasm"), std::string::npos) << elsewhere.error();

  auto big = extract_plugin_wasm(make_tar({{"plugin.wasm", module}}, true), 8);
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.error().find("allowed"), std::string::npos) << big.error();

  EXPECT_FALSE(extract_plugin_wasm("definitely not a tar archive", 1 << 20).ok());
  // Incompressible content, so that half the stream is half the file. (The blob's digest is
  // checked before this; a cut-off layer is the registry's own broken image.)
  std::string noise(50000, '\0');
  std::mt19937 random(42);
  for (char& c : noise) c = static_cast<char>(random());
  const std::string truncated = make_tar({{"plugin.wasm", noise}}, true);
  EXPECT_FALSE(extract_plugin_wasm(truncated.substr(0, truncated.size() / 2), 1 << 20).ok());
}

// A gzip stream whose tar libarchive rejects without a message (found by oci_fuzz): an error,
// not a null pointer in it.
TEST(OciWasmImage, ATarErrorWithoutAMessageIsStillAnError) {
  std::ifstream in(std::string(SLUICE_SOURCE_DIR) +
                       "/tests/fuzz/regressions/oci_fuzz/crash-tar-error-without-message",
                   std::ios::binary);
  ASSERT_TRUE(in);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string layer = bytes.str().substr(1);  // byte 0 chose the parser
  auto r = extract_plugin_wasm(layer, 4096);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("the image's last layer"), std::string::npos) << r.error();
}

TEST(Sha256, KnownVector) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace sluice::oci
