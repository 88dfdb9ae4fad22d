#include "app/cmd_gcp.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "gcp/credentials.h"
#include "objstore/gcs/gcs_request.h"

namespace sluice::app {
namespace {

constexpr std::string_view kEmailPlaceholder = "<SLUICE_SERVICE_ACCOUNT_EMAIL>";

struct RolesFlags {
  std::string bucket;
  std::string service_account;
  std::string credentials;
  bool json = false;
};

struct Binding {
  std::string use;   // "export" or "import"
  std::string role;  // roles/storage.objectAdmin
  std::string title;
  std::string why;
};

// Data, not code: what each use needs and why.
const std::vector<Binding>& Bindings() {
  static const std::vector<Binding> kBindings{
      {"export", "roles/storage.objectAdmin", "Storage Object Admin",
       "JSON Pipelines write, read back, list and delete (the access probe, replaced partitions)"},
      {"import", "roles/storage.objectCreator", "Storage Object Creator",
       "Cloud Import: named by Mixpanel's GCS guide (creates its access probe)"},
      {"import", "roles/storage.objectViewer", "Storage Object Viewer",
       "Cloud Import lists and reads your files"},
  };
  return kBindings;
}

std::string GcloudCommand(const std::string& bucket, const std::string& email, const std::string& role) {
  return fmt::format(
      "gcloud storage buckets add-iam-policy-binding gs://{} \\\n    --member=serviceAccount:{} "
      "--role={}",
      bucket, email, role);
}

void RunRoles(const RolesFlags& flags) {
  if (auto s = objstore::gcs::ValidateBucketName(flags.bucket); !s.ok()) {
    throw CLI::ValidationError("--bucket", s.error().message);
  }
  std::string email = flags.service_account;
  std::string source = "--service-account";
  if (email.empty()) {
    std::string path = gcp::KeyFilePath(flags.credentials, gcp::SystemEnv());
    if (!path.empty()) {
      auto key = gcp::LoadServiceAccountKey(path);
      if (!key.ok()) throw CLI::RuntimeError(key.error().message, 2);
      email = key->client_email;
      source = "key file " + path;
    }
  }
  if (email.empty()) {
    email = std::string(kEmailPlaceholder);
    std::cerr
        << "No service account known: pass --service-account EMAIL, or set GOOGLE_APPLICATION_CREDENTIALS "
           "(or --gcp-credentials) to Sluice's key file; replace "
        << kEmailPlaceholder << " below with the email of the service account Sluice runs as.\n";
  } else if (email.find('@') == std::string::npos) {
    throw CLI::ValidationError(
        "--service-account",
        "\"" + email + "\" is not a service-account email (name@project.iam.gserviceaccount.com)");
  }

  if (flags.json) {
    boost::json::array bindings;
    for (const auto& b : Bindings()) {
      bindings.push_back({{"use", b.use},
                          {"role", b.role},
                          {"title", b.title},
                          {"member", "serviceAccount:" + email},
                          {"gcloud", fmt::format("gcloud storage buckets add-iam-policy-binding gs://{} "
                                                 "--member=serviceAccount:{} --role={}",
                                                 flags.bucket, email, b.role)}});
    }
    std::cout << boost::json::serialize(boost::json::object{
                     {"bucket", flags.bucket}, {"service_account", email}, {"bindings", bindings}})
              << "\n";
    return;
  }

  std::cout << fmt::format("# IAM bindings for Sluice's service account on gs://{}\n", flags.bucket);
  std::cout << fmt::format("# Service account: {}{}\n\n", email,
                           email == kEmailPlaceholder ? "" : fmt::format(" (from {})", source));
  for (const char* use : {"export", "import"}) {
    std::cout << (std::string_view(use) == "export" ? "## JSON Pipelines (export to the bucket)\n"
                                                    : "## Cloud Import (import from the bucket)\n");
    for (const auto& b : Bindings()) {
      if (b.use != use) continue;
      std::cout << fmt::format("# {} ({}): {}\n{}\n", b.title, b.role, b.why,
                               GcloudCommand(flags.bucket, email, b.role));
    }
    std::cout << "\n";
  }
  std::cout
      << "## Or in the Google Cloud console\n"
      << fmt::format("1. Open https://console.cloud.google.com/storage/browser/{};tab=permissions\n",
                     flags.bucket)
      << "2. Click \"Grant access\".\n"
      << fmt::format("3. New principals: {}\n", email)
      << "4. Assign roles: for export \"Storage Object Admin\"; for import \"Storage Object Creator\" and "
         "\"Storage Object Viewer\" (Cloud Storage > …).\n"
      << "5. Save. Bindings can take a minute to apply.\n";
}

}  // namespace

void RegisterGcpCommands(CLI::App& app) {
  CLI::App* gcp =
      app.add_subcommand("gcp", "Helpers for giving Sluice access to a Google Cloud Storage bucket");
  gcp->require_subcommand(1);
  auto flags = std::make_shared<RolesFlags>();
  CLI::App* roles = gcp->add_subcommand(
      "roles",
      "Print the IAM bindings (gcloud commands and console steps) to give Sluice's service account on a "
      "bucket: "
      "Storage Object Admin for JSON Pipelines, Storage Object Creator + Viewer for Cloud Import");
  roles->add_option("--bucket", flags->bucket, "The bucket name (without gs://)")->required();
  roles->add_option("--service-account", flags->service_account,
                    "Sluice's service-account email (default: client_email of the key file)");
  roles->add_option("--gcp-credentials", flags->credentials,
                    "Sluice's service-account key file (default: $GOOGLE_APPLICATION_CREDENTIALS)");
  roles->add_flag("--json", flags->json, "Print the bindings as JSON");
  roles->callback([flags] { RunRoles(*flags); });
}

}  // namespace sluice::app
