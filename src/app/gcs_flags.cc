#include "app/gcs_flags.h"

#include <array>

namespace sluice::app {

std::span<const GcsParamFlag> GcsParamFlags() {
  static constexpr std::array<GcsParamFlag, 5> kFlags{{
      {"--gcs-bucket", "gcs_bucket", "GCS bucket name (type gcs / connector gcsImport)", true},
      {"--gcs-prefix", "gcs_prefix", "Object name prefix inside the GCS bucket (optional)", true},
      {"--gcs-region", "gcs_region", "The GCS bucket's location, e.g. US or europe-west1 (optional)", false},
      {"--gcs-endpoint", "gcs_endpoint",
       "GCS endpoint URL the server allows (--allow-gcs-endpoint) (default: Google)", true},
      {"--gcs-kms-key-name", "gcs_kms_key_name",
       "Cloud KMS key for the objects (projects/P/locations/L/keyRings/R/cryptoKeys/K; default: "
       "Google-managed)",
       false},
  }};
  return kFlags;
}

}  // namespace sluice::app
