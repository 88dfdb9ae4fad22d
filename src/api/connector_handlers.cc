// Routes of the connector management API. Filled in by the connector work (issue 5).
#include "api/service_impl.h"

namespace sluice::api {

void ServiceImpl::RegisterConnectorRoutes() {}

}  // namespace sluice::api
