// The ClickHouse client without a server: URL building, gzip bodies, error classes, retries and failover
// between replicas through a scripted transport.
#include "clickhouse/client.h"

#include <gtest/gtest.h>

#include <deque>
#include <mutex>
#include <thread>

#include "clickhouse/schema.h"
#include "common/compression.h"
#include "common/vector_state.h"

namespace sluice::clickhouse {
namespace {

using std::chrono::milliseconds;

// Answers from a script; records every request.
class ScriptedTransport : public http::HttpTransport {
 public:
  std::deque<Result<http::OutboundResponse>> script;
  std::vector<http::OutboundRequest> sent;

  Result<http::OutboundResponse> Send(const http::OutboundRequest& request,
                                      std::chrono::steady_clock::time_point) override {
    sent.push_back(request);
    if (script.empty()) return http::OutboundResponse{200, {}, "ok\n"};
    auto next = std::move(script.front());
    script.pop_front();
    return next;
  }
  // A 2xx body goes to the sink in 4-byte chunks; status 0 streams its body and then fails as a connection
  // reset in the middle of the answer would.
  Result<http::OutboundResponse> SendStreaming(const http::OutboundRequest& request,
                                               std::chrono::steady_clock::time_point deadline,
                                               const std::function<bool(std::string_view)>& sink) override {
    auto r = Send(request, deadline);
    if (!r.ok() || (r->status / 100 != 2 && r->status != 0)) return r;
    for (size_t at = 0; at < r->body.size(); at += 4) {
      if (!sink(std::string_view(r->body).substr(at, 4))) return Error(ErrorCode::kCancelled, "sink stopped");
    }
    if (r->status == 0) return Error(ErrorCode::kTransient, "connection reset by peer");
    r->body.clear();
    return r;
  }
};

http::OutboundResponse Answer(int status, std::string body) {
  return http::OutboundResponse{status, {}, body};
}

struct Fixture {
  std::shared_ptr<ScriptedTransport> transport = std::make_shared<ScriptedTransport>();
  std::vector<milliseconds> sleeps;
  std::unique_ptr<Client> client;

  explicit Fixture(
      std::string_view url_text = "clickhouse://127.0.0.1:8123,127.0.0.1:8124/sluice?cluster=c") {
    ClientOptions o;
    o.url = ParseClickHouseUrl(url_text).value();
    o.transport = transport;
    o.sleep = [this](milliseconds d) { sleeps.push_back(d); };
    client = Client::Create(std::move(o)).value();
  }
  std::string HostOf(size_t i) const {
    const std::string& url = transport->sent[i].url;
    return url.substr(7, url.find('/', 7) - 7);
  }
};

TEST(ClickHouseClient, QuerySendsSqlAsBodyAndSettingsAsParameters) {
  Fixture f;
  RequestOptions o;
  o.settings = {{"max_execution_time", "5"}};
  auto r = f.client->Query("SELECT 1 FORMAT TSV", o);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  ASSERT_EQ(f.transport->sent.size(), 1u);
  const auto& req = f.transport->sent[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.url, "http://127.0.0.1:8123/?max_execution_time=5");
  EXPECT_EQ(*req.body.data, "SELECT 1 FORMAT TSV");
  EXPECT_TRUE(req.headers.empty());  // no credentials configured, no gzip
}

TEST(ClickHouseClient, QueryStreamingHandsTheAnswerOverInChunksAndStopsWhenAsked) {
  Fixture f;
  f.transport->script.push_back(Answer(200, "abcdefghij"));
  std::string got;
  ASSERT_TRUE(f.client->QueryStreaming("SELECT x FORMAT RowBinary", [&](std::string_view c) {
    got += c;
    return true;
  }).ok());
  EXPECT_EQ(got, "abcdefghij");
  f.transport->script.push_back(Answer(200, "abcdefghij"));
  got.clear();
  ASSERT_TRUE(f.client->QueryStreaming("SELECT x", [&](std::string_view c) {
    got += c;
    return false;  // enough
  }).ok());
  EXPECT_EQ(got, "abcd");
}

TEST(ClickHouseClient, QueryStreamingFailsOverOnlyBeforeTheFirstChunk) {
  Fixture f;
  // A replica that cannot answer now: retried on the other replica, nothing delivered yet.
  f.transport->script.push_back(Answer(500, "Code: 285, e.displayText() = DB::Exception: Too few live replicas"));
  f.transport->script.push_back(Answer(200, "rows"));
  std::string got;
  ASSERT_TRUE(f.client->QueryStreaming("SELECT x", [&](std::string_view c) {
    got += c;
    return true;
  }).ok());
  EXPECT_EQ(got, "rows");
  EXPECT_EQ(f.transport->sent.size(), 2u);
  EXPECT_NE(f.HostOf(0), f.HostOf(1));
  // Reset after part of the answer reached the caller: a retry would hand the same rows over twice.
  f.transport->script.push_back(Answer(0, "partial"));
  got.clear();
  auto st = f.client->QueryStreaming("SELECT x", [&](std::string_view c) {
    got += c;
    return true;
  });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(got, "partial");
  EXPECT_EQ(f.transport->sent.size(), 3u);
}

TEST(ClickHouseClient, InsertSendsGzipJsonEachRowWithQueryInUrl) {
  Fixture f;
  InsertBody body;
  Event e;
  e.name = "Signup \"x\"";
  e.distinct_id = "u1";
  e.time_us = 1'700'000'000'123'456;
  e.insert_id = "i1";
  e.properties = R"({"plan":"pro"})";
  AppendEventRow(body, 7, e, 42);
  body.AppendRow(R"({"project_id":1})");
  EXPECT_EQ(body.rows(), 2u);
  auto request_body = body.Finish();
  RequestOptions o;
  o.settings = {{"insert_quorum", "2"}};
  ASSERT_TRUE(f.client->InsertJsonEachRow("sluice.events", request_body, o).ok());
  const auto& req = f.transport->sent.at(0);
  EXPECT_EQ(
      req.url,
      "http://127.0.0.1:8123/?query=INSERT%20INTO%20sluice.events%20FORMAT%20JSONEachRow&insert_quorum=2");
  ASSERT_EQ(req.headers.size(), 1u);
  EXPECT_EQ(req.headers[0], (std::pair<std::string, std::string>{"Content-Encoding", "gzip"}));
  auto plain = GunzipBounded(*req.body.data, 1 << 20);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(*plain,
            "{\"project_id\":7,\"time\":1700000000,\"time_us\":1700000000123456,\"distinct_id\":\"u1\","
            "\"name\":\"Signup \\\"x\\\"\",\"insert_id\":\"i1\",\"device_id\":\"\",\"user_id\":\"\","
            "\"properties\":\"{\\\"plan\\\":\\\"pro\\\"}\",\"version\":42}\n{\"project_id\":1}\n");
}

TEST(ClickHouseClient, InsertBodyCompressesLargeBatches) {
  InsertBody body;
  std::string row = R"({"project_id":1,"properties":")" + std::string(900, 'x') + "\"}";
  for (int i = 0; i < 5000; ++i) body.AppendRow(row);
  uint64_t raw = body.raw_bytes();
  auto finished = body.Finish();
  EXPECT_LT(finished.data->size() * 20, raw);
  auto plain = GunzipBounded(*finished.data, raw + 1);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->size(), raw);
}

// isa-l's deflate returns with the AVX upper state dirty; InsertBody clears it (common/vector_state.h).
TEST(ClickHouseClient, InsertBodyReturnsWithTheUpperVectorStateClean) {
  std::thread t([] {
    InsertBody body;
    const std::string row = R"({"project_id":1,"properties":")" + std::string(900, 'x') + "\"}";
    ClearUpperVectorState();
    for (int i = 0; i < 5000; ++i) body.AppendRow(row);
    EXPECT_FALSE(UpperVectorStateDirty());
    auto finished = body.Finish();
    EXPECT_FALSE(UpperVectorStateDirty());
    EXPECT_GT(finished.data->size(), 0u);
  });
  t.join();
}

TEST(ClickHouseClient, RejectsTableNamesThatAreNotIdentifiers) {
  Fixture f;
  InsertBody body;
  auto st = f.client->InsertJsonEachRow("events; DROP TABLE x", body.Finish());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kInvalidArgument);
  EXPECT_TRUE(f.transport->sent.empty());
}

TEST(ClickHouseClient, FailsOverToTheNextReplicaAndRemembersIt) {
  Fixture f;
  f.transport->script.push_back(Error(ErrorCode::kUnavailable, "cannot connect"));
  f.transport->script.push_back(Answer(200, "18.16.1\n"));
  auto v = f.client->Version();
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->major, 18);
  EXPECT_EQ(v->minor, 16);
  ASSERT_EQ(f.transport->sent.size(), 2u);
  EXPECT_EQ(f.HostOf(0), "127.0.0.1:8123");
  EXPECT_EQ(f.HostOf(1), "127.0.0.1:8124");
  EXPECT_TRUE(f.sleeps.empty());  // the first failover to another replica does not wait
  EXPECT_EQ(f.client->preferred_host(), 1u);
  ASSERT_TRUE(f.client->Query("SELECT 1").ok());
  EXPECT_EQ(f.HostOf(2), "127.0.0.1:8124");
}

TEST(ClickHouseClient, RetriesTransientServerErrorsWithBackoff) {
  Fixture f("clickhouse://127.0.0.1:8123/sluice");
  f.transport->script.push_back(Answer(500,
                                       "Code: 285, e.displayText() = DB::Exception: Number of alive replicas "
                                       "(1) is less than requested quorum (2)."));
  f.transport->script.push_back(
      Answer(500, "Code: 242, e.displayText() = DB::Exception: Table is in readonly mode"));
  f.transport->script.push_back(Answer(200, ""));
  InsertBody body;
  body.AppendRow("{}");
  ASSERT_TRUE(f.client->InsertJsonEachRow("sluice.events", body.Finish()).ok());
  EXPECT_EQ(f.transport->sent.size(), 3u);
  EXPECT_EQ(f.sleeps.size(), 2u);
}

TEST(ClickHouseClient, NonIdempotentRequestsFailOverOnlyWhenNothingWasSent) {
  Fixture f;
  RequestOptions once;
  once.idempotent = false;
  f.transport->script.push_back(Error(ErrorCode::kTransient, "connection reset during the transfer"));
  auto r = f.client->Query("INSERT INTO t VALUES (1)", once);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kTransient);
  EXPECT_EQ(f.transport->sent.size(), 1u);

  f.transport->script.push_back(Error(ErrorCode::kUnavailable, "cannot connect"));
  ASSERT_TRUE(f.client->Query("INSERT INTO t VALUES (1)", once).ok());
  EXPECT_EQ(f.transport->sent.size(), 3u);
}

TEST(ClickHouseClient, PermanentErrorsAreNotRetried) {
  Fixture f;
  f.transport->script.push_back(Answer(404,
                                       "Code: 60, e.displayText() = DB::Exception: Table sluice.nope doesn't "
                                       "exist., e.what() = DB::Exception\n"));
  auto r = f.client->Query("SELECT * FROM nope");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(r.error().provider_code, "60");
  EXPECT_EQ(r.error().http_status, 404);
  EXPECT_NE(r.error().message.find("127.0.0.1:8123"), std::string::npos);
  EXPECT_NE(r.error().message.find("doesn't exist"), std::string::npos);
  EXPECT_EQ(f.transport->sent.size(), 1u);
}

TEST(ClickHouseClient, GivesUpAfterMaxAttemptsNamingTheLastReplica) {
  Fixture f;
  for (int i = 0; i < 10; ++i)
    f.transport->script.push_back(Error(ErrorCode::kUnavailable, "cannot connect"));
  auto r = f.client->Query("SELECT 1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("unreachable"), std::string::npos) << r.error().message;
  EXPECT_EQ(f.transport->sent.size(), 4u);
}

TEST(ClickHouseClient, OnlyHostPinsOneReplica) {
  Fixture f;
  RequestOptions pinned;
  pinned.only_host = 1;
  f.transport->script.push_back(Error(ErrorCode::kUnavailable, "cannot connect"));
  f.transport->script.push_back(Answer(200, "1\n"));
  ASSERT_TRUE(f.client->Query("SELECT 1", pinned).ok());
  EXPECT_EQ(f.HostOf(0), "127.0.0.1:8124");
  EXPECT_EQ(f.HostOf(1), "127.0.0.1:8124");
  EXPECT_EQ(f.client->preferred_host(), 0u);
  pinned.only_host = 5;
  EXPECT_FALSE(f.client->Query("SELECT 1", pinned).ok());
}

TEST(ClickHouseClient, CredentialsGoInBasicAuthNeverInTheUrl) {
  auto transport = std::make_shared<ScriptedTransport>();
  ClientOptions o;
  o.url = ParseClickHouseUrl("clickhouse://127.0.0.1:8123/sluice").value();
  o.transport = transport;
  o.user = "sluice";
  o.password = Secret("s3cret");
  auto client = Client::Create(std::move(o)).value();
  ASSERT_TRUE(client->Query("SELECT 1").ok());
  const auto& req = transport->sent.at(0);
  EXPECT_EQ(req.url.find("s3cret"), std::string::npos);
  ASSERT_EQ(req.headers.size(), 1u);
  EXPECT_EQ(req.headers[0].first, "Authorization");
  EXPECT_EQ(req.headers[0].second, "Basic c2x1aWNlOnMzY3JldA==");
}

// A password given without a user is the `default` user's (as clickhouse-client takes it), never dropped;
// with neither, no Authorization header is sent (ClickHouse's passwordless default user).
TEST(ClickHouseClient, APasswordWithoutAUserIsTheDefaultUsers) {
  for (const bool with_password : {true, false}) {
    SCOPED_TRACE(with_password ? "password" : "no password");
    auto transport = std::make_shared<ScriptedTransport>();
    ClientOptions o;
    o.url = ParseClickHouseUrl("clickhouse://127.0.0.1:8123/sluice").value();
    o.transport = transport;
    if (with_password) o.password = Secret("s3cret");
    auto client = Client::Create(std::move(o)).value();
    ASSERT_TRUE(client->Query("SELECT 1").ok());
    const auto& req = transport->sent.at(0);
    if (!with_password) {
      EXPECT_TRUE(req.headers.empty());
      continue;
    }
    ASSERT_EQ(req.headers.size(), 1u);
    EXPECT_EQ(req.headers[0].first, "Authorization");
    EXPECT_EQ(req.headers[0].second, "Basic ZGVmYXVsdDpzM2NyZXQ=");  // default:s3cret
  }
}

TEST(ClickHouseClient, CheckServerRefusesOldVersionsAndNamesTheUrl) {
  Fixture f;
  f.transport->script.push_back(Answer(200, "1.1.54388\n"));
  auto st = f.client->CheckServer();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("older than the 18.16"), std::string::npos) << st.error().message;
  // It works before Sluice's database exists: no database= parameter.
  EXPECT_EQ(f.transport->sent[0].url, "http://127.0.0.1:8123/");

  Fixture down;
  for (int i = 0; i < 10; ++i)
    down.transport->script.push_back(Error(ErrorCode::kUnavailable, "cannot connect"));
  st = down.client->CheckServer();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(st.error().message.find("clickhouse://127.0.0.1:8123,127.0.0.1:8124/sluice"), std::string::npos)
      << st.error().message;

  Fixture current;
  current.transport->script.push_back(Answer(200, "24.8.4.13\n"));
  EXPECT_TRUE(current.client->CheckServer().ok());
}

TEST(ClickHouseClient, ClassifiesServerCodes) {
  EXPECT_EQ(ClassifyResponse(500, "Code: 285, e.displayText() = ...", "h").code, ErrorCode::kTransient);
  EXPECT_EQ(ClassifyResponse(500, "Code: 252, Too many parts", "h").code, ErrorCode::kThrottled);
  EXPECT_EQ(ClassifyResponse(400, "Code: 62, Syntax error", "h").code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ClassifyResponse(500, "Code: 115, Unknown setting async_insert", "h").code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ClassifyResponse(500, "Code: 516, Authentication failed", "h").code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(ClassifyResponse(500, "Code: 81, Database x doesn't exist", "h").code, ErrorCode::kNotFound);
  EXPECT_EQ(ClassifyResponse(500, "Code: 1, unsupported", "h").code, ErrorCode::kPermanent);
  EXPECT_EQ(ClassifyResponse(502, "<html>bad gateway</html>", "h").code, ErrorCode::kTransient);
  EXPECT_EQ(ClassifyResponse(401, "", "h").code, ErrorCode::kUnauthenticated);
}

TEST(ClickHouseClient, ParsesVersions) {
  auto v = ParseServerVersion("18.16.1\n");
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->AtLeast(18, 16));
  EXPECT_FALSE(v->AtLeast(19, 1));
  v = ParseServerVersion("23.8");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->minor, 8);
  EXPECT_FALSE(ParseServerVersion("nonsense").ok());
}

TEST(EventsSchema, StatementsForAClusterAndForOneServer) {
  EventsSchema clustered{"sluice", "c", 2};
  auto sql = clustered.Statements();
  ASSERT_EQ(sql.size(), 3u);
  EXPECT_EQ(sql[0], "CREATE DATABASE IF NOT EXISTS sluice ON CLUSTER c");
  EXPECT_NE(sql[1].find("CREATE TABLE IF NOT EXISTS sluice.events_local ON CLUSTER c"), std::string::npos);
  EXPECT_NE(sql[1].find("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/sluice/events_local', "
                        "'{replica}', version)"),
            std::string::npos)
      << sql[1];
  EXPECT_NE(
      sql[1].find("PARTITION BY toDate(time) ORDER BY (project_id, time, distinct_id, name, insert_id)"),
      std::string::npos);
  EXPECT_NE(sql[2].find("ENGINE = Distributed(c, sluice, events_local, cityHash64(project_id, distinct_id))"),
            std::string::npos);
  EXPECT_EQ(clustered.EventsTable(), "sluice.events");
  EXPECT_EQ(clustered.LocalTable(), "sluice.events_local");
  EXPECT_EQ(clustered.DurableInsertSettings(),
            (Settings{{"insert_distributed_sync", "1"}, {"insert_quorum", "2"}}));

  EventsSchema single{"sluice", "", 1};
  sql = single.Statements();
  ASSERT_EQ(sql.size(), 2u);
  EXPECT_EQ(sql[0], "CREATE DATABASE IF NOT EXISTS sluice");
  EXPECT_NE(sql[1].find("CREATE TABLE IF NOT EXISTS sluice.events (project_id UInt32"), std::string::npos);
  EXPECT_NE(sql[1].find("ENGINE = ReplacingMergeTree(version)"), std::string::npos);
  EXPECT_EQ(single.EventsTable(), single.LocalTable());
  EXPECT_TRUE(single.DurableInsertSettings().empty());

  auto support = clustered.SupportStatements();
  ASSERT_EQ(support.size(), 4u);
  EXPECT_NE(support[0].find("CREATE TABLE IF NOT EXISTS sluice.events_changes_local ON CLUSTER c"),
            std::string::npos);
  EXPECT_NE(support[0].find("ReplicatedMergeTree('/clickhouse/tables/{shard}/sluice/events_changes_local', "
                            "'{replica}')"),
            std::string::npos)
      << support[0];
  EXPECT_NE(support[1].find("Distributed(c, sluice, events_changes_local, cityHash64(project_id))"),
            std::string::npos);
  EXPECT_NE(support[2].find("ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/sluice/identity_local', "
                            "'{replica}', rank)"),
            std::string::npos)
      << support[2];
  EXPECT_NE(support[3].find("Distributed(c, sluice, identity_local, cityHash64(project_id, device_id))"),
            std::string::npos);
  support = single.SupportStatements();
  ASSERT_EQ(support.size(), 2u);
  EXPECT_NE(support[0].find("sluice.events_changes (project_id UInt32"), std::string::npos);
  EXPECT_NE(support[0].find("ENGINE = MergeTree() PARTITION BY"), std::string::npos) << support[0];
  EXPECT_NE(support[1].find("ENGINE = ReplacingMergeTree(rank)"), std::string::npos) << support[1];
  EXPECT_EQ(QuoteString("it's \\ x"), "'it\\'s \\\\ x'");

  EventsSchema three{"sluice", "c", 3};
  EXPECT_EQ(three.DurableInsertSettings().back().second, "2");  // a majority of 3
}

}  // namespace
}  // namespace sluice::clickhouse
