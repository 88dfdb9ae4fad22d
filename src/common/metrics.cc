#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace sluice {
namespace {

bool IsValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

/// Appends `{a="x",b="y"` + extra + `}`; `extra` is an already formatted pair such as `le="0.5"`.
void AppendLabels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                  std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    out += EscapeLabelValue(values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!names.empty()) out += ',';
    out += extra;
  }
  out += '}';
}

}  // namespace

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, end);
}

// ---- Histogram ------------------------------------------------------------------------------------------------

Histogram::Histogram(std::shared_ptr<const std::vector<double>> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_->size() + 1]) {
  for (size_t i = 0; i <= bounds_->size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // `le` is inclusive: the first bound >= value takes it; past the last bound is the +Inf bucket.
  auto it = std::lower_bound(bounds_->begin(), bounds_->end(), value);
  counts_[static_cast<size_t>(it - bounds_->begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

// ---- Families -------------------------------------------------------------------------------------------------

namespace metrics_internal {

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names,
                       std::string_view type)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)), type_(type) {
  if (!IsValidName(name_, /*allow_colon=*/true)) throw std::logic_error("invalid metric name '" + name_ + "'");
  for (const auto& label : label_names_) {
    // "le" is reserved for histogram buckets; names starting with "__" are reserved by Prometheus.
    if (!IsValidName(label, /*allow_colon=*/false) || label.starts_with("__") || label == "le") {
      throw std::logic_error("invalid label name '" + label + "' for metric " + name_);
    }
  }
}

void FamilyBase::Render(std::string& out) const {
  out += "# HELP ";
  out += name_;
  out += ' ';
  out += EscapeHelp(help_);
  out += "\n# TYPE ";
  out += name_;
  out += ' ';
  out += type_;
  out += '\n';
  RenderSamples(out);
}

void FamilyBase::CheckArity(size_t count) const {
  if (count != label_names_.size()) {
    throw std::logic_error("metric " + name_ + " takes " + std::to_string(label_names_.size()) +
                           " label values, got " + std::to_string(count));
  }
}

}  // namespace metrics_internal

CounterFamily::CounterFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), std::move(label_names), "counter") {}

void CounterFamily::RenderChild(std::string& out, const std::vector<std::string>& values,
                                const sluice::Counter& child) const {
  out += name();
  AppendLabels(out, label_names(), values);
  out += ' ';
  out += std::to_string(child.Value());
  out += '\n';
}

GaugeFamily::GaugeFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : Family(std::move(name), std::move(help), std::move(label_names), "gauge") {}

void GaugeFamily::RenderChild(std::string& out, const std::vector<std::string>& values,
                              const sluice::Gauge& child) const {
  out += name();
  AppendLabels(out, label_names(), values);
  out += ' ';
  out += FormatMetricValue(child.Value());
  out += '\n';
}

HistogramFamily::HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                                 std::vector<double> bounds)
    : Family(std::move(name), std::move(help), std::move(label_names), "histogram"),
      bounds_(std::make_shared<const std::vector<double>>(std::move(bounds))) {
  if (bounds_->empty()) throw std::logic_error("histogram " + this->name() + " needs at least one bucket");
  for (size_t i = 0; i < bounds_->size(); ++i) {
    if (std::isnan((*bounds_)[i]) || (i > 0 && (*bounds_)[i] <= (*bounds_)[i - 1])) {
      throw std::logic_error("histogram " + this->name() + " bucket bounds must be strictly increasing");
    }
  }
}

void HistogramFamily::RenderChild(std::string& out, const std::vector<std::string>& values,
                                  const sluice::Histogram& child) const {
  // The count is the sum of the buckets (not a separate atomic) so _count always equals the +Inf bucket.
  uint64_t cumulative = 0;
  const auto& bounds = *bounds_;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += child.BucketCount(i);
    std::string le = "le=\"";
    le += i < bounds.size() ? FormatMetricValue(bounds[i]) : "+Inf";
    le += '"';
    out += name();
    out += "_bucket";
    AppendLabels(out, label_names(), values, le);
    out += ' ';
    out += std::to_string(cumulative);
    out += '\n';
  }
  out += name();
  out += "_sum";
  AppendLabels(out, label_names(), values);
  out += ' ';
  out += FormatMetricValue(child.Sum());
  out += '\n';
  out += name();
  out += "_count";
  AppendLabels(out, label_names(), values);
  out += ' ';
  out += std::to_string(cumulative);
  out += '\n';
}

CallbackGauge::CallbackGauge(std::string name, std::string help, std::function<double()> callback,
                             std::string_view type)
    : FamilyBase(std::move(name), std::move(help), {}, type), callback_(std::move(callback)) {}

void CallbackGauge::RenderSamples(std::string& out) const {
  out += name();
  out += ' ';
  out += FormatMetricValue(callback_());
  out += '\n';
}

// ---- Registry -------------------------------------------------------------------------------------------------

template <typename F>
F& MetricsRegistry::Register(std::string_view name, std::string_view type, const std::vector<std::string>& label_names,
                             const std::function<std::unique_ptr<F>()>& make) {
  std::lock_guard lock(mu_);
  for (const auto& family : families_) {
    if (family->name() != name) continue;
    auto* existing = dynamic_cast<F*>(family.get());
    if (existing == nullptr || family->type() != type || family->label_names() != label_names) {
      throw std::logic_error("metric " + std::string(name) + " is already registered with another type or labels");
    }
    return *existing;
  }
  auto family = make();
  F& ref = *family;
  families_.push_back(std::move(family));
  return ref;
}

CounterFamily& MetricsRegistry::Counter(std::string_view name, std::string_view help,
                                        std::vector<std::string> label_names) {
  auto& family = Register<CounterFamily>(name, "counter", label_names, [&] {
    return std::make_unique<CounterFamily>(std::string(name), std::string(help), label_names);
  });
  if (family.label_names().empty()) family.WithLabels({});
  return family;
}

GaugeFamily& MetricsRegistry::Gauge(std::string_view name, std::string_view help,
                                    std::vector<std::string> label_names) {
  auto& family = Register<GaugeFamily>(name, "gauge", label_names, [&] {
    return std::make_unique<GaugeFamily>(std::string(name), std::string(help), label_names);
  });
  if (family.label_names().empty()) family.WithLabels({});
  return family;
}

HistogramFamily& MetricsRegistry::Histogram(std::string_view name, std::string_view help,
                                            std::vector<std::string> label_names, std::vector<double> bounds) {
  auto& family = Register<HistogramFamily>(name, "histogram", label_names, [&] {
    return std::make_unique<HistogramFamily>(std::string(name), std::string(help), label_names, bounds);
  });
  if (family.bounds() != bounds) {
    throw std::logic_error("histogram " + std::string(name) + " is already registered with other buckets");
  }
  if (family.label_names().empty()) family.WithLabels({});
  return family;
}

void MetricsRegistry::GaugeCallback(std::string_view name, std::string_view help, std::function<double()> callback) {
  bool created = false;
  Register<CallbackGauge>(name, "gauge", {}, [&] {
    created = true;
    return std::make_unique<CallbackGauge>(std::string(name), std::string(help), std::move(callback));
  });
  // Two callbacks for one series would silently drop one of them.
  if (!created) throw std::logic_error("gauge callback " + std::string(name) + " is already registered");
}

void MetricsRegistry::CounterCallback(std::string_view name, std::string_view help, std::function<double()> callback) {
  bool created = false;
  Register<CallbackGauge>(name, "counter", {}, [&] {
    created = true;
    return std::make_unique<CallbackGauge>(std::string(name), std::string(help), std::move(callback), "counter");
  });
  if (!created) throw std::logic_error("counter callback " + std::string(name) + " is already registered");
}

std::string MetricsRegistry::Render() const {
  // Families are never removed, so the pointers stay valid after the lock is released; rendering (and gauge
  // callbacks, which may take other locks) runs without the registry lock.
  std::vector<const metrics_internal::FamilyBase*> families;
  {
    std::lock_guard lock(mu_);
    families.reserve(families_.size());
    for (const auto& family : families_) families.push_back(family.get());
  }
  std::string out;
  for (const auto* family : families) family->Render(out);
  return out;
}

}  // namespace sluice
