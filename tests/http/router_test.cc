// Router, header and request-decoding helpers (no sockets).
#include <gtest/gtest.h>

#include <stdexcept>

#include "common/crypto.h"
#include "http/server.h"

namespace sluice::http {
namespace {

Request MakeRequest(std::string method, std::string path) {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  return request;
}

Handler Echo(std::string name) {
  return [name](Request& request) {
    std::string body = name;
    for (const auto& [key, value] : request.path_params) body += " " + key + "=" + value;
    return Response::Text(200, body);
  };
}

TEST(RouterTest, MatchesLiteralAndCaptureSegments) {
  Router router;
  router.Add("GET", "/healthz", Echo("health"));
  router.Add("GET", "/api/app/projects/{id}/connectors/{connector}", Echo("connector"));
  std::string label;
  auto request = MakeRequest("GET", "/api/app/projects/42/connectors/s3-main");
  Response response = router.Dispatch(request, &label);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "connector connector=s3-main id=42");
  EXPECT_EQ(label, "/api/app/projects/{id}/connectors/{connector}");
  EXPECT_EQ(request.path_params.at("id"), "42");

  auto health = MakeRequest("GET", "/healthz");
  EXPECT_EQ(router.Dispatch(health, &label).body, "health");
  EXPECT_EQ(label, "/healthz");
}

TEST(RouterTest, TrailingSlashIsTolerated) {
  Router router;
  router.Add("POST", "/import", Echo("import"));
  router.Add("GET", "/", Echo("root"));
  auto request = MakeRequest("POST", "/import/");
  EXPECT_EQ(router.Dispatch(request).status, 200);
  auto root = MakeRequest("GET", "/");
  EXPECT_EQ(router.Dispatch(root).body, "root");
}

TEST(RouterTest, UnknownPathIs404WithJsonError) {
  Router router;
  router.Add("GET", "/track", Echo("track"));
  std::string label;
  auto request = MakeRequest("GET", "/nope\"x");
  Response response = router.Dispatch(request, &label);
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.body, R"({"error":"no route for GET /nope\"x","status":"error"})");
  EXPECT_EQ(response.headers.Get("content-type").value_or(""), "application/json");
  EXPECT_EQ(label, "unmatched");
  // Same segment count, different literal.
  auto other = MakeRequest("GET", "/trackx");
  EXPECT_EQ(router.Dispatch(other).status, 404);
}

TEST(RouterTest, KnownPathWithOtherMethodIs405WithAllow) {
  Router router;
  router.Add("GET", "/track", Echo("get"));
  router.Add("POST", "/track", Echo("post"));
  std::string label;
  auto request = MakeRequest("DELETE", "/track");
  Response response = router.Dispatch(request, &label);
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.body, R"({"error":"method DELETE is not allowed for /track","status":"error"})");
  EXPECT_EQ(response.headers.Get("Allow").value_or(""), "GET, POST");
  EXPECT_EQ(label, "unmatched");
}

TEST(RouterTest, LiteralRouteBeatsCaptureRegardlessOfOrder) {
  Router router;
  router.Add("GET", "/projects/{id}", Echo("capture"));
  router.Add("GET", "/projects/list", Echo("literal"));
  auto literal = MakeRequest("GET", "/projects/list");
  EXPECT_EQ(router.Dispatch(literal).body, "literal");
  auto capture = MakeRequest("GET", "/projects/7");
  EXPECT_EQ(router.Dispatch(capture).body, "capture id=7");
}

TEST(RouterTest, ThrowingHandlerBecomes500) {
  Router router;
  router.Add("GET", "/boom", [](Request&) -> Response { throw std::runtime_error("kaput"); });
  auto request = MakeRequest("GET", "/boom");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.body, R"({"error":"internal error: kaput","status":"error"})");
}

TEST(DecodeTest, PercentDecode) {
  EXPECT_EQ(PercentDecode("a%20b%2Fc%2b", false).value(), "a b/c+");
  EXPECT_EQ(PercentDecode("a+b", true).value(), "a b");
  EXPECT_EQ(PercentDecode("a+b", false).value(), "a+b");
  EXPECT_EQ(PercentDecode("%e2%82%AC", false).value(), "\xe2\x82\xac");
  EXPECT_EQ(PercentDecode("", true).value(), "");
  EXPECT_FALSE(PercentDecode("100%", true));
  EXPECT_FALSE(PercentDecode("%4", true));
  EXPECT_FALSE(PercentDecode("%zz", true));
  EXPECT_FALSE(PercentDecode("%%41", true));
}

TEST(DecodeTest, ParseFormKeepsOrderAndDecodes) {
  auto pairs = ParseForm("data=eyJ+a%3D%3D&verbose=1&&flag&empty=&data=second&bad=100%&%zz=x");
  std::vector<std::pair<std::string, std::string>> expected = {
      {"data", "eyJ a=="}, {"verbose", "1"}, {"flag", ""}, {"empty", ""},
      {"data", "second"},  {"bad", "100%"},  {"%zz", "x"}};
  EXPECT_EQ(pairs, expected);
  EXPECT_TRUE(ParseForm("").empty());
  EXPECT_EQ(ParseForm("a=b=c"), (std::vector<std::pair<std::string, std::string>>{{"a", "b=c"}}));
}

TEST(DecodeTest, RequestQueryReturnsFirst) {
  Request request;
  request.query = ParseForm("a=1&b=2&a=3");
  EXPECT_EQ(request.Query("a").value(), "1");
  EXPECT_EQ(request.Query("b").value(), "2");
  EXPECT_FALSE(request.Query("c"));
}

TEST(HeadersTest, CaseInsensitiveAddSetGet) {
  Headers headers;
  headers.Add("Content-Type", "text/plain");
  headers.Add("X-Multi", "1");
  headers.Add("x-multi", "2");
  EXPECT_EQ(headers.Get("content-type").value(), "text/plain");
  EXPECT_EQ(headers.Get("X-MULTI").value(), "1");
  EXPECT_FALSE(headers.Get("missing"));
  headers.Set("X-MULTI", "3");
  EXPECT_EQ(headers.Get("x-multi").value(), "3");
  EXPECT_EQ(headers.entries().size(), 2u);
}

Headers WithAuthorization(std::string value) {
  Headers headers;
  headers.Add("authorization", std::move(value));
  return headers;
}

TEST(AuthTest, BasicAuthForms) {
  // Mixpanel's form: the API secret as user, empty password.
  auto secret = ParseBasicAuth(WithAuthorization("Basic " + Base64Encode("s3cr3t:")));
  ASSERT_TRUE(secret);
  EXPECT_EQ(secret->user, "s3cr3t");
  EXPECT_EQ(secret->password, "");
  auto pair = ParseBasicAuth(WithAuthorization("basic   " + Base64Encode("svc-user:pa:ss")));
  ASSERT_TRUE(pair);
  EXPECT_EQ(pair->user, "svc-user");
  EXPECT_EQ(pair->password, "pa:ss");  // only the first ':' separates
  auto bare = ParseBasicAuth(WithAuthorization("Basic " + Base64Encode("justsecret")));
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->user, "justsecret");

  EXPECT_FALSE(ParseBasicAuth(Headers()));
  EXPECT_FALSE(ParseBasicAuth(WithAuthorization("Basic")));
  EXPECT_FALSE(ParseBasicAuth(WithAuthorization("Basic !!!not-base64")));
  EXPECT_FALSE(ParseBasicAuth(WithAuthorization("Bearer " + Base64Encode("a:b"))));
  EXPECT_FALSE(ParseBasicAuth(WithAuthorization("Basicx " + Base64Encode("a:b"))));
  EXPECT_FALSE(ParseBasicAuth(WithAuthorization("Basic " + Base64Encode(":"))));
}

TEST(AuthTest, BearerToken) {
  EXPECT_EQ(ParseBearer(WithAuthorization("Bearer abc.def-123")).value(), "abc.def-123");
  EXPECT_EQ(ParseBearer(WithAuthorization("bearer  tok ")).value(), "tok");
  EXPECT_FALSE(ParseBearer(WithAuthorization("Bearer")));
  EXPECT_FALSE(ParseBearer(WithAuthorization("Bearer   ")));
  EXPECT_FALSE(ParseBearer(WithAuthorization("Basic abc")));
  EXPECT_FALSE(ParseBearer(Headers()));
}

TEST(ResponseTest, JsonAndTextHelpers) {
  Response json = Response::Json(201, R"({"ok":true})");
  EXPECT_EQ(json.status, 201);
  EXPECT_EQ(json.headers.Get("Content-Type").value(), "application/json");
  Response text = Response::Text(200, "1");
  EXPECT_EQ(text.headers.Get("Content-Type").value(), "text/plain; charset=utf-8");
  Response metrics = Response::Text(200, "", "text/plain; version=0.0.4");
  EXPECT_EQ(metrics.headers.Get("Content-Type").value(), "text/plain; version=0.0.4");
}

// ---- CORS
// -------------------------------------------------------------------------------------------------------

Router CorsRouter() {
  Router router;
  router.Add("GET", "/track", Echo("track"));
  router.Add("POST", "/track", Echo("track"));
  router.Add("POST", "/import", [](Request&) { return Response::Json(429, JsonErrorBody("slow down")); });
  router.Add("GET", "/api/app/projects", Echo("projects"));
  router.Add("POST", "/api/app/projects", Echo("create"));
  router.AllowCrossOrigin("/track");
  router.AllowCrossOrigin("/import");
  router.AllowCrossOrigin("/groups");  // opened before any route exists, as the service may do
  return router;
}

TEST(CorsTest, PreflightOnAnOpenedPathAllowsItsMethodsAndTheRequestedHeaders) {
  Router router = CorsRouter();
  auto request = MakeRequest("OPTIONS", "/track/");
  request.headers.Add("Origin", "http://127.0.0.1:5000");
  request.headers.Add("Access-Control-Request-Method", "POST");
  request.headers.Add("Access-Control-Request-Headers", "content-type,x-sluice-test");
  std::string label;
  Response response = router.Dispatch(request, &label);
  EXPECT_EQ(response.status, 204);
  EXPECT_EQ(response.body, "");
  EXPECT_EQ(label, "/track");
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Origin").value_or(""), "http://127.0.0.1:5000");
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Credentials").value_or(""), "true");
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Methods").value_or(""), "GET, POST, OPTIONS");
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Headers").value_or(""), "content-type,x-sluice-test");
  EXPECT_EQ(response.headers.Get("Access-Control-Max-Age").value_or(""), "86400");
  EXPECT_NE(response.headers.Get("Vary").value_or("").find("Origin"), std::string_view::npos);
}

TEST(CorsTest, RequestedHeadersThatAreNotHeaderNamesAreNotEchoed) {
  Router router = CorsRouter();
  auto request = MakeRequest("OPTIONS", "/track");
  request.headers.Add("Origin", "http://127.0.0.1:5000");
  request.headers.Add("Access-Control-Request-Method", "POST");
  request.headers.Add("Access-Control-Request-Headers", "x-a\"<script>");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 204);
  EXPECT_FALSE(response.headers.Get("Access-Control-Allow-Headers").has_value());
}

TEST(CorsTest, EveryAnswerOnAnOpenedPathCarriesAllowOrigin) {
  Router router = CorsRouter();
  auto ok = MakeRequest("POST", "/track");
  ok.headers.Add("Origin", "http://example.test");
  Response response = router.Dispatch(ok);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Origin").value_or(""), "http://example.test");
  EXPECT_EQ(response.headers.Get("Access-Control-Expose-Headers").value_or(""), "Retry-After");

  // Errors too (a 429 from the handler, a 405 from the router), so the SDK can see them and retry.
  auto limited = MakeRequest("POST", "/import");
  limited.headers.Add("Origin", "http://example.test");
  Response too_many = router.Dispatch(limited);
  EXPECT_EQ(too_many.status, 429);
  EXPECT_EQ(too_many.headers.Get("Access-Control-Allow-Origin").value_or(""), "http://example.test");
  auto wrong_method = MakeRequest("DELETE", "/track");
  wrong_method.headers.Add("Origin", "http://example.test");
  EXPECT_EQ(router.Dispatch(wrong_method).headers.Get("Access-Control-Allow-Origin").value_or(""),
            "http://example.test");

  // Without an Origin (curl, server SDKs) the answer is still readable from anywhere, without credentials.
  auto plain = MakeRequest("GET", "/track");
  Response any = router.Dispatch(plain);
  EXPECT_EQ(any.headers.Get("Access-Control-Allow-Origin").value_or(""), "*");
  EXPECT_FALSE(any.headers.Get("Access-Control-Allow-Credentials").has_value());
}

TEST(CorsTest, PreflightOnImportAllowsOnlyItsMethods) {
  Router router = CorsRouter();
  auto request = MakeRequest("OPTIONS", "/import");
  request.headers.Add("Origin", "http://example.test");
  request.headers.Add("Access-Control-Request-Method", "POST");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 204);
  EXPECT_EQ(response.headers.Get("Access-Control-Allow-Methods").value_or(""), "POST, OPTIONS");
}

TEST(CorsTest, AnOpenedPathWithoutRoutesIsStill404) {
  Router router = CorsRouter();
  auto request = MakeRequest("OPTIONS", "/groups");
  request.headers.Add("Origin", "http://example.test");
  request.headers.Add("Access-Control-Request-Method", "POST");
  Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 404);
  EXPECT_FALSE(response.headers.Get("Access-Control-Allow-Methods").has_value());
  // Once the route exists, the same registration covers it.
  router.Add("POST", "/groups", Echo("groups"));
  EXPECT_EQ(router.Dispatch(request).status, 204);
}

TEST(CorsTest, AnswersBeforeRoutingGetTheHeadersOnOpenedPathsOnly) {
  Router router = CorsRouter();
  Headers track;
  router.AddCrossOriginHeaders("/track/?verbose=1", "http://example.test", track);
  EXPECT_EQ(track.Get("Access-Control-Allow-Origin").value_or(""), "http://example.test");
  EXPECT_EQ(track.Get("Access-Control-Allow-Credentials").value_or(""), "true");
  Headers admin;
  router.AddCrossOriginHeaders("/api/app/projects", "http://example.test", admin);
  EXPECT_TRUE(admin.entries().empty());
}

TEST(CorsTest, AdminPathsStayClosedToBrowsers) {
  Router router = CorsRouter();
  auto preflight = MakeRequest("OPTIONS", "/api/app/projects");
  preflight.headers.Add("Origin", "http://evil.test");
  preflight.headers.Add("Access-Control-Request-Method", "POST");
  preflight.headers.Add("Access-Control-Request-Headers", "authorization");
  Response response = router.Dispatch(preflight);
  EXPECT_EQ(response.status, 405);
  for (const char* name : {"Access-Control-Allow-Origin", "Access-Control-Allow-Methods",
                           "Access-Control-Allow-Headers", "Access-Control-Allow-Credentials"}) {
    EXPECT_FALSE(response.headers.Get(name).has_value()) << name;
  }
  auto get = MakeRequest("GET", "/api/app/projects");
  get.headers.Add("Origin", "http://evil.test");
  Response listed = router.Dispatch(get);
  EXPECT_EQ(listed.status, 200);
  EXPECT_FALSE(listed.headers.Get("Access-Control-Allow-Origin").has_value());
}

// Cross-site request forgery: a page of another website posting a form here makes the browser send any
// Basic credential it saved for this server (a project secret typed into the login prompt). Outside the paths
// opened to browsers, a request the browser marks as another site's is refused before its handler runs.
TEST(CorsTest, ChangesFromAnotherSitesPageAreRefusedOutsideTheOpenedPaths) {
  int created = 0;
  Router router = CorsRouter();
  router.Add("POST", "/api/2.0/{project}/pipeline/pause", [&](Request&) {
    ++created;
    return Response::Text(200, "paused");
  });
  const auto post = [&](std::string path, std::vector<std::pair<std::string, std::string>> headers) {
    auto request = MakeRequest("POST", std::move(path));
    request.headers.Add("Host", "sluice.example:8080");
    for (auto& [name, value] : headers) request.headers.Add(name, value);
    return router.Dispatch(request);
  };
  for (const char* site : {"cross-site", "same-site", "Cross-Site", "something-new"}) {
    Response refused =
        post("/api/2.0/1/pipeline/pause", {{"Sec-Fetch-Site", site}, {"Origin", "http://evil.test"}});
    EXPECT_EQ(refused.status, 403) << site;
    EXPECT_NE(refused.body.find("cross-site request refused"), std::string::npos) << refused.body;
  }
  // Older browsers without Sec-Fetch-Site: the Origin must be this host.
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Origin", "http://evil.test"}}).status, 403);
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Origin", "null"}}).status,
            403);  // sandboxed frames, data: URLs
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Origin", "http://sluice.example:8081"}}).status, 403);
  EXPECT_EQ(post("/api/app/projects", {{"Origin", "http://evil.test"}}).status, 403);
  EXPECT_EQ(created, 0);
  // The console's own requests, what the user typed, and clients that are not browsers pass.
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Sec-Fetch-Site", "same-origin"}}).status, 200);
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Sec-Fetch-Site", "none"}}).status, 200);
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {{"Origin", "https://SLUICE.example:8080"}}).status, 200);
  EXPECT_EQ(post("/api/2.0/1/pipeline/pause", {}).status, 200);
  EXPECT_EQ(created, 4);
  // Reads stay open (the page cannot see their answers without CORS headers), and so do the paths opened to
  // browser SDKs, whatever site they run on.
  auto get = MakeRequest("GET", "/api/app/projects");
  get.headers.Add("Sec-Fetch-Site", "cross-site");
  EXPECT_EQ(router.Dispatch(get).status, 200);
  EXPECT_EQ(post("/track", {{"Sec-Fetch-Site", "cross-site"}, {"Origin", "http://shop.test"}}).status, 200);
}

}  // namespace
}  // namespace sluice::http
