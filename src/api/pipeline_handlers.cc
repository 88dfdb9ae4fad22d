// Routes of the pipeline management API. Filled in by the pipeline work (issue 4).
#include "api/service_impl.h"

namespace sluice::api {

void ServiceImpl::RegisterPipelineRoutes() {}

}  // namespace sluice::api
