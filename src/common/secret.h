// Secret: a string that prints as *** everywhere (streams, fmt, spdlog). Call Reveal() only where the
// value must leave the process (signing, an HTTP header, the one response that hands it out).
#pragma once

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>

namespace sluice {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  const std::string& Reveal() const { return value_; }
  bool empty() const { return value_.empty(); }

  friend bool operator==(const Secret&, const Secret&) = delete;  // use ConstantTimeEquals

  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "***"; }

 private:
  std::string value_;
};

}  // namespace sluice

template <>
struct fmt::formatter<sluice::Secret> : fmt::formatter<std::string_view> {
  template <typename Ctx>
  auto format(const sluice::Secret&, Ctx& ctx) const {
    return fmt::formatter<std::string_view>::format("***", ctx);
  }
};
