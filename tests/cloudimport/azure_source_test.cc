// connector_type azureImport without a network: the create body's Azure properties (the Azure pipeline's
// names), the client secret kept in the stored record but never in an API answer, abusive names refused at
// the edge, and the create-time access check on a scripted transport — read-only (no blob is written), a 403
// naming Storage Blob Data Reader with the `az role assignment create` command, a refused secret naming the
// credentials (Azurite has no RBAC, so the role advice is checked here word for word).
#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "aws/fake_transport.h"
#include "azure/fake_responses.h"
#include "cloudimport/connector.h"
#include "cloudimport/source.h"

namespace sluice::cloudimport {
namespace {

namespace json = boost::json;
using aws::testing::FakeTransport;
using aws::testing::MakeResponse;
using azure::testing::AzureError;

constexpr char kTenant[] = "72f988bf-86f1-41af-91ab-2d7cd011db47";
constexpr char kClient[] = "11111111-2222-3333-4444-555555555555";
constexpr char kSecret[] = "az~Import.secret_0123456789";

json::object AzureBody() {
  return json::object{
      {"connector_type", "azureImport"},
      {"label", "from azure"},
      {"connector_properties", json::object{{"storage_account", "acmeexports"},
                                            {"container_name", "mixpanel"},
                                            {"prefix", "/incoming/"},
                                            {"client_id", kClient},
                                            {"client_secret", kSecret},
                                            {"tenant_id", kTenant}}},
      {"category_properties", json::object{{"data_format", "mixpanel_event"}, {"compression", "gzip"}}}};
}

ValidationIssue Refusal(const json::object& body) {
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(body, 7, &issue);
  EXPECT_FALSE(spec.ok());
  return issue;
}

TEST(AzureConnectorSpecTest, ParsesTheAzurePropertiesAndNeverAnswersTheSecret) {
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(AzureBody(), 7, &issue);
  ASSERT_TRUE(spec.ok()) << issue.message;
  EXPECT_TRUE(spec->is_azure());
  EXPECT_EQ(spec->azure_storage_account, "acmeexports");
  EXPECT_EQ(spec->azure_container, "mixpanel");
  EXPECT_EQ(spec->azure_prefix, "incoming/");
  EXPECT_EQ(spec->key_prefix(), "incoming/");
  EXPECT_EQ(spec->bucket(), "mixpanel");
  EXPECT_EQ(spec->azure_client_secret.Reveal(), kSecret);

  ConnectorRecord record;
  record.spec = *spec;
  record.spec.id = "c1";
  const std::string answer = json::serialize(ConnectorJson(record));
  EXPECT_EQ(answer.find(kSecret), std::string::npos) << answer;
  EXPECT_EQ(answer.find("client_secret"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("container_name":"mixpanel")"), std::string::npos) << answer;
  EXPECT_NE(answer.find(R"("client_id":")" + std::string(kClient)), std::string::npos) << answer;

  // The stored record keeps it (the runs after a restart need it) and reads it back.
  const std::string stored = SerializeRecord(record);
  EXPECT_NE(stored.find(kSecret), std::string::npos);
  auto back = ParseRecord(stored);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_TRUE(back->spec.is_azure());
  EXPECT_EQ(back->spec.azure_client_secret.Reveal(), kSecret);
  EXPECT_EQ(back->spec.azure_tenant_id, kTenant);
  EXPECT_EQ(back->spec.azure_prefix, "incoming/");
  EXPECT_EQ(json::serialize(ConnectorJson(*back)), answer);
}

TEST(AzureConnectorSpecTest, AbusiveNamesAreRefusedAtTheEdgeNamingTheProperty) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"storage_account", "acmeexports/../other"},
      {"storage_account", "https://evil.example"},
      {"storage_account", "acme\nexports"},
      {"container_name", "../mixpanel"},
      {"container_name", "mixpanel/other"},
      {"container_name", "mix\x01panel"},
      {"container_name", "https://evil.example/c"},
      {"prefix", "incoming/../../other"},
      {"prefix", ".."},
      {"prefix", "a\\b"},
      {"prefix",
       "in\x7f"
       "coming"},
      {"tenant_id", "../../common/oauth2"},
      {"tenant_id", "https://evil.example/tenant"},
      {"tenant_id", "contoso.onmicrosoft.com\r\nHost: x"},
      {"client_id", "not-a-guid"},
      {"azure_endpoint", "https://127.0.0.1:1/devstoreaccount1?x"},
      {"azure_endpoint", "file:///etc/passwd"}};
  for (const auto& [name, value] : bad) {
    SCOPED_TRACE(name + "=" + value);
    json::object body = AzureBody();
    body["connector_properties"].as_object()[name] = value;
    ValidationIssue issue = Refusal(body);
    EXPECT_EQ(issue.code, "invalid_property");
    EXPECT_EQ(issue.field, "connector_properties." + name);
    EXPECT_EQ(issue.message.find(kSecret), std::string::npos) << issue.message;
  }
  // A missing secret is named without an example value; a number is not a secret.
  json::object body = AzureBody();
  body["connector_properties"].as_object().erase("client_secret");
  ValidationIssue missing = Refusal(body);
  EXPECT_EQ(missing.code, "missing_required_property");
  EXPECT_EQ(missing.field, "connector_properties.client_secret");
  body["connector_properties"].as_object()["client_secret"] = 42;
  EXPECT_EQ(Refusal(body).field, "connector_properties.client_secret");
}

TEST(AzureConnectorSpecTest, OtherProvidersPropertiesAreNamedNotIgnored) {
  json::object body = AzureBody();
  body["connector_properties"].as_object()["s3_bucket"] = "acme";
  EXPECT_EQ(Refusal(body).field, "connector_properties.s3_bucket");
  body = AzureBody();
  body["connector_properties"].as_object()["gcs_bucket"] = "acme";
  EXPECT_EQ(Refusal(body).field, "connector_properties.gcs_bucket");
  json::object s3 = json::parse(R"({"connector_type":"s3Import",
    "connector_properties":{"s3_bucket":"acme-events","s3_region":"eu-west-1",
                            "s3_role":"arn:aws:iam::123456789012:role/mixpanel-import","container_name":"x"},
    "category_properties":{"data_format":"mixpanel_event"}})")
                        .as_object();
  ValidationIssue issue = Refusal(s3);
  EXPECT_EQ(issue.field, "connector_properties.container_name");
  EXPECT_NE(issue.message.find("does not apply to connector_type s3Import"), std::string::npos)
      << issue.message;
}

// ---- the create-time access check on a scripted transport

struct Checked {
  Status status;
  ValidationIssue issue;
  std::vector<http::OutboundRequest> requests;
};

Checked CheckWith(FakeTransport::Handler handler, std::string prefix = "incoming/") {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler(std::move(handler));
  json::object body = AzureBody();
  body["connector_properties"].as_object()["prefix"] = prefix;
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(body, 7, &issue);
  EXPECT_TRUE(spec.ok()) << issue.message;
  SourceContext ctx;
  ctx.transport = transport;
  ctx.retry.max_attempts = 1;
  store::Project project;
  project.id = 7;
  project.token = "tok";
  auto source = OpenSource(*spec, project, ctx);
  EXPECT_TRUE(source.ok()) << source.error().ToString();
  if (!source.ok()) return {source.error(), issue, {}};
  Checked out;
  out.status = CheckSourceAccess(*source, *spec, ExternalIdOf(project), &out.issue);
  out.requests = transport->requests();
  return out;
}

bool IsTokenRequest(const http::OutboundRequest& r) {
  return r.url.find("login.microsoftonline.com/" + std::string(kTenant) + "/oauth2/v2.0/token") !=
         std::string::npos;
}

http::OutboundResponse Token() { return azure::testing::EntraToken(); }

/// Only the token request and GETs (list, read): the import's check writes and deletes nothing.
void ExpectReadOnly(const std::vector<http::OutboundRequest>& requests) {
  for (const auto& r : requests) {
    if (IsTokenRequest(r)) continue;
    EXPECT_EQ(r.method, "GET") << r.url;
    EXPECT_NE(r.url.find("https://acmeexports.blob.core.windows.net/mixpanel"), std::string::npos) << r.url;
  }
}

TEST(AzureSourceAccessTest, AMissingReaderRoleIsNamedWithTheAzCommand) {
  Checked c = CheckWith([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (IsTokenRequest(r)) return Token();
    return AzureError(403, "AuthorizationPermissionMismatch", azure::testing::kPermissionMismatchMessage);
  });
  ASSERT_FALSE(c.status.ok());
  EXPECT_EQ(c.status.error().code, ErrorCode::kAccessDenied);
  EXPECT_EQ(c.issue.code, "invalid_permissions_azure");
  EXPECT_EQ(c.issue.field, "connector_properties.container_name");
  const std::string& m = c.issue.message;
  EXPECT_NE(m.find("the import needs Storage Blob Data Reader for the service principal " +
                   std::string(kClient) + " on container mixpanel of storage account acmeexports"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("az role assignment create --assignee " + std::string(kClient) +
                   " --role \"Storage Blob Data Reader\""),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("/blobServices/default/containers/mixpanel"), std::string::npos) << m;
  EXPECT_EQ(m.find(kSecret), std::string::npos) << m;
  ExpectReadOnly(c.requests);
}

TEST(AzureSourceAccessTest, ARefusedSecretNamesTheCredentials) {
  Checked c = CheckWith([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (IsTokenRequest(r)) {
      return azure::testing::EntraInvalidClient();
    }
    return MakeResponse(500, "no blob request may be sent without a token");
  });
  ASSERT_FALSE(c.status.ok());
  EXPECT_EQ(c.issue.code, "invalid_permissions_azure");
  EXPECT_EQ(c.issue.field, "connector_properties.client_secret");
  EXPECT_NE(c.issue.message.find("check client_secret"), std::string::npos) << c.issue.message;
  EXPECT_NE(c.issue.message.find(kClient), std::string::npos) << c.issue.message;
  EXPECT_EQ(c.issue.message.find(kSecret), std::string::npos) << c.issue.message;
  for (const auto& r : c.requests) EXPECT_TRUE(IsTokenRequest(r)) << r.url;
}

TEST(AzureSourceAccessTest, AnEmptyPrefixPassesWithAListAndAMissingBlob) {
  int gets = 0;
  Checked c = CheckWith([&](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (IsTokenRequest(r)) return Token();
    ++gets;
    if (r.url.find("comp=list") != std::string::npos) {
      EXPECT_NE(r.url.find("prefix=incoming%2F"), std::string::npos) << r.url;
      return MakeResponse(
          200,
          "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ContainerName=\"mixpanel\">"
          "<Blobs /><NextMarker /></EnumerationResults>");
    }
    EXPECT_NE(r.url.find("/mixpanel/incoming/.sluice-access-check-"), std::string::npos) << r.url;
    return AzureError(404, "BlobNotFound", "The specified blob does not exist.");
  });
  EXPECT_TRUE(c.status.ok()) << c.status.error().ToString();
  EXPECT_EQ(gets, 2);
  ExpectReadOnly(c.requests);
}

TEST(AzureSourceAccessTest, AMissingContainerNamesIt) {
  Checked c = CheckWith([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (IsTokenRequest(r)) return Token();
    return AzureError(404, "ContainerNotFound", "The specified container does not exist.");
  });
  ASSERT_FALSE(c.status.ok());
  EXPECT_EQ(c.issue.code, "invalid_property");
  EXPECT_EQ(c.issue.field, "connector_properties.container_name");
  EXPECT_NE(c.issue.message.find("container mixpanel of storage account acmeexports does not exist"),
            std::string::npos)
      << c.issue.message;
  // A missing container pauses a connector (the customer must fix it), like a missing bucket.
  EXPECT_TRUE(IsPermanentSourceError(c.status.error()));
}

TEST(AzureSourceAccessTest, AnEndpointTheOperatorDidNotAllowIsRefusedBeforeAnyRequest) {
  auto transport = std::make_shared<FakeTransport>();
  json::object body = AzureBody();
  body["connector_properties"].as_object()["azure_endpoint"] = "https://127.0.0.1:10000";
  ValidationIssue issue;
  auto spec = ParseConnectorSpec(body, 7, &issue);
  ASSERT_TRUE(spec.ok()) << issue.message;
  SourceContext ctx;
  ctx.transport = transport;
  store::Project project;
  project.id = 7;
  auto source = OpenSource(*spec, project, ctx);
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.error().message.find("connector_properties.azure_endpoint"), std::string::npos)
      << source.error().message;
  EXPECT_TRUE(transport->requests().empty());
  // Allowed by the operator, it opens (still without a request: Open makes none).
  auto allowed = aws::EndpointPolicy::Create(
      {"https://127.0.0.1:10000"}, [](std::string_view) -> std::optional<std::string> { return {}; });
  ASSERT_TRUE(allowed.ok());
  ctx.azure_endpoints = *allowed;
  EXPECT_TRUE(OpenSource(*spec, project, ctx).ok());
  EXPECT_TRUE(transport->requests().empty());
}

}  // namespace
}  // namespace sluice::cloudimport
