// A small thread-safe Prometheus registry: counters, gauges and histograms with labels, rendered in the text
// exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/).
//
// There is deliberately no process-wide default registry: whoever serves /metrics owns a MetricsRegistry and
// passes it (or the families it hands out) to the code it instruments, so tests get isolated registries.
//
// Hot path: look a child up once and keep the reference — `Counter& ok = requests.WithLabels({"import", "200"});`
// then `ok.Inc();` is a single relaxed atomic add. References returned by WithLabels stay valid for the life of
// the registry (children are never removed). WithLabels itself takes a shared lock (an exclusive one only the
// first time a label combination is seen), so calling it per request is fine too.
//
// Misuse (a bad metric name, a wrong number of label values, re-registering a name with another type) is a
// programming error and throws std::logic_error.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

/// A monotonically increasing integer count (requests, events, bytes). Lock-free.
class Counter {
 public:
  void Inc(uint64_t n = 1) { value_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> value_{0};
};

/// A value that goes up and down. Lock-free.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Counts observations into fixed buckets (upper bounds inclusive, as Prometheus' `le`). Lock-free; a scrape
/// racing with Observe may see the sum and the buckets one observation apart, which Prometheus tolerates.
class Histogram {
 public:
  /// `bounds` must be strictly increasing; +Inf is implicit.
  explicit Histogram(std::shared_ptr<const std::vector<double>> bounds);
  void Observe(double value);

  const std::vector<double>& bounds() const { return *bounds_; }
  /// Non-cumulative count of bucket `i` (i == bounds().size() is the +Inf bucket).
  uint64_t BucketCount(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::shared_ptr<const std::vector<double>> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

namespace metrics_internal {

/// Orders label-value tuples; transparent so lookups need no allocation.
struct LabelValuesLess {
  using is_transparent = void;
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

/// What the registry needs from every family: its name and how to print it.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, std::string_view type);
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  std::string_view type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }
  /// Appends `# HELP`, `# TYPE` and every sample.
  void Render(std::string& out) const;

 protected:
  /// Appends the samples only.
  virtual void RenderSamples(std::string& out) const = 0;
  /// Throws std::logic_error unless `count` matches the number of label names.
  void CheckArity(size_t count) const;

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  std::string_view type_;
};

/// Children keyed by label values, created on first use and never removed.
template <typename Child>
class Family : public FamilyBase {
 public:
  using FamilyBase::FamilyBase;

  /// The child for these label values (one per label name, in order). The reference is stable.
  Child& WithLabels(std::initializer_list<std::string_view> values) {
    return WithLabelValues(std::span<const std::string_view>(values.begin(), values.size()));
  }
  Child& WithLabelValues(std::span<const std::string_view> values) {
    {
      std::shared_lock lock(mu_);
      auto it = children_.find(values);
      if (it != children_.end()) return *it->second;
    }
    CheckArity(values.size());
    std::unique_lock lock(mu_);
    auto it = children_.find(values);
    if (it != children_.end()) return *it->second;
    std::vector<std::string> key(values.begin(), values.end());
    return *children_.emplace(std::move(key), NewChild()).first->second;
  }

 protected:
  virtual std::unique_ptr<Child> NewChild() const = 0;
  virtual void RenderChild(std::string& out, const std::vector<std::string>& values, const Child& child) const = 0;

  void RenderSamples(std::string& out) const override {
    std::shared_lock lock(mu_);
    for (const auto& [values, child] : children_) RenderChild(out, values, *child);
  }

 private:
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>, LabelValuesLess> children_;
};

}  // namespace metrics_internal

/// Counters sharing a name, one per label-value combination.
class CounterFamily final : public metrics_internal::Family<Counter> {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names);

 private:
  std::unique_ptr<Counter> NewChild() const override { return std::make_unique<Counter>(); }
  void RenderChild(std::string& out, const std::vector<std::string>& values, const Counter& child) const override;
};

/// Gauges sharing a name, one per label-value combination.
class GaugeFamily final : public metrics_internal::Family<Gauge> {
 public:
  GaugeFamily(std::string name, std::string help, std::vector<std::string> label_names);

 private:
  std::unique_ptr<Gauge> NewChild() const override { return std::make_unique<Gauge>(); }
  void RenderChild(std::string& out, const std::vector<std::string>& values, const Gauge& child) const override;
};

/// Histograms sharing a name and bucket bounds, one per label-value combination.
class HistogramFamily final : public metrics_internal::Family<Histogram> {
 public:
  /// Throws std::logic_error unless `bounds` is non-empty and strictly increasing.
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bounds);
  const std::vector<double>& bounds() const { return *bounds_; }

 private:
  std::unique_ptr<Histogram> NewChild() const override { return std::make_unique<Histogram>(bounds_); }
  void RenderChild(std::string& out, const std::vector<std::string>& values,
                   const Histogram& child) const override;

  std::shared_ptr<const std::vector<double>> bounds_;
};

/// A gauge computed when scraped (store size, queue depth): nothing to update on the hot path.
class CallbackGauge final : public metrics_internal::FamilyBase {
 public:
  CallbackGauge(std::string name, std::string help, std::function<double()> callback,
                std::string_view type = "gauge");

 private:
  void RenderSamples(std::string& out) const override;
  std::function<double()> callback_;
};

/// Owns metric families and renders them in registration order. Thread-safe.
class MetricsRegistry {
 public:
  MetricsRegistry() = default;
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// Registers (or returns the already registered) counter family `name`. Without labels the single child
  /// exists from the start, so the series renders as 0 before its first increment.
  CounterFamily& Counter(std::string_view name, std::string_view help, std::vector<std::string> label_names = {});
  /// Registers (or returns) a gauge family.
  GaugeFamily& Gauge(std::string_view name, std::string_view help, std::vector<std::string> label_names = {});
  /// Registers (or returns) a histogram family with fixed upper bounds (+Inf implied).
  HistogramFamily& Histogram(std::string_view name, std::string_view help, std::vector<std::string> label_names,
                             std::vector<double> bounds);
  /// Registers an unlabelled gauge whose value `callback` computes at every scrape. The callback runs on the
  /// scraping thread without registry locks held, so it may take its own locks. A name can carry one callback.
  void GaugeCallback(std::string_view name, std::string_view help, std::function<double()> callback);
  /// As GaugeCallback, for a monotonic total kept elsewhere (rendered with TYPE counter).
  void CounterCallback(std::string_view name, std::string_view help, std::function<double()> callback);

  /// The whole registry in the text exposition format 0.0.4
  /// (serve as `Content-Type: text/plain; version=0.0.4; charset=utf-8`).
  std::string Render() const;

 private:
  template <typename F>
  F& Register(std::string_view name, std::string_view type, const std::vector<std::string>& label_names,
              const std::function<std::unique_ptr<F>()>& make);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<metrics_internal::FamilyBase>> families_;
};

/// Prometheus label-value escaping: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);
/// Formats a sample value as Prometheus does: shortest round-trip form, "+Inf", "-Inf", "NaN".
std::string FormatMetricValue(double value);

}  // namespace sluice
