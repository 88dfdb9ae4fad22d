// The Azure access check without a network: a scripted transport answers the token request and the blob
// calls, so the advice for a missing role assignment (which Azurite cannot produce: it has no RBAC) and for a
// wrong secret is checked word for word.
#include <gtest/gtest.h>

#include "aws/fake_transport.h"
#include "azure/fake_responses.h"
#include "storage_access/destination_check.h"

namespace sluice::storage_access {
namespace {

using aws::testing::FakeTransport;
using aws::testing::MakeResponse;
using azure::testing::AzureError;
using azure::testing::kPermissionMismatchMessage;

constexpr char kClient[] = "11111111-2222-3333-4444-555555555555";
constexpr char kTenant[] = "72f988bf-86f1-41af-91ab-2d7cd011db47";

AzureLocation Location() {
  return AzureLocation{.storage_account = "acmeexports",
                       .container = "mixpanel",
                       .prefix = "events",
                       .tenant_id = kTenant,
                       .client_id = kClient,
                       .client_secret = Secret("the-Secret-value"),
                       .endpoint = "",
                       .authority_host = ""};
}

CheckContext Context(std::shared_ptr<FakeTransport> transport) {
  CheckContext ctx;
  ctx.transport = transport;
  ctx.retry.max_attempts = 1;
  ctx.azure_env = [](std::string_view) -> std::optional<std::string> { return std::nullopt; };
  return ctx;
}

http::OutboundResponse Token() { return azure::testing::EntraToken(); }

TEST(AzureCheckTest, AMissingRoleAssignmentIsNamedWithTheAzCommand) {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (r.url.find("login.microsoftonline.com") != std::string::npos) return Token();
    return AzureError(403, "AuthorizationPermissionMismatch", kPermissionMismatchMessage);
  });
  DestinationCheckResult r = CheckDestination(Location(), Context(transport));
  ASSERT_FALSE(r.ok());
  const CheckStep* put = nullptr;
  for (const auto& s : r.steps) {
    if (s.name == "put") put = &s;
  }
  ASSERT_NE(put, nullptr) << r.ToText();
  EXPECT_FALSE(put->ok);
  EXPECT_NE(put->message.find("Assign Storage Blob Data Contributor to the service principal " +
                              std::string(kClient) + " on container mixpanel of account acmeexports"),
            std::string::npos)
      << put->message;
  EXPECT_NE(put->policy_statement.find("az role assignment create --assignee " + std::string(kClient)),
            std::string::npos)
      << put->policy_statement;
  EXPECT_NE(put->policy_statement.find("/blobServices/default/containers/mixpanel"), std::string::npos);
  EXPECT_EQ(put->action, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write");
  EXPECT_EQ(r.ToText().find("the-Secret-value"), std::string::npos);
}

TEST(AzureCheckTest, AWrongSecretNamesTheCredentialsAndSkipsTheObjectSteps) {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (r.url.find("login.microsoftonline.com") != std::string::npos) {
      return azure::testing::EntraInvalidClient();
    }
    return MakeResponse(500, "unexpected");
  });
  DestinationCheckResult r = CheckDestination(Location(), Context(transport));
  ASSERT_FALSE(r.ok());
  ASSERT_FALSE(r.steps.empty());
  EXPECT_EQ(r.steps[0].name, "identity");
  EXPECT_NE(r.steps[0].message.find("check client_secret"), std::string::npos) << r.steps[0].message;
  EXPECT_NE(r.steps[0].message.find(kClient), std::string::npos);
  for (size_t i = 1; i < r.steps.size(); ++i) EXPECT_TRUE(r.steps[i].skipped) << r.steps[i].name;
  EXPECT_EQ(r.ToText().find("the-Secret-value"), std::string::npos);
  for (const auto& req : transport->requests()) {
    EXPECT_NE(req.url.find("login.microsoftonline.com/" + std::string(kTenant)), std::string::npos)
        << req.url;
  }
}

// An import's check (Purpose::kRead): identity, list, get and nothing written; a denial names Storage Blob Data
// Reader, the role an import needs, with its az command.
TEST(AzureCheckTest, TheReadOnlyCheckListsAndReadsAndNamesTheReaderRole) {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (r.url.find("login.microsoftonline.com") != std::string::npos) return Token();
    return AzureError(403, "AuthorizationPermissionMismatch", kPermissionMismatchMessage);
  });
  CheckContext ctx = Context(transport);
  ctx.purpose = Purpose::kRead;
  DestinationCheckResult r = CheckDestination(Location(), ctx);
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.steps.size(), 3u) << r.ToText();
  EXPECT_EQ(r.steps[0].name, "identity");
  EXPECT_TRUE(r.steps[0].ok) << r.ToText();
  EXPECT_EQ(r.steps[1].name, "list");
  EXPECT_EQ(r.steps[2].name, "get");
  for (size_t i = 1; i < 3; ++i) {
    EXPECT_FALSE(r.steps[i].ok);
    EXPECT_NE(r.steps[i].message.find("Assign Storage Blob Data Reader to the service principal " +
                                      std::string(kClient) + " on container mixpanel of account acmeexports"),
              std::string::npos)
        << r.steps[i].message;
    EXPECT_NE(r.steps[i].policy_statement.find("--role \"Storage Blob Data Reader\""), std::string::npos)
        << r.steps[i].policy_statement;
  }
  for (const auto& req : transport->requests()) {
    if (req.url.find("login.microsoftonline.com") != std::string::npos) continue;
    EXPECT_EQ(req.method, "GET") << req.url;
  }
  EXPECT_EQ(r.ToText().find("the-Secret-value"), std::string::npos);
}

TEST(AzureCheckTest, TheReadOnlyCheckPassesOnAReadableContainer) {
  auto transport = std::make_shared<FakeTransport>();
  transport->SetHandler([](const http::OutboundRequest& r) -> Result<http::OutboundResponse> {
    if (r.url.find("login.microsoftonline.com") != std::string::npos) return Token();
    if (r.url.find("comp=list") != std::string::npos) {
      return MakeResponse(200,
                          "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults><Blobs><Blob><Name>events/"
                          "a.json</Name><Properties><Content-Length>10</Content-Length><Etag>\"e1\"</Etag>"
                          "</Properties></Blob></Blobs><NextMarker /></EnumerationResults>");
    }
    return MakeResponse(206, "{", {{"content-length", "1"}, {"content-range", "bytes 0-0/10"}});
  });
  CheckContext ctx = Context(transport);
  ctx.purpose = Purpose::kRead;
  DestinationCheckResult r = CheckDestination(Location(), ctx);
  EXPECT_TRUE(r.ok()) << r.ToText();
  ASSERT_EQ(r.steps.size(), 3u) << r.ToText();
  EXPECT_NE(r.steps[2].message.find("events/a.json"), std::string::npos) << r.ToText();
  for (const auto& req : transport->requests()) {
    if (req.url.find("login.microsoftonline.com") != std::string::npos) continue;
    EXPECT_EQ(req.method, "GET") << req.url;
  }
}

}  // namespace
}  // namespace sluice::storage_access
