// Profile updates as data for the store (store::ProfileOps): one ProfileUpdate encoded as a JSON object, and
// the store::ProfileFolder that decodes and applies them with ApplyProfileUpdates. A store that keeps
// operations as a log (the ClickHouse backend) folds the same encoded operations again at read time, on any
// node, so the encoding carries everything the fold needs (the country the edge geolocated included) and
// nothing else (no token, and no IP address: Mixpanel keeps none).
//
//   {"op":"$set","arg":{"plan":"pro"},"time_ms":1764979200000,"ignore_time":false,"ignore_alias":false,
//    "country":"DE"}
//
// Operations written before 2026-12 carried "ip" and "request_ip" instead of "country"; they still decode,
// and the addresses are ignored (a fold no longer turns them into a $ip property).
//
// Numbers of `arg` keep their text (profile JSON, ingest.h), so a fold far from the request gives the same
// profile bytes as the request's own node would.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"
#include "ingest/ingest.h"
#include "store/store.h"

namespace sluice::ingest {

/// The encoded form of `update` for store::ProfileOps::ops.
std::string EncodeProfileUpdate(const ProfileUpdate& update);

/// An update decoded from EncodeProfileUpdate's text (token, distinct_id, group_key and ip stay empty: the
/// store keys the profile). kInvalidArgument naming the problem for any other text.
Result<ProfileUpdate> DecodeProfileUpdate(std::string_view encoded);

/// Folds encoded updates with ApplyProfileUpdates' semantics (one call's updates of one profile form one
/// span: a profile limit broken by the span refuses the whole span). An operation that cannot be decoded is
/// refused alone (reason "unreadable_operation"). Stateless and thread-safe.
class ProfileUpdateFolder final : public store::ProfileFolder {
 public:
  store::ProfileFold Fold(const std::optional<std::string>& current,
                          std::span<const std::string> ops) const override;
};

}  // namespace sluice::ingest
