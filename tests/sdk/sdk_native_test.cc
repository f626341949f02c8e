// The SDK's native build, end to end against a fake host: the example extensions and the probe
// extension are linked in as null plugins, registered at static-init time, and driven through
// their SluiceNullPlugin exports exactly as the null runtime does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>

#include "dispatch.h"  // the SDK's internal side of Sluice's own foreign functions
#include "fake_host.h"
#include "sluice/sdk.h"  // the probe extension's copy of the SDK (SLUICE_SDK_NS=ext_sdk_probe)
#include "wasm/abi/sluice_functions.h"
#include "word_string.h"  // the wasm build's memcmp and memcpy

namespace {

using fakehost::host;
using fakehost::Vm;

constexpr uint32_t kRoot = 1;
constexpr uint32_t kStream = 2;
constexpr int kRequestHeaders = 0, kResponseHeaders = 2;
constexpr int kRequestBody = 0, kResponseBody = 1;

class SdkNativeTest : public ::testing::Test {
 protected:
  void SetUp() override { fakehost::reset(); }

  static const SluiceNullPlugin* plugin(const std::string& name) {
    const SluiceNullPlugin* p = fakehost::find_plugin(name);
    EXPECT_NE(p, nullptr) << name << " is not registered";
    return p;
  }
};

// ---- SDK pieces ---------------------------------------------------------------------------

TEST(SdkPieces, PairsMatchTheAbiLayout) {
  // The ABI facts' example: {a:"1", b:"22"} is 29 bytes.
  const std::string expected(
      "\x02\0\0\0\x01\0\0\0\x01\0\0\0\x01\0\0\0\x02\0\0\0a\0"
      "1\0b\0"
      "22\0",
      29);
  sluice::Pairs pairs = {{"a", "1"}, {"b", "22"}};
  EXPECT_EQ(sluice::serialize_pairs(pairs), expected);
  EXPECT_EQ(fakehost::encode_pairs({{"a", "1"}, {"b", "22"}}), expected);
  EXPECT_EQ(sluice::parse_pairs(expected), pairs);
  EXPECT_EQ(sluice::parse_pairs(""), sluice::Pairs{});
  EXPECT_EQ(sluice::serialize_pairs({}), std::string("\0\0\0\0", 4));
}

TEST(SdkPieces, ParsePairsRejectsInconsistentBlobs) {
  std::string good = sluice::serialize_pairs({{"key", "value"}});
  EXPECT_FALSE(sluice::parse_pairs(good.substr(0, good.size() - 1)));  // truncated
  EXPECT_FALSE(sluice::parse_pairs(good + "x"));                       // trailing byte
  std::string no_nul = good;
  no_nul[4 + 8 + 3] = 'x';  // the NUL after the key
  EXPECT_FALSE(sluice::parse_pairs(no_nul));
  std::string huge_count = good;
  huge_count[3] = '\x7f';
  EXPECT_FALSE(sluice::parse_pairs(huge_count));
  EXPECT_FALSE(sluice::parse_pairs("ab"));
}

TEST(SdkPieces, Format) {
  EXPECT_EQ(sluice::format("a={} b={} c={}", 1, "two", std::string("3")), "a=1 b=two c=3");
  EXPECT_EQ(sluice::format("{} {} {} {}", true, 'x', -5, 18446744073709551615ull),
            "true x -5 18446744073709551615");
  EXPECT_EQ(sluice::format("{{}} {}", 2.5), "{} 2.5");
  EXPECT_EQ(sluice::format("missing {} {}", 1), "missing 1 {}");
  EXPECT_EQ(sluice::format("extra", 1, 2), "extra");
  EXPECT_EQ(sluice::format("{}", std::string_view("sv")), "sv");
  EXPECT_EQ(sluice::format("{}", sluice::LogLevel::Warn), "3");
}

TEST(SdkPieces, KeyValueLinesAndPropertyPaths) {
  auto kv = sluice::parse_key_value_lines("# comment\n a = 1 \n\nflag\r\nb=x=y");
  ASSERT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv[0], (std::pair<std::string, std::string>{"a", "1"}));
  EXPECT_EQ(kv[1], (std::pair<std::string, std::string>{"flag", ""}));
  EXPECT_EQ(kv[2], (std::pair<std::string, std::string>{"b", "x=y"}));
  EXPECT_EQ(sluice::join_property_path({"request", "path"}), std::string("request\0path", 12));
  EXPECT_EQ(sluice::join_property_path({"plugin_root_id"}), "plugin_root_id");
}

// The wasm build's memcmp orders as the C library's does: every length up to six words, the
// first difference at every position, bytes on both sides of 0x80 (the comparison is unsigned).
TEST(SdkPieces, WordMemcmpOrdersAsMemcmp) {
  const auto sign = [](int v) { return (v > 0) - (v < 0); };
  std::mt19937 random(7);
  for (size_t n = 0; n <= 48; ++n) {
    std::string a(n, '\0');
    for (char& c : a) c = static_cast<char>(random());
    EXPECT_EQ(sluice_sdk_libc::word_memcmp(a.data(), a.data(), n), 0) << n;
    for (size_t at = 0; at < n; ++at) {
      for (const unsigned char other : {0x00, 0x7f, 0x80, 0xff}) {
        std::string b = a;
        b[at] = static_cast<char>(other);
        // Later bytes differ too: only the first difference may decide.
        for (size_t k = at + 1; k < n; ++k) b[k] = static_cast<char>(~b[k]);
        EXPECT_EQ(sign(sluice_sdk_libc::word_memcmp(a.data(), b.data(), n)),
                  sign(std::memcmp(a.data(), b.data(), n)))
            << "n " << n << " at " << at << " byte " << int(other);
        EXPECT_EQ(sign(sluice_sdk_libc::word_memcmp(b.data(), a.data(), n)),
                  sign(std::memcmp(b.data(), a.data(), n)));
      }
    }
  }
  // Unaligned starts.
  const std::string text = "0123456789abcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(sluice_sdk_libc::word_memcmp(text.data() + 1, "123456789abcdefgh", 17), 0);
  EXPECT_LT(sluice_sdk_libc::word_memcmp(text.data() + 3, "3456789abcdefgz", 15), 0);
}

// The wasm build's memcpy copies exactly the bytes asked for, at any length and alignment.
TEST(SdkPieces, WordMemcpyCopiesEveryLength) {
  std::mt19937 random(11);
  std::string source(200, '\0');
  for (char& c : source) c = static_cast<char>(random());
  for (size_t n = 0; n <= 100; ++n) {
    for (size_t from : {0, 1, 7}) {
      for (size_t to : {0, 3, 8}) {
        std::string target(128, '#');
        EXPECT_EQ(sluice_sdk_libc::word_memcpy(target.data() + to, source.data() + from, n),
                  target.data() + to);
        std::string expected(128, '#');
        expected.replace(to, n, source.substr(from, n));
        EXPECT_EQ(target, expected) << "n " << n << " from " << from << " to " << to;
      }
    }
  }
}

// ---- registration and exports ---------------------------------------------------------------

TEST_F(SdkNativeTest, ExamplesRegisterWithEveryExport) {
  for (const char* name :
       {"sluice.add_header", "sluice.local_reply", "sluice.body_rewrite", "sluice.sdk_probe"}) {
    const SluiceNullPlugin* p = plugin(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->abi_version, SLUICE_NULL_PLUGIN_ABI_VERSION);
    Vm vm(p);
    for (const char* e : {"proxy_abi_version_0_2_1", "malloc", "proxy_on_context_create",
                          "proxy_on_vm_start", "proxy_on_configure", "proxy_on_request_headers",
                          "proxy_on_response_body", "proxy_on_done", "proxy_on_log",
                          "proxy_on_delete", "proxy_on_http_call_response", "proxy_on_tick"}) {
      EXPECT_TRUE(vm.has(e)) << name << " lacks " << e;
    }
    for (uint32_t i = 0; i < p->num_exports; ++i) {
      std::string sig = p->exports[i].signature;
      EXPECT_EQ(sig.find_first_not_of("iI:"), std::string::npos) << sig;
      EXPECT_EQ(std::count(sig.begin(), sig.end(), ':'), 1) << sig;
    }
    // Sluice's fused exports, under the host's names and types.
    for (uint32_t i = 0; i < p->num_exports; ++i) {
      const std::string_view export_name = p->exports[i].name;
      if (export_name == sluice::wasm::sluice_functions::kOnStreamStart) {
        EXPECT_STREQ(p->exports[i].signature, "iiii:i");
      } else if (export_name == sluice::wasm::sluice_functions::kOnStreamEnd ||
                 export_name == sluice::wasm::sluice_functions::kOnDeleteBatch) {
        EXPECT_STREQ(p->exports[i].signature, "i:");
      }
    }
    EXPECT_TRUE(vm.has(std::string(sluice::wasm::sluice_functions::kOnStreamStart))) << name;
    EXPECT_TRUE(vm.has(std::string(sluice::wasm::sluice_functions::kOnStreamEnd))) << name;
    EXPECT_TRUE(vm.has(std::string(sluice::wasm::sluice_functions::kOnDeleteBatch))) << name;
    // The headers callbacks take the 0.2.x end_of_stream argument.
    for (uint32_t i = 0; i < p->num_exports; ++i) {
      if (std::string(p->exports[i].name) == "proxy_on_request_headers") {
        EXPECT_STREQ(p->exports[i].signature, "iii:i");
      }
    }
  }
}

TEST_F(SdkNativeTest, MallocReturnsUsableHostMemory) {
  Vm vm(plugin("sluice.add_header"));
  uint64_t p = vm.call("malloc", {64});
  ASSERT_NE(p, 0u);
  std::memset(reinterpret_cast<void*>(p), 0xab, 64);
  ::free(reinterpret_cast<void*>(p));
}

// ---- add_header -----------------------------------------------------------------------------

TEST_F(SdkNativeTest, AddHeaderAppliesConfiguredOperations) {
  Vm vm(plugin("sluice.add_header"));
  ASSERT_EQ(vm.start_root(kRoot, "add_header", "",
                          "request.add.x-added = yes\n"
                          "request.set.x-replaced = new\n"
                          "request.remove.x-internal\n"
                          "response.set.server = sluice\n"
                          "response.remove.x-powered-by =\n"),
            1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {
      {":path", "/"}, {"x-added", "old"}, {"x-replaced", "old"}, {"x-internal", "secret"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 4, 1}), 0u);
  fakehost::Pairs expected = {
      {":path", "/"}, {"x-added", "old"}, {"x-added", "yes"}, {"x-replaced", "new"}};
  EXPECT_EQ(host().maps[kRequestHeaders], expected);

  host().maps[kResponseHeaders] = {{":status", "200"}, {"x-powered-by", "php"}, {"server", "x"}};
  EXPECT_EQ(vm.call("proxy_on_response_headers", {kStream, 3, 0}), 0u);
  expected = {{":status", "200"}, {"server", "sluice"}};
  EXPECT_EQ(host().maps[kResponseHeaders], expected);

  EXPECT_EQ(host().metric_values[host().metric_ids["add_header.requests"]], 1);
  vm.call("proxy_on_log", {kStream});
  EXPECT_EQ(vm.call("proxy_on_done", {kStream}), 1u);
  vm.call("proxy_on_delete", {kStream});
}

TEST_F(SdkNativeTest, AddHeaderRejectsBadConfiguration) {
  Vm vm(plugin("sluice.add_header"));
  EXPECT_EQ(vm.start_root(kRoot, "add_header", "", "request.append.x = 1"), 0u);
  EXPECT_TRUE(host().logged("bad configuration key 'request.append.x'"));
  Vm vm2(plugin("sluice.add_header"));
  EXPECT_EQ(vm2.start_root(kRoot, "add_header", "", "upstream.add.x = 1"), 0u);
}

TEST_F(SdkNativeTest, EachVmHasItsOwnContexts) {
  const SluiceNullPlugin* p = plugin("sluice.add_header");
  Vm a(p), b(p);
  ASSERT_EQ(a.start_root(kRoot, "add_header", "", "request.set.x-vm = a"), 1u);
  ASSERT_EQ(b.start_root(kRoot, "add_header", "", "request.set.x-vm = b"), 1u);
  a.call("proxy_on_context_create", {kStream, kRoot});
  b.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {};
  b.call("proxy_on_request_headers", {kStream, 0, 1});
  EXPECT_EQ(host().header(kRequestHeaders, "x-vm"), "b");
  a.call("proxy_on_request_headers", {kStream, 0, 1});
  EXPECT_EQ(host().header(kRequestHeaders, "x-vm"), "a");
}

TEST_F(SdkNativeTest, EmptyRootIdUsesTheOnlyRegistration) {
  Vm vm(plugin("sluice.add_header"));
  ASSERT_EQ(vm.start_root(kRoot, "", "", "request.set.x-a = 1"), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  vm.call("proxy_on_request_headers", {kStream, 0, 1});
  EXPECT_EQ(host().header(kRequestHeaders, "x-a"), "1");
}

// ---- local_reply ----------------------------------------------------------------------------

TEST_F(SdkNativeTest, LocalReplyAnswersTheConfiguredPath) {
  Vm vm(plugin("sluice.local_reply"));
  ASSERT_EQ(vm.start_root(kRoot, "local_reply", "",
                          "path = /hello\nstatus = 418\nbody = short\\nand stout\n"
                          "header.content-type = text/plain\n"),
            1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{":path", "/hello?x=1"}, {":method", "GET"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 2, 1}), 1u);  // StopIteration
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->status, 418u);
  EXPECT_EQ(host().local_reply->body, "short\nand stout");
  EXPECT_EQ(host().local_reply->details, "local_reply_extension");
  EXPECT_EQ(host().local_reply->grpc_status, -1);
  EXPECT_EQ(host().local_reply->headers, (fakehost::Pairs{{"content-type", "text/plain"}}));

  host().local_reply.reset();
  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  host().maps[kRequestHeaders] = {{":path", "/hello/other"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream + 1, 1, 1}), 0u);
  EXPECT_FALSE(host().local_reply);
}

TEST_F(SdkNativeTest, LocalReplyPrefixAndConfigErrors) {
  Vm vm(plugin("sluice.local_reply"));
  ASSERT_EQ(vm.start_root(kRoot, "local_reply", "", "prefix = /static/\nbody = s"), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{":path", "/static/a.css"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 1, 1}), 1u);
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->status, 200u);

  for (const char* bad : {"status = 200", "path = /x\nstatus = 2000", "path = /x\ncolor = red"}) {
    Vm v(plugin("sluice.local_reply"));
    EXPECT_EQ(v.start_root(kRoot, "local_reply", "", bad), 0u) << bad;
  }
}

// ---- body_rewrite ---------------------------------------------------------------------------

TEST_F(SdkNativeTest, BodyRewriteBuffersThenRewrites) {
  Vm vm(plugin("sluice.body_rewrite"));
  ASSERT_EQ(vm.start_root(kRoot, "body_rewrite", "", "from = hello\nto = goodbye"), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kResponseHeaders] = {{":status", "200"}, {"content-length", "22"}};
  EXPECT_EQ(vm.call("proxy_on_response_headers", {kStream, 2, 0}), 0u);
  EXPECT_FALSE(host().header(kResponseHeaders, "content-length"));

  host().buffer_available[kResponseBody] = true;
  host().buffers[kResponseBody] = "hello wor";
  EXPECT_EQ(vm.call("proxy_on_response_body", {kStream, 9, 0}), 1u);  // StopIterationAndBuffer
  host().buffers[kResponseBody] = "hello world, hello you";
  EXPECT_EQ(vm.call("proxy_on_response_body", {kStream, 22, 1}), 0u);
  EXPECT_EQ(host().buffers[kResponseBody], "goodbye world, goodbye you");
  EXPECT_EQ(host().metric_values[host().metric_ids["body_rewrite.replacements"]], 2);
}

TEST_F(SdkNativeTest, BodyRewriteSkipsEncodedBodiesAndHandlesTrailers) {
  Vm vm(plugin("sluice.body_rewrite"));
  ASSERT_EQ(vm.start_root(kRoot, "body_rewrite", "", "from = a\nto = bb"), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kResponseHeaders] = {{"content-encoding", "gzip"}, {"content-length", "3"}};
  vm.call("proxy_on_response_headers", {kStream, 2, 0});
  EXPECT_TRUE(host().header(kResponseHeaders, "content-length"));
  host().buffer_available[kResponseBody] = true;
  host().buffers[kResponseBody] = "aaa";
  EXPECT_EQ(vm.call("proxy_on_response_body", {kStream, 3, 0}), 0u);
  EXPECT_EQ(host().buffers[kResponseBody], "aaa");

  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  host().maps[kResponseHeaders] = {};
  vm.call("proxy_on_response_headers", {kStream + 1, 0, 0});
  EXPECT_EQ(vm.call("proxy_on_response_body", {kStream + 1, 3, 0}), 1u);
  vm.call("proxy_on_response_trailers", {kStream + 1, 1});
  EXPECT_EQ(host().buffers[kResponseBody], "bbbbbb");
  (void)kRequestBody;
}

// ---- probe: the rest of the SDK ---------------------------------------------------------------

TEST_F(SdkNativeTest, RootIdSelectsTheRegistration) {
  Vm vm(plugin("sluice.sdk_probe"));
  EXPECT_EQ(vm.start_root(kRoot, "probe_other", "", ""), 1u);
  EXPECT_TRUE(host().logged("other: vm_start root_id=probe_other"));
  // Two registrations and no match: the VM refuses to start.
  Vm vm2(plugin("sluice.sdk_probe"));
  EXPECT_EQ(vm2.start_root(kRoot, "nope", "", ""), 0u);
  EXPECT_TRUE(host().logged("no context factory registered for root_id 'nope'"));
  // A root without a stream factory: stream callbacks are no-ops that continue.
  vm.call("proxy_on_context_create", {kStream, kRoot});
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 0, 1}), 0u);
  vm.call("proxy_on_delete", {kStream});
}

TEST_F(SdkNativeTest, VmAndPluginConfiguration) {
  Vm vm(plugin("sluice.sdk_probe"));
  EXPECT_EQ(vm.start_root(kRoot, "probe", "vmconf", "tick"), 1u);
  EXPECT_TRUE(host().logged("probe: vm_start size=6 config=vmconf"));
  EXPECT_EQ(host().tick_period, 10u);
  Vm fail(plugin("sluice.sdk_probe"));
  EXPECT_EQ(fail.start_root(kRoot, "probe", "fail", ""), 0u);
  Vm reject(plugin("sluice.sdk_probe"));
  EXPECT_EQ(reject.start_root(kRoot, "probe", "", "reject"), 0u);
}

TEST_F(SdkNativeTest, DeferredRootDone) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_tick", {kRoot});
  EXPECT_TRUE(host().logged("probe: tick 1"));
  EXPECT_EQ(vm.call("proxy_on_done", {kRoot}), 0u);
  EXPECT_EQ(host().done_calls, 0);
  vm.call("proxy_on_tick", {kRoot});
  EXPECT_EQ(host().done_calls, 1);
  vm.call("proxy_on_delete", {kRoot});
  vm.call("proxy_on_tick", {kRoot});  // gone: ignored
  EXPECT_FALSE(host().logged("probe: tick 3"));
}

// sluice_on_stream_start is on_context_create then on_request_headers (its answer returned);
// sluice_on_stream_end is on_log then on_delete.
TEST_F(SdkNativeTest, FusedExportsDoWhatTheirHalvesDo) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  host().maps[kRequestHeaders] = {{"x-probe", "http_call"}};
  EXPECT_EQ(vm.call("sluice_on_stream_start", {kStream, kRoot, 1, 1}), 1u);  // paused for it
  ASSERT_EQ(host().http_calls.size(), 1u);
  vm.call("sluice_on_stream_end", {kStream});
  EXPECT_TRUE(host().logged("probe: log " + std::to_string(kStream)));
  EXPECT_TRUE(host().logged("probe: delete " + std::to_string(kStream)));
  EXPECT_FALSE(host().logged("probe: done " + std::to_string(kStream)));
  // Deleted: the callout's answer finds no stream.
  host().maps[6] = {{":status", "200"}};
  vm.call("proxy_on_http_call_response", {kRoot, host().http_calls[0].token, 1, 0, 0});
  EXPECT_FALSE(host().local_reply);

  // add_header through the fused start edits the request as the two calls do.
  Vm add(plugin("sluice.add_header"));
  ASSERT_EQ(add.start_root(kRoot, "add_header", "", "request.set.x-added = yes"), 1u);
  host().maps[kRequestHeaders] = {{":path", "/"}};
  EXPECT_EQ(add.call("sluice_on_stream_start", {kStream, kRoot, 1, 1}), 0u);
  EXPECT_EQ(host().header(kRequestHeaders, "x-added"), "yes");
  add.call("sluice_on_stream_end", {kStream});
}

// With its on_delete deferred, a stream the host has ended may still be in the SDK's map when a
// callout it made answers: the host refuses it as the effective context, and the SDK drops the
// answer as it does for a deleted stream.
TEST_F(SdkNativeTest, AnAnswerForAStreamTheHostEndedIsDropped) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  host().maps[6] = {{":status", "200"}};
  for (const bool ended : {true, false}) {  // then, still alive for the host, it gets there
    const uint64_t stream = ended ? kStream : kStream + 1;
    vm.call("proxy_on_context_create", {stream, kRoot});
    host().maps[kRequestHeaders] = {{"x-probe", "http_call"}};
    EXPECT_EQ(vm.call("proxy_on_request_headers", {stream, 1, 1}), 1u);  // paused for it
    ASSERT_FALSE(host().http_calls.empty());
    if (ended) host().ended_contexts.insert(stream);
    vm.call("proxy_on_http_call_response", {kRoot, host().http_calls.back().token, 1, 0, 0});
    EXPECT_EQ(host().local_reply.has_value(), !ended);
  }
}

// A root that makes both kinds (as telemetry's): the fused start makes an HTTP stream at once,
// the fused end finds either kind.
TEST_F(SdkNativeTest, FusedExportsUnderARootOfBothKinds) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe_both", "", ""), 1u);
  host().maps[kRequestHeaders] = {{"x-probe", "http_call"}};
  EXPECT_EQ(vm.call("sluice_on_stream_start", {kStream, kRoot, 1, 1}), 1u);  // an HTTP stream
  EXPECT_EQ(host().http_calls.size(), 1u);
  vm.call("sluice_on_stream_end", {kStream});
  EXPECT_TRUE(host().logged("probe: log " + std::to_string(kStream)));
  EXPECT_TRUE(host().logged("probe: delete " + std::to_string(kStream)));
  // A connection under the same root, ended through the fused export as well.
  const uint64_t conn = kStream + 1;
  vm.call("proxy_on_context_create", {conn, kRoot});
  EXPECT_EQ(vm.call("proxy_on_new_connection", {conn}), 0u);
  EXPECT_TRUE(host().logged("probe: connection " + std::to_string(conn)));
  vm.call("sluice_on_stream_end", {conn});
  EXPECT_TRUE(host().logged("probe: connection log " + std::to_string(conn)));
  EXPECT_TRUE(host().logged("probe: connection delete " + std::to_string(conn)));
  EXPECT_FALSE(host().logged("probe: delete " + std::to_string(conn)));
  // A second stream ends cleanly too, and callbacks for the ended ones are no-ops.
  host().maps[kRequestHeaders] = {{":path", "/"}};
  EXPECT_EQ(vm.call("sluice_on_stream_start", {conn + 1, kRoot, 0, 1}), 0u);
  vm.call("sluice_on_stream_end", {conn + 1});
  EXPECT_TRUE(host().logged("probe: delete " + std::to_string(conn + 1)));
  EXPECT_EQ(vm.call("proxy_on_response_headers", {kStream, 0, 1}), 0u);
}

// A root that makes only TCP connections, asked to start an HTTP stream: as the two callbacks
// would, nothing reaches a stream.
TEST_F(SdkNativeTest, FusedStartUnderARootWithoutStreams) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe_other", "", ""), 1u);
  EXPECT_EQ(vm.call("sluice_on_stream_start", {kStream, kRoot, 1, 1}), 0u);
  vm.call("sluice_on_stream_end", {kStream});
}

TEST_F(SdkNativeTest, HttpCallFromAStreamRunsOnThatStream) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "http_call"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 1, 1}), 1u);
  ASSERT_EQ(host().http_calls.size(), 1u);
  const fakehost::HttpCall& c = host().http_calls[0];
  EXPECT_EQ(c.cluster, "callout_cluster");
  EXPECT_EQ(c.body, "ping");
  EXPECT_EQ(c.timeout_ms, 500u);
  EXPECT_EQ(c.headers,
            (fakehost::Pairs{{":method", "GET"}, {":path", "/callout"}, {":authority", "svc"}}));

  host().maps[6] = {{":status", "201"}};
  host().buffers[4] = "pong";
  host().buffer_available[4] = true;
  vm.call("proxy_on_http_call_response", {kRoot, c.token, 1, 4, 0});
  EXPECT_EQ(host().effective_context, kStream);
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->body, "callout 201 pong");
  EXPECT_EQ(host().local_reply->headers, (fakehost::Pairs{{"x-callout-failed", "no"}}));

  // A response for a stream that is gone is dropped.
  host().local_reply.reset();
  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  vm.call("proxy_on_request_headers", {kStream + 1, 1, 1});
  vm.call("proxy_on_delete", {kStream + 1});
  vm.call("proxy_on_http_call_response", {kRoot, host().http_calls[1].token, 0, 0, 0});
  EXPECT_FALSE(host().local_reply);
  // Unknown tokens are ignored.
  vm.call("proxy_on_http_call_response", {kRoot, 999, 0, 0, 0});
}

// One stream through the probe: its request carries `x-probe: action`, and the stream ends
// after the request headers. Returns the probe's x-probe-result ("" without a local reply).
std::string ask_probe(Vm& vm, const std::string& action) {
  host().local_reply.reset();
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", action}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  vm.call("proxy_on_delete", {kStream});
  if (!host().local_reply) return "";
  for (const auto& [key, value] : host().local_reply->headers) {
    if (key == "x-probe-result") return value;
  }
  return "";
}

// What the probe's "props" action reads: request.size 1234, connection.mtls true, and
// plugin_name.
void set_probe_properties(const std::string& plugin_name) {
  int64_t size = 1234;
  host().properties[std::string("request\0size", 12)] =
      std::string(reinterpret_cast<const char*>(&size), 8);
  host().properties[std::string("connection\0mtls", 15)] = std::string(1, '\1');
  host().properties["plugin_name"] = plugin_name;
}

TEST_F(SdkNativeTest, TypedProperties) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  set_probe_properties("my_plugin");
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "props"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(
      host().local_reply->headers,
      (fakehost::Pairs{{"x-probe-result", "size=1234 mtls=true name=my_plugin missing=false"}}));
  EXPECT_EQ(host().local_reply->details, "probe reply");
}

// Envoy and Sluice allow a plugin without a name: plugin_name_or gives the fallback for an empty
// name as for a missing one, so names built from it never come out as "ratelimit..allowed".
TEST_F(SdkNativeTest, PluginNameOrFallsBackForAnUnnamedPlugin) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  const std::optional<std::string> names[] = {"limit", "", std::nullopt};
  for (const auto& name : names) {
    SCOPED_TRACE(name ? "name '" + *name + "'" : "no name");
    if (name) {
      host().properties["plugin_name"] = *name;
    } else {
      host().properties.erase("plugin_name");
    }
    EXPECT_EQ(ask_probe(vm, "named"), name && !name->empty() ? *name : "fallback");
  }
}

TEST_F(SdkNativeTest, SharedDataCas) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "shared"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{{"x-probe-result", "v1 CasMismatch Ok v3"}}));
}

TEST_F(SdkNativeTest, UpdateSharedData) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "update"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers, (fakehost::Pairs{{"x-probe-result", "Ok=1 Ok=2 Empty"}}));
  EXPECT_EQ(host().shared["counter"].first, "2");
}

TEST_F(SdkNativeTest, UpdateSharedDataRetriesLostRaces) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().shared["racy"] = {"0", host().next_cas++};
  host().race_next_reads = 3;  // the first update loses 3 races, its 4th attempt (of 5) wins
  host().maps[kRequestHeaders] = {{"x-probe", "update_race"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  // Each lost race added 100 behind the plugin's back: nothing of the other writer is lost.
  // The second update ran with no more races, so it won at once.
  EXPECT_EQ(host().local_reply->headers, (fakehost::Pairs{{"x-probe-result", "Ok=301 Ok"}}));
  EXPECT_EQ(host().shared["racy"].first, "302");

  host().local_reply.reset();
  host().race_next_reads = 10;
  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  vm.call("proxy_on_request_headers", {kStream + 1, 1, 1});
  ASSERT_TRUE(host().local_reply);
  // 5 attempts lost, then 2 more lost: CasMismatch both times, nothing written by the plugin.
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{{"x-probe-result", "CasMismatch= CasMismatch"}}));
  EXPECT_EQ(host().shared["racy"].first, "1002");  // 302 + 7 racing writes of 100
}

TEST_F(SdkNativeTest, ZlibHelpersCallTheForeignFunctions) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "zlib"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{{"x-probe-result", "Z(abc) abc false SerializationFailure"}}));
  ASSERT_EQ(host().foreign_calls.size(), 3u);
  EXPECT_EQ(host().foreign_calls[0], (std::pair<std::string, std::string>("compress", "abc")));
  EXPECT_EQ(host().foreign_calls[1].first, "uncompress");
}

// ---- Sluice's own foreign functions --------------------------------------------------------

// The SDK (sdk.h, dispatch.h) and the host (wasm/abi/sluice_functions.h) write the names and
// bits down separately: they must agree.
namespace sf = sluice::wasm::sluice_functions;
namespace sd = sluice::detail;
static_assert(sluice::kSetReturnBuffer == sf::kSetReturnBuffer);
static_assert(sluice::kSetDeleteMailbox == sf::kSetDeleteMailbox);
static_assert(sluice::kDeleteMailboxSize <= sf::kMaxDeleteMailbox);
static_assert(sluice::kDeclineStreamCallbacks == sf::kDeclineStreamCallbacks);
static_assert(sluice::kGetProperties == sf::kGetProperties);
static_assert(sluice::kNoProperty == sf::kNoProperty);
static_assert(sluice::kMaxBatchedProperties == sf::kMaxBatchedProperties);
static_assert(sluice::kRetriesBufferTooSmall == sf::kRetriesBufferTooSmall);
static_assert(uint32_t{sluice::kBufferTooSmall} == sf::kBufferTooSmall);
static_assert(uint32_t{sd::kDeclineRequestHeaders} == uint32_t{sf::kRequestHeaders});
static_assert(uint32_t{sd::kDeclineRequestBody} == uint32_t{sf::kRequestBody});
static_assert(uint32_t{sd::kDeclineRequestTrailers} == uint32_t{sf::kRequestTrailers});
static_assert(uint32_t{sd::kDeclineResponseHeaders} == uint32_t{sf::kResponseHeaders});
static_assert(uint32_t{sd::kDeclineResponseBody} == uint32_t{sf::kResponseBody});
static_assert(uint32_t{sd::kDeclineResponseTrailers} == uint32_t{sf::kResponseTrailers});
static_assert(uint32_t{sd::kDeclineLog} == uint32_t{sf::kLog});
static_assert(uint32_t{sd::kDeclineDone} == uint32_t{sf::kDone});
static_assert(uint32_t{sd::kDeclineNewConnection} == uint32_t{sf::kNewConnection});
static_assert(uint32_t{sd::kDeclineDownstreamData} == uint32_t{sf::kDownstreamData});
static_assert(uint32_t{sd::kDeclineUpstreamData} == uint32_t{sf::kUpstreamData});
static_assert(uint32_t{sd::kDeclineDownstreamConnectionClose} ==
              uint32_t{sf::kDownstreamConnectionClose});
static_assert(uint32_t{sd::kDeclineUpstreamConnectionClose} ==
              uint32_t{sf::kUpstreamConnectionClose});
static_assert(uint32_t{sd::kDeclineAll} == uint32_t{sf::kAllDeclinable});
static_assert(sluice::kInitialReturnBuffer >= sf::kMinReturnBuffer);

// Which callbacks a context class leaves alone, found at compile time.
struct PlainHttp : sluice::HttpContext {
  using HttpContext::HttpContext;
};
struct LoggingHttp : sluice::HttpContext {
  using HttpContext::HttpContext;
  sluice::FilterHeadersStatus on_response_headers(uint32_t, bool) override {
    return sluice::FilterHeadersStatus::Continue;
  }
  void on_log() override {}
};
struct DerivedFromLogging : LoggingHttp {  // inherits LoggingHttp's overrides
  using LoggingHttp::LoggingHttp;
};
struct OverloadingHttp : sluice::HttpContext {  // an overloaded name cannot be looked at
  using HttpContext::HttpContext;
  sluice::FilterDataStatus on_request_body(size_t, bool) override {
    return sluice::FilterDataStatus::Continue;
  }
  void on_request_body(const char*) {}
};
struct ReadingTcp : sluice::NetworkContext {
  using NetworkContext::NetworkContext;
  sluice::FilterStatus on_downstream_data(size_t, bool) override {
    return sluice::FilterStatus::Continue;
  }
  void on_log() override {}
};
constexpr uint32_t kAllButNetwork =
    sd::kDeclineNewConnection | sd::kDeclineDownstreamData | sd::kDeclineUpstreamData |
    sd::kDeclineDownstreamConnectionClose | sd::kDeclineUpstreamConnectionClose;
// What a plain context leaves alone: every callback, and on_delete may come late.
constexpr uint32_t kAllDefaults = sd::kDeclineAll | sd::kDeferDelete;
static_assert(uint32_t{sd::kDeferDelete} == uint32_t{sf::kDeferDelete});
static_assert((sd::kDeclineAll & sd::kDeferDelete) == 0);
static_assert(sd::declined_callbacks<void, void>() == kAllDefaults);
static_assert(sd::declined_callbacks<PlainHttp, void>() == kAllDefaults);
static_assert(sd::declined_callbacks<LoggingHttp, void>() ==
              (kAllDefaults & ~(sd::kDeclineResponseHeaders | sd::kDeclineLog)));
static_assert(sd::declined_callbacks<DerivedFromLogging, void>() ==
              sd::declined_callbacks<LoggingHttp, void>());
static_assert((sd::declined_callbacks<OverloadingHttp, void>() & sd::kDeclineRequestBody) == 0);
static_assert(sd::declined_callbacks<ReadingTcp, void>() ==
              (kAllDefaults & ~(sd::kDeclineDownstreamData | sd::kDeclineLog)));
// A context that overrides on_delete gets it at its stream's end; so do both kinds under a
// root when either overrides it.
struct DeletingHttp : sluice::HttpContext {
  using HttpContext::HttpContext;
  void on_delete() override {}
};
static_assert(sd::declined_callbacks<DeletingHttp, void>() == sd::kDeclineAll);
static_assert((sd::declined_callbacks<DeletingHttp, ReadingTcp>() & sd::kDeferDelete) == 0);
// Both kinds under one root: each kind's own bits, on_log kept if either logs, and the first
// callbacks (which decide a new context's kind) always called.
static_assert(sd::declined_callbacks<PlainHttp, ReadingTcp>() ==
              (kAllDefaults & ~(sd::kDeclineDownstreamData | sd::kDeclineLog |
                                sd::kDeclineRequestHeaders | sd::kDeclineNewConnection)));
static_assert((sd::declined_callbacks<PlainHttp, void>() & kAllButNetwork) == kAllButNetwork);

uint64_t u64_at(const std::string& bytes, size_t i) {
  uint64_t v = 0;
  std::memcpy(&v, bytes.data() + 8 * i, 8);
  return v;
}

TEST_F(SdkNativeTest, OffersItsReturnBufferOnceAndDeclinesWhatItLeavesAlone) {
  Vm vm(plugin("sluice.add_header"));
  ASSERT_EQ(vm.start_root(kRoot, "add_header", "", "request.add.x-a = 1\n"), 1u);
  ASSERT_EQ(vm.start_root(3, "add_header", "", "request.add.x-b = 2\n"), 1u);
  const auto& calls = host().sluice_calls;
  ASSERT_EQ(calls.size(), 3u);  // the buffer once per VM; the declines once per root
  EXPECT_EQ(calls[0].first, sluice::kSetReturnBuffer);
  ASSERT_EQ(calls[0].second.size(), 16u);
  EXPECT_NE(u64_at(calls[0].second, 0), 0u);
  EXPECT_EQ(u64_at(calls[0].second, 1), sluice::kInitialReturnBuffer);
  // add_header implements on_request_headers only (its response edits go to the host).
  for (size_t i : {1, 2}) {
    EXPECT_EQ(calls[i].first, sluice::kDeclineStreamCallbacks);
    ASSERT_EQ(calls[i].second.size(), 8u);
    EXPECT_EQ(u64_at(calls[i].second, 0), kAllDefaults & ~sd::kDeclineRequestHeaders);
  }
  // Refused (NotFound, as Envoy answers): nothing changes, values come from malloc.
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{":path", "/"}};
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 1, 1}), 0u);
  EXPECT_EQ(host().header(kRequestHeaders, "x-a"), "1");
  EXPECT_EQ(host().return_buffer_uses, 0);
}

// add_header's response edits: on Sluice, defined once and handed to the host per stream (which
// applies them, and skips on_response_headers); elsewhere, or when Sluice refuses the set, the
// SDK applies them itself in on_response_headers.
TEST_F(SdkNativeTest, ResponseHeaderEditsGoToSluiceOrAreAppliedByTheSdk) {
  const auto u32s = [](std::initializer_list<uint32_t> v) {
    std::string out;
    for (uint32_t x : v) out.append(reinterpret_cast<const char*>(&x), 4);
    return out;
  };
  const std::string config = "request.set.x-a = 1\nresponse.set.x-resp = 2\nresponse.remove.server";
  for (const bool sluice : {true, false}) {
    for (const bool refused : {false, true}) {
      SCOPED_TRACE(sluice ? (refused ? "Sluice, set refused" : "Sluice") : "another host");
      fakehost::reset();
      host().sluice_functions = sluice;
      host().refuse_header_edits = refused;
      Vm vm(plugin("sluice.add_header"));
      ASSERT_EQ(vm.start_root(kRoot, "add_header", "", config), 1u);
      for (uint32_t stream : {kStream, kStream + 1}) {
        const size_t calls_before = host().sluice_calls.size();
        vm.call("proxy_on_context_create", {stream, kRoot});
        host().maps[kRequestHeaders] = {{":path", "/"}};
        host().maps[kResponseHeaders] = {{":status", "200"}, {"server", "nginx"}};
        EXPECT_EQ(vm.call("proxy_on_request_headers", {stream, 1, 1}), 0u);
        EXPECT_EQ(host().header(kRequestHeaders, "x-a"), "1");
        std::vector<std::pair<std::string, std::string>> calls(
            host().sluice_calls.begin() + static_cast<ptrdiff_t>(calls_before),
            host().sluice_calls.end());
        const bool taken = sluice && !refused;
        if (!sluice) {
          EXPECT_TRUE(calls.empty());
        } else if (stream == kStream) {  // defined at first use: replace x-resp, remove server
          ASSERT_FALSE(calls.empty());
          EXPECT_EQ(calls[0], (std::pair<std::string, std::string>(
                                  "sluice_define_header_edits",
                                  u32s({0, 2, 1, 6, 1, 2, 6, 0}) + "x-resp2server")));
        }
        if (taken) {  // then each stream hands set 1 over, the callback skipped
          ASSERT_FALSE(calls.empty());
          EXPECT_EQ(calls.back(), (std::pair<std::string, std::string>(
                                      "sluice_edit_response_headers", u32s({1, 1}))));
          EXPECT_EQ(calls.size(), stream == kStream ? 2u : 1u);
        } else if (sluice) {  // refused: the SDK asks for the callback its root declined
          ASSERT_FALSE(calls.empty());
          EXPECT_EQ(calls.back(), (std::pair<std::string, std::string>(
                                      "sluice_edit_response_headers", u32s({0, 2}))));
        }
        // A host that calls on_response_headers anyway (Envoy): the SDK applies what the host
        // did not take.
        EXPECT_EQ(vm.call("proxy_on_response_headers", {stream, 2, 0}), 0u);
        using Value = std::optional<std::string>;
        EXPECT_EQ(host().header(kResponseHeaders, "x-resp"), taken ? Value() : Value("2"));
        EXPECT_EQ(host().header(kResponseHeaders, "server"), taken ? Value("nginx") : Value());
        vm.call("proxy_on_delete", {stream});
      }
    }
  }
}

// On Sluice the SDK offers a delete mailbox with its return buffer, and a root whose streams
// keep on_delete's default lets the host defer it; sluice_on_delete_batch then deletes the
// streams whose ids the host wrote there, in that order.
TEST_F(SdkNativeTest, BatchedDeletesFreeTheStreamsInTheMailbox) {
  host().sluice_functions = true;
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe_quiet", "", ""), 1u);
  ASSERT_EQ(vm.start_root(3, "probe", "", ""), 1u);
  uint64_t mailbox = 0;
  int offers = 0;
  std::vector<uint64_t> declines;
  for (const auto& [name, args] : host().sluice_calls) {
    if (name == sluice::kSetDeleteMailbox) {
      ASSERT_EQ(args.size(), 16u);
      mailbox = u64_at(args, 0);
      EXPECT_EQ(u64_at(args, 1), sluice::kDeleteMailboxSize);
      ++offers;
    }
    if (name == sluice::kDeclineStreamCallbacks) declines.push_back(u64_at(args, 0));
  }
  EXPECT_EQ(offers, 1);  // once per VM
  ASSERT_NE(mailbox, 0u);
  ASSERT_EQ(declines.size(), 2u);
  EXPECT_EQ(declines[0], kAllDefaults);           // QuietStream keeps every default
  EXPECT_EQ(declines[1] & sd::kDeferDelete, 0u);  // ProbeStream logs in on_delete
  for (uint32_t id : {10, 11, 12}) vm.call("proxy_on_context_create", {id, kRoot});
  const uint32_t ids[] = {12, 10};
  std::memcpy(reinterpret_cast<void*>(static_cast<uintptr_t>(mailbox)), ids, sizeof ids);
  host().logs.clear();
  vm.call("sluice_on_delete_batch", {2});
  std::vector<std::string> gone;
  for (const auto& [level, line] : host().logs) {
    if (line.find("quiet gone") != std::string::npos) gone.push_back(line);
  }
  EXPECT_EQ(gone, (std::vector<std::string>{"probe: quiet gone 12", "probe: quiet gone 10"}));
  vm.call("proxy_on_delete", {11});
  EXPECT_TRUE(host().logged("probe: quiet gone 11"));
}

// A copied HeaderEdits is a set of its own; assigning to one keeps its host id.
TEST_F(SdkNativeTest, CopiedHeaderEditsAreDefinedOnTheirOwn) {
  host().sluice_functions = true;
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "edits-copy"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  std::vector<uint32_t> defined_ids, used_ids;
  for (const auto& [name, args] : host().sluice_calls) {
    uint32_t id;
    std::memcpy(&id, args.data(), 4);
    if (name == "sluice_define_header_edits") defined_ids.push_back(id);
    if (name == "sluice_edit_response_headers") used_ids.push_back(id);
  }
  // a (new: 1), b (new: 2), a again after `a = b` and an edit (redefined as 1); then none; a
  // with an LF (refused: none, the SDK applies it), then a = b again (still set 1).
  EXPECT_EQ(defined_ids, (std::vector<uint32_t>{0, 0, 1, 1, 1}));
  EXPECT_EQ(used_ids, (std::vector<uint32_t>{1, 2, 1, 0, 0, 1}));
}

TEST_F(SdkNativeTest, ValuesComeBackThroughTheReturnBuffer) {
  host().sluice_functions = true;
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  // plugin_name is too big for the buffer: it comes through malloc (and is freed by the SDK).
  const std::string long_name(3000, 'n');
  set_probe_properties(long_name);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "props"}};
  const int uses_before = host().return_buffer_uses;
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{
                {"x-probe-result", "size=1234 mtls=true name=" + long_name + " missing=false"}}));
  // x-probe, request.size and connection.mtls went through the buffer; the SDK copied each
  // out before the next call (ASan would see it free the buffer).
  EXPECT_EQ(host().return_buffer_uses - uses_before, 3);
}

// On V8, Sluice makes property and header reads as leaf calls, which cannot call the module's
// malloc: a value bigger than the return buffer is answered kBufferTooSmall with its size, and
// the SDK offers a buffer that big and asks again.
TEST_F(SdkNativeTest, ValuesTooBigForTheBufferAreAskedForAgain) {
  host().sluice_functions = true;
  host().leaf_calls = true;
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  EXPECT_EQ(host().too_small_answers, 0);  // plugin_root_id fit the first buffer
  const std::string long_name(3000, 'n');
  set_probe_properties(long_name);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "props"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{
                {"x-probe-result", "size=1234 mtls=true name=" + long_name + " missing=false"}}));
  EXPECT_EQ(host().too_small_answers, 1);
  // Offered twice: the first buffer at the root context, then one that holds 3000 bytes.
  std::vector<uint64_t> sizes;
  for (const auto& [name, args] : host().sluice_calls) {
    if (name == sluice::kSetReturnBuffer) sizes.push_back(u64_at(args, 1));
  }
  ASSERT_EQ(sizes.size(), 2u);
  EXPECT_EQ(sizes[0], sluice::kInitialReturnBuffer);
  EXPECT_EQ(sizes[1], 4096u);
  // The bigger buffer stays: the same value now fits at once.
  host().local_reply.reset();
  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  vm.call("proxy_on_request_headers", {kStream + 1, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().too_small_answers, 1);
}

// A foreign function's answer too big for the buffer is asked for again too (Sluice keeps the
// answer meanwhile). A buffer grown past kMaxKeptReturnBuffer for it goes back to the initial
// size before the next value is asked for, rather than holding the module's memory for good.
TEST_F(SdkNativeTest, BigForeignAnswersAreAskedForAgainAndTheBufferShrinksAfter) {
  host().sluice_functions = true;
  host().leaf_calls = true;
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "zlib-big"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers, (fakehost::Pairs{{"x-probe-result", "100003 100000"}}));
  EXPECT_EQ(host().too_small_answers, 2);
  // The next read of any value starts from a small buffer again.
  set_probe_properties("short");
  host().local_reply.reset();
  vm.call("proxy_on_context_create", {kStream + 1, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "props"}};
  vm.call("proxy_on_request_headers", {kStream + 1, 1, 1});
  ASSERT_TRUE(host().local_reply);
  std::vector<uint64_t> sizes;
  for (const auto& [name, args] : host().sluice_calls) {
    if (name == sluice::kSetReturnBuffer) sizes.push_back(u64_at(args, 1));
  }
  // At the root; grown for compress's answer; back before uncompress, grown for its answer;
  // back before the next request's first read.
  const uint64_t initial = sluice::kInitialReturnBuffer;
  EXPECT_EQ(sizes, (std::vector<uint64_t>{initial, 131072, initial, 131072, initial}));
}

// The ways a value can come back to the SDK: through the module's malloc (a host without
// Sluice's functions), the return buffer, and a leaf call that asks again with a bigger one.
struct ReturnWay {
  const char* name;
  bool sluice_functions, leaf_calls;
};
constexpr ReturnWay kReturnWays[] = {
    {"malloc", false, false}, {"return buffer", true, false}, {"leaf calls", true, true}};

// Runs `request(vm, way, plugin_name)` on a fresh VM of `probe` for each way, with the probe's
// properties set, once with a plugin_name that fits the first return buffer and once with one
// that does not.
template <typename Request>
void for_each_return_way(const SluiceNullPlugin* probe, Request&& request) {
  for (const ReturnWay& way : kReturnWays) {
    SCOPED_TRACE(way.name);
    fakehost::reset();
    host().sluice_functions = way.sluice_functions;
    host().leaf_calls = way.leaf_calls;
    Vm vm(probe);
    ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
    for (const std::string& name : {std::string("short"), std::string(3000, 'n')}) {
      set_probe_properties(name);
      host().local_reply.reset();
      request(vm, way, name);
    }
  }
}

// The view accessors (get_view, get_property_view and the typed *_joined reads) give the same
// answers every way. Under ASan a view that outlived its malloc'd value would be a use after
// free.
TEST_F(SdkNativeTest, ViewsReadTheSameValuesEveryWay) {
  for_each_return_way(
      plugin("sluice.sdk_probe"), [](Vm& vm, const ReturnWay&, const std::string& name) {
        EXPECT_EQ(ask_probe(vm, "views"),
                  "header=views size=1234 mtls=true name=" + name + " missing=false absent=false");
      });
}

// A PropertyBatch reads what get_property_view reads, every way: one read each from a host
// without Sluice's functions, one sluice_get_properties call from Sluice (with the long name's
// answer through the module's malloc, or, on leaf calls, asked for again with a bigger buffer).
TEST_F(SdkNativeTest, PropertyBatchReadsTheSameValuesEveryWay) {
  for_each_return_way(
      plugin("sluice.sdk_probe"), [](Vm& vm, const ReturnWay& way, const std::string& name) {
        const size_t calls_before = host().sluice_calls.size();
        vm.call("proxy_on_context_create", {kStream, kRoot});
        host().maps[kRequestHeaders] = {{"x-probe", "batch"}};
        vm.call("proxy_on_request_headers", {kStream, 1, 1});
        vm.call("proxy_on_delete", {kStream});
        ASSERT_TRUE(host().local_reply);
        EXPECT_EQ(host().local_reply->headers,
                  (fakehost::Pairs{{"x-probe-result", "count=4 size=1234 mtls=true name=" + name +
                                                          " missing=false"}}));
        size_t batched = 0;
        for (size_t i = calls_before; i < host().sluice_calls.size(); ++i) {
          batched += host().sluice_calls[i].first == sluice::kGetProperties;
        }
        // Another host is never asked (it took no return buffer); Sluice once, or twice when the
        // answer did not fit a leaf call's buffer.
        const size_t expected =
            !way.sluice_functions ? 0 : (way.leaf_calls && name.size() > 2048 ? 2 : 1);
        EXPECT_EQ(batched, expected);
      });
}

// The SDK's context tables (id_map.h) against std::unordered_map, through random puts and takes
// of ids in a narrow range (so runs of collisions form and are broken up by deletions) and of
// ids spread over the whole range, past several growths.
TEST(SdkPieces, IdMapAgreesWithAnUnorderedMap) {
  std::mt19937 rng(7);
  for (const uint32_t range : {64u, 4096u, 0xffffffffu}) {
    sluice::IdMap<std::unique_ptr<int>> map;
    std::unordered_map<uint32_t, int> model;
    for (int step = 0; step < 20000; ++step) {
      const uint32_t id = std::uniform_int_distribution<uint32_t>(0, range)(rng);
      if (rng() % 3 == 0) {
        std::unique_ptr<int> taken = map.take(id);
        auto it = model.find(id);
        ASSERT_EQ(taken != nullptr, it != model.end()) << id;
        if (taken) {
          EXPECT_EQ(*taken, it->second);
          model.erase(it);
        }
      } else {
        const int value = static_cast<int>(rng());
        EXPECT_EQ(*map.put(id, std::make_unique<int>(value)), value);
        model[id] = value;
      }
      ASSERT_EQ(map.size(), model.size());
    }
    for (uint32_t id = 0; id <= std::min(range, 5000u); ++id) {
      auto it = model.find(id);
      std::unique_ptr<int>* found = map.find(id);
      ASSERT_EQ(found != nullptr, it != model.end()) << id;
      if (found) {
        EXPECT_EQ(**found, it->second);
      }
    }
    for (const auto& [id, value] : model) {
      ASSERT_TRUE(map.contains(id)) << id;
      EXPECT_EQ(**map.find(id), value);
    }
  }
}

TEST(SdkPieces, ParseUint64) {
  EXPECT_EQ(sluice::parse_uint64("0"), 0u);
  EXPECT_EQ(sluice::parse_uint64("18446744073709551615"), UINT64_MAX);
  EXPECT_EQ(sluice::parse_uint64("18446744073709551616"), std::nullopt);
  EXPECT_EQ(sluice::parse_uint64(""), std::nullopt);
  EXPECT_EQ(sluice::parse_uint64("-1"), std::nullopt);
  EXPECT_EQ(sluice::parse_uint64(" 1"), std::nullopt);
  EXPECT_EQ(sluice::parse_uint64("12a"), std::nullopt);
}

TEST_F(SdkNativeTest, HeaderPairsRoundTrip) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "pairs"}, {":path", "/a"}};
  vm.call("proxy_on_request_headers", {kStream, 2, 1});
  EXPECT_EQ(host().maps[kRequestHeaders],
            (fakehost::Pairs{{"x-probe", "pairs"}, {":path", "/a"}, {"x-count", "2"}}));
}

TEST_F(SdkNativeTest, Metrics) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().maps[kRequestHeaders] = {{"x-probe", "metrics"}};
  vm.call("proxy_on_request_headers", {kStream, 1, 1});
  ASSERT_TRUE(host().local_reply);
  EXPECT_EQ(host().local_reply->headers,
            (fakehost::Pairs{{"x-probe-result", "gauge=3 counter=3"}}));
  uint32_t gauge = host().metric_ids["probe.gauge"];
  uint32_t histogram = host().metric_ids["probe.histogram"];
  EXPECT_EQ(gauge & 3, 1u);
  EXPECT_EQ(histogram & 3, 2u);
  EXPECT_EQ(host().metric_values[histogram], 42);
}

TEST_F(SdkNativeTest, RequestBodyAppendPrependAndStreamTeardown) {
  Vm vm(plugin("sluice.sdk_probe"));
  ASSERT_EQ(vm.start_root(kRoot, "probe", "", ""), 1u);
  vm.call("proxy_on_context_create", {kStream, kRoot});
  host().buffer_available[kRequestBody] = true;
  host().buffers[kRequestBody] = "ab";
  EXPECT_EQ(vm.call("proxy_on_request_body", {kStream, 2, 0}), 1u);
  host().buffers[kRequestBody] = "abc";
  EXPECT_EQ(vm.call("proxy_on_request_body", {kStream, 3, 1}), 0u);
  EXPECT_EQ(host().buffers[kRequestBody], "<abc!");

  vm.call("proxy_on_log", {kStream});
  EXPECT_EQ(vm.call("proxy_on_done", {kStream}), 1u);
  vm.call("proxy_on_delete", {kStream});
  EXPECT_TRUE(host().logged("probe: log 2"));
  EXPECT_TRUE(host().logged("probe: done 2"));
  EXPECT_TRUE(host().logged("probe: delete 2"));
  // Callbacks on a deleted or unknown context are harmless.
  EXPECT_EQ(vm.call("proxy_on_request_headers", {kStream, 0, 1}), 0u);
  EXPECT_EQ(vm.call("proxy_on_done", {77}), 1u);
  vm.call("proxy_on_delete", {77});
}

}  // namespace
