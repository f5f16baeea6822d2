#include "common/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/error_text.h"

namespace chainscale {
namespace {

constexpr size_t kMaxLabelValueBytes = 128;

// Some label values come from clients (an agent's id, say): a long one is cut, and
// marked with a hash of the whole value (64-bit FNV-1a, stable across restarts) so that
// different values stay different series.
std::string BoundedLabelValue(absl::string_view value) {
  if (value.size() <= kMaxLabelValueBytes) return std::string(value);
  uint64_t hash = 14695981039346656037ull;
  for (unsigned char c : value) {
    hash ^= c;
    hash *= 1099511628211ull;
  }
  return absl::StrCat(TruncateUtf8(value, 64), "#", absl::Hex(hash, absl::kZeroPad16));
}

}  // namespace

std::string RenderLabels(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::string value = absl::StrReplaceAll(
        BoundedLabelValue(labels[i].second), {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}});
    absl::StrAppend(&out, i == 0 ? "" : ",", labels[i].first, "=\"", value, "\"");
  }
  out.push_back('}');
  return out;
}

void Metrics::Describe(absl::string_view name, absl::string_view type, absl::string_view help) {
  absl::MutexLock lock(&mu_);
  Family& family = families_[std::string(name)];
  family.type = std::string(type);
  family.help = std::string(help);
}

void Metrics::Add(absl::string_view name, const MetricLabels& labels, double delta) {
  const std::string key = RenderLabels(labels);
  absl::MutexLock lock(&mu_);
  families_[std::string(name)].samples[key] += delta;
}

void Metrics::Set(absl::string_view name, const MetricLabels& labels, double value) {
  const std::string key = RenderLabels(labels);
  absl::MutexLock lock(&mu_);
  families_[std::string(name)].samples[key] = value;
}

void Metrics::AddCollector(std::function<void(std::string*)> collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

void Metrics::RecordRpc(absl::string_view method, absl::string_view code,
                        absl::Duration elapsed) {
  Add("chainscale_rpc_requests_total",
      {{"method", std::string(method)}, {"code", std::string(code)}});
  // A summary without quantiles: its _sum and _count samples live in one family.
  const std::string labels = RenderLabels({{"method", std::string(method)}});
  absl::MutexLock lock(&mu_);
  Family& family = families_["chainscale_rpc_duration_seconds"];
  family.samples["_sum" + labels] += absl::ToDoubleSeconds(elapsed);
  family.samples["_count" + labels] += 1;
}

std::string Metrics::Render() const {
  {
    absl::MutexLock lock(&render_mu_);
    if (rendering_) {
      // Share the render under way: it began before this scrape, by less than its length.
      const uint64_t renders = renders_;
      auto done = [this, renders]() ABSL_SHARED_LOCKS_REQUIRED(render_mu_) {
        return renders_ != renders;
      };
      ++waiting_;
      render_mu_.Await(absl::Condition(&done));
      --waiting_;
      return *last_;
    }
    rendering_ = true;
  }
  auto text = std::make_shared<const std::string>(RenderNow());
  absl::MutexLock lock(&render_mu_);
  last_ = text;
  rendering_ = false;
  ++renders_;
  return *text;
}

int Metrics::ScrapesWaiting() const {
  absl::MutexLock lock(&render_mu_);
  return waiting_;
}

std::string Metrics::RenderNow() const {
  std::string out;
  std::vector<std::function<void(std::string*)>> collectors;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, family] : families_) {
      if (!family.help.empty()) absl::StrAppend(&out, "# HELP ", name, " ", family.help, "\n");
      if (!family.type.empty()) absl::StrAppend(&out, "# TYPE ", name, " ", family.type, "\n");
      for (const auto& [labels, value] : family.samples) {
        absl::StrAppend(&out, name, labels, " ", value, "\n");
      }
    }
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect(&out);
  return out;
}

}  // namespace chainscale
