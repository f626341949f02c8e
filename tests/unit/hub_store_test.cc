// The hub's storage and rules, on a real SQLite file: the SQL layer ($N parameters in any order,
// transactions that roll back), accounts and tokens, who may pull and push what, search with
// visibility, the audit log's namespace filter, and the blob folder's uploads (digest checked,
// resumed after a restart, discarded whole).
#include <unistd.h>

#include <filesystem>

#include <gtest/gtest.h>

#include "common/sha256.h"
#include "hub/auth.h"
#include "hub/blob_store.h"
#include "hub/database.h"
#include "hub/hub_store.h"

namespace sluice::hub {
namespace {

namespace fs = std::filesystem;

class HubStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("hub-store-test-" + std::to_string(::getpid()) + "-" +
                                     testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto db = open_sqlite((dir_ / "hub.db").string());
    ASSERT_TRUE(db) << db.error();
    db_ = std::move(*db);
    store_ = std::make_unique<HubStore>(*db_);
    ASSERT_TRUE(store_->migrate());
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
    fs::remove_all(dir_);
  }
  // A manifest record for `repository` with its repository metadata.
  void push(const std::string& repository, const std::string& digest, const std::string& tag,
            const std::string& description = "", bool is_private = false) {
    ManifestRecord m;
    m.repository = repository;
    m.digest = digest;
    m.media_type = "application/vnd.oci.image.manifest.v1+json";
    m.created = ++clock_;
    m.pushed_by = "alice";
    m.root_ids = R"(["my_root"])";
    m.host_functions = R"(["proxy_http_call"])";
    RepositoryRecord meta;
    meta.name = repository;
    meta.namespace_ = repository.substr(0, repository.find('/'));
    meta.description = description;
    meta.is_private = is_private;
    AuditEntry audit{0, clock_, "alice", "push", repository, tag, digest, "test", ""};
    ASSERT_TRUE(store_->put_manifest(m, tag, meta, audit));
  }

  fs::path dir_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<HubStore> store_;
  int64_t clock_ = 1000;
};

TEST_F(HubStoreTest, ParametersByNumberInAnyOrder) {
  auto rows = db_->query("SELECT $2, $1, $2 || $1", {std::string("a"), std::string("b")});
  ASSERT_TRUE(rows) << rows.error();
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_EQ(sql_text((*rows)[0][0]), "b");
  EXPECT_EQ(sql_text((*rows)[0][1]), "a");
  EXPECT_EQ(sql_text((*rows)[0][2]), "ba");
}

TEST_F(HubStoreTest, FailedTransactionLeavesNothing) {
  Status s = db_->transaction([&]() -> Status {
    if (Status a = store_->add_user("alice", false, 1); !a) return a;
    return Error{"later step failed"};
  });
  EXPECT_FALSE(s);
  auto user = store_->user("alice");
  ASSERT_TRUE(user);
  EXPECT_FALSE(user->has_value());
}

TEST_F(HubStoreTest, NamesAreSharedByUsersAndOrganisations) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  EXPECT_FALSE(store_->add_user("alice", true, 1));
  EXPECT_FALSE(store_->add_org("alice", "alice", 1));
  ASSERT_TRUE(store_->add_org("acme", "alice", 1));
  EXPECT_EQ(store_->namespace_kind("acme").value(), "org");
  EXPECT_EQ(store_->namespace_kind("alice").value(), "user");
  EXPECT_EQ(store_->namespace_kind("nobody").value(), "");
  EXPECT_EQ(store_->member_role("acme", "alice")->value(), Role::Owner);
}

TEST_F(HubStoreTest, SigningSecretIsMadeOnceAndKept) {
  auto first = store_->signing_secret();
  ASSERT_TRUE(store_->migrate());
  auto second = store_->signing_secret();
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, *second);
  EXPECT_EQ(first->size(), 64u);
}

TEST_F(HubStoreTest, AccessTokensAuthenticateUntilTheyExpireOrAreRevoked) {
  ASSERT_TRUE(store_->add_user("alice", true, 1));
  Authenticator auth(*store_, "secret");
  NewToken t = make_access_token("alice", Scope::Admin, "test", 100, 50);
  ASSERT_TRUE(store_->add_token(t.record));
  EXPECT_NE(t.record.hash, t.token);
  EXPECT_EQ(t.record.hash, sha256_hex(t.token));

  auto who = auth.authenticate("Bearer " + t.token, 120);
  ASSERT_TRUE(who) << who.error();
  EXPECT_EQ(who->user, "alice");
  EXPECT_TRUE(who->admin);
  EXPECT_FALSE(auth.authenticate("Basic YWxpY2U6", 120)) << "alice with an empty token";
  EXPECT_FALSE(auth.authenticate("Bearer " + t.token, 150)) << "an expired token worked";
  std::string wrong = t.token;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  auto refused = auth.authenticate("Bearer " + wrong, 120);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), "invalid or revoked token");
  ASSERT_TRUE(store_->delete_token("alice", t.record.id).value());
  EXPECT_FALSE(auth.authenticate("Bearer " + t.token, 120)) << "a revoked token worked";
}

TEST_F(HubStoreTest, BasicCredentialsMustNameTheTokensUser) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  ASSERT_TRUE(store_->add_user("bob", false, 1));
  Authenticator auth(*store_, "secret");
  NewToken t = make_access_token("alice", Scope::Push, "", 100, 50);
  ASSERT_TRUE(store_->add_token(t.record));
  auto basic = [](const std::string& user, const std::string& token) {
    const std::string pair = user + ":" + token;
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < pair.size(); i += 3) {
      const uint32_t n =
          (uint8_t(pair[i]) << 16) | (uint8_t(pair[i + 1]) << 8) | uint8_t(pair[i + 2]);
      for (int k = 18; k >= 0; k -= 6) out += kB64[(n >> k) & 63];
    }
    if (i < pair.size()) {
      uint32_t n = uint8_t(pair[i]) << 16;
      if (i + 1 < pair.size()) n |= uint8_t(pair[i + 1]) << 8;
      out += kB64[(n >> 18) & 63];
      out += kB64[(n >> 12) & 63];
      out += i + 1 < pair.size() ? kB64[(n >> 6) & 63] : '=';
      out += '=';
    }
    return "Basic " + out;
  };
  auto ok = auth.authenticate(basic("alice", t.token), 120);
  ASSERT_TRUE(ok) << ok.error();
  EXPECT_EQ(ok->scope, Scope::Push);
  EXPECT_FALSE(ok->admin);
  EXPECT_FALSE(auth.authenticate(basic("bob", t.token), 120)) << "bob used alice's token";
}

TEST_F(HubStoreTest, RegistryTokensAreSignedAndExpire) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  Authenticator auth(*store_, "secret");
  Identity alice;
  alice.user = "alice";
  alice.scope = Scope::Push;
  const std::string token = auth.registry_token(alice, 100, 300);
  auto who = auth.authenticate("Bearer " + token, 200);
  ASSERT_TRUE(who) << who.error();
  EXPECT_EQ(who->user, "alice");
  EXPECT_EQ(who->scope, Scope::Push);
  EXPECT_FALSE(auth.authenticate("Bearer " + token, 401)) << "an expired registry token worked";
  // Another hub's secret, or an edited payload: refused.
  Authenticator other(*store_, "other secret");
  EXPECT_FALSE(other.authenticate("Bearer " + token, 200));
  std::string edited = token;
  edited[3] = edited[3] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(auth.authenticate("Bearer " + edited, 200));
  // Anonymous tokens name nobody.
  auto anonymous = auth.authenticate("Bearer " + auth.registry_token(Identity{}, 100, 300), 200);
  ASSERT_TRUE(anonymous);
  EXPECT_TRUE(anonymous->anonymous());
}

TEST_F(HubStoreTest, WhoMayPullAndPush) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  ASSERT_TRUE(store_->add_user("bob", false, 1));
  ASSERT_TRUE(store_->add_user("root", true, 1));
  ASSERT_TRUE(store_->add_org("acme", "alice", 1));
  ASSERT_TRUE(store_->set_member("acme", "bob", Role::Reader));
  push("acme/public", "sha256:" + std::string(64, 'a'), "v1");
  push("acme/secret", "sha256:" + std::string(64, 'b'), "v1", "", true);
  auto access = [&](const std::string& user, Scope scope, bool admin, const std::string& repo) {
    Identity who;
    who.user = user;
    who.scope = scope;
    who.admin = admin;
    auto a = repository_access(*store_, who, repo);
    EXPECT_TRUE(a) << a.error();
    return *a;
  };
  EXPECT_TRUE(access("", Scope::Read, false, "acme/public").pull);
  EXPECT_FALSE(access("", Scope::Read, false, "acme/secret").pull);
  EXPECT_FALSE(access("", Scope::Read, false, "acme/public").push);
  EXPECT_TRUE(access("bob", Scope::Push, false, "acme/secret").pull);
  EXPECT_FALSE(access("bob", Scope::Push, false, "acme/public").push) << "a reader pushed";
  EXPECT_TRUE(access("alice", Scope::Push, false, "acme/new").push);
  EXPECT_TRUE(access("alice", Scope::Push, false, "acme/new").pull) << "a pusher checks blobs";
  EXPECT_FALSE(access("alice", Scope::Read, false, "acme/new").push) << "a read token pushed";
  EXPECT_FALSE(access("bob", Scope::Push, false, "acme/new").pull);
  EXPECT_TRUE(access("alice", Scope::Push, false, "alice/x").push);
  EXPECT_FALSE(access("alice", Scope::Push, false, "ghost/x").push);
  EXPECT_TRUE(access("root", Scope::Admin, true, "acme/secret").push);
  EXPECT_FALSE(access("root", Scope::Push, false, "acme/secret").pull)
      << "an administrator's non-admin token is an ordinary user's";
}

TEST_F(HubStoreTest, SearchMatchesEveryWordAndHidesPrivateRepositories) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  ASSERT_TRUE(store_->add_user("bob", false, 1));
  push("alice/header-decoder", "sha256:" + std::string(64, '1'), "v1", "Decodes base64 headers");
  push("alice/rate_limit", "sha256:" + std::string(64, '2'), "v2", "Limits 100% of requests");
  push("alice/hidden", "sha256:" + std::string(64, '3'), "v1", "Decodes secrets", true);
  int64_t total = 0;
  auto hits = store_->search("decodes", Viewer{}, 10, 0, &total);
  ASSERT_TRUE(hits) << hits.error();
  ASSERT_EQ(total, 1);
  EXPECT_EQ((*hits)[0].repository.name, "alice/header-decoder");
  EXPECT_EQ((*hits)[0].latest_tag, "v1");
  hits = store_->search("decodes", Viewer{"alice", false}, 10, 0, &total);
  EXPECT_EQ(total, 2);
  hits = store_->search("decodes", Viewer{"bob", false}, 10, 0, &total);
  EXPECT_EQ(total, 1);
  hits = store_->search("BASE64 headers", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 1);
  hits = store_->search("base64 limits", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 0) << "words are and-ed";
  // LIKE's wildcards are matched literally.
  hits = store_->search("100%", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 1);
  hits = store_->search("_", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 2) << "an underscore matched any character";
  hits = store_->search("my_root", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 2) << "root ids are searchable";
  hits = store_->search("proxy_http_call", Viewer{}, 10, 0, &total);
  EXPECT_EQ(total, 2) << "host functions are searchable";
}

TEST_F(HubStoreTest, TagsMoveAndDeletesTakeTheirTags) {
  ASSERT_TRUE(store_->add_user("alice", false, 1));
  const std::string d1 = "sha256:" + std::string(64, 'a'), d2 = "sha256:" + std::string(64, 'b');
  push("alice/x", d1, "latest");
  push("alice/x", d2, "latest");
  EXPECT_EQ(store_->tag_digest("alice/x", "latest")->value(), d2);
  AuditEntry audit{0, 5, "alice", "delete", "alice/x", d2, d2, "test", ""};
  EXPECT_TRUE(store_->delete_manifest("alice/x", d2, audit).value());
  EXPECT_FALSE(store_->tag_digest("alice/x", "latest")->has_value());
  EXPECT_FALSE(store_->delete_manifest("alice/x", d2, audit).value());
  EXPECT_TRUE(store_->manifest("alice/x", d1)->has_value());
}

TEST_F(HubStoreTest, AuditLogFiltersByWholeNamespace) {
  ASSERT_TRUE(store_->add_user("ab", false, 1));
  ASSERT_TRUE(store_->add_user("abc", false, 1));
  push("ab/one", "sha256:" + std::string(64, 'a'), "v1");
  push("abc/two", "sha256:" + std::string(64, 'b'), "v1");
  auto entries = store_->audit("ab", 10);
  ASSERT_TRUE(entries) << entries.error();
  ASSERT_EQ(entries->size(), 1u) << "ab's log showed abc's entries";
  EXPECT_EQ((*entries)[0].repository, "ab/one");
  EXPECT_EQ(store_->audit("", 10)->size(), 2u);
}

TEST(HubNames, AccountNames) {
  EXPECT_TRUE(is_account_name("alice"));
  EXPECT_TRUE(is_account_name("team-42"));
  EXPECT_FALSE(is_account_name("a"));
  EXPECT_FALSE(is_account_name("Alice"));
  EXPECT_FALSE(is_account_name("-x"));
  EXPECT_FALSE(is_account_name("a--b"));
  EXPECT_FALSE(is_account_name(".."));
  EXPECT_FALSE(is_account_name("a/b"));
  EXPECT_FALSE(is_account_name(std::string(40, 'a')));
}

class BlobStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("hub-blob-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    store_ = std::make_unique<BlobStore>(dir_.string());
    ASSERT_TRUE(store_->init());
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(BlobStoreTest, UploadCommitsUnderItsDigestOnly) {
  auto upload = store_->start_upload();
  ASSERT_TRUE(upload) << upload.error();
  ASSERT_TRUE((*upload)->append("hello "));
  ASSERT_TRUE((*upload)->append("world"));
  const std::string digest = "sha256:" + sha256_hex("hello world");
  ASSERT_TRUE((*upload)->commit(digest));
  EXPECT_EQ(store_->read(digest, 100).value(), "hello world");
  EXPECT_FALSE(store_->read(digest, 5)) << "read past its limit";

  auto bad = store_->start_upload();
  ASSERT_TRUE(bad);
  const std::string id = (*bad)->id();
  ASSERT_TRUE((*bad)->append("something else"));
  Status s = (*bad)->commit(digest);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().find("digest"), std::string::npos) << s.error();
  EXPECT_FALSE(store_->has_upload(id)) << "a mismatched upload was kept";
  EXPECT_EQ(store_->read(digest, 100).value(), "hello world");
}

TEST_F(BlobStoreTest, ResumedUploadRebuildsItsHash) {
  std::string id;
  {
    auto upload = store_->start_upload();
    ASSERT_TRUE(upload);
    id = (*upload)->id();
    ASSERT_TRUE((*upload)->append("first half, "));
  }  // as after a restart: only the file is left
  auto resumed = store_->resume_upload(id);
  ASSERT_TRUE(resumed) << resumed.error();
  EXPECT_EQ((*resumed)->size(), 12u);
  ASSERT_TRUE((*resumed)->append("second half"));
  ASSERT_TRUE((*resumed)->commit("sha256:" + sha256_hex("first half, second half")));
}

TEST_F(BlobStoreTest, UploadIdsAndDigestsNeverBecomePaths) {
  EXPECT_FALSE(store_->resume_upload("../../etc/passwd"));
  EXPECT_FALSE(store_->has_upload("../hub.db"));
  EXPECT_FALSE(store_->has("sha256:../../x"));
  EXPECT_FALSE(is_digest("sha256:" + std::string(64, 'A')));
  EXPECT_TRUE(is_digest("sha256:" + std::string(64, 'a')));
  EXPECT_FALSE(store_->remove("md5:abc"));
}

}  // namespace
}  // namespace sluice::hub
