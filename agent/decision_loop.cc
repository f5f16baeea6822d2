#include "agent/decision_loop.h"

#include <cmath>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/chainlet_key.h"
#include "common/error_text.h"
#include "common/field_violations.h"
#include "common/selector.h"
#include "common/settings_proto.h"
#include "google/protobuf/util/time_util.h"

namespace chainscale {
namespace {

using google::protobuf::util::TimeUtil;

constexpr size_t kMaxSourceIdLength = 256;

google::protobuf::Timestamp ToTimestamp(absl::Time t) {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(t));
}

std::string KeyText(const v1::LoadReport& r) {
  return absl::StrCat(r.chain_id(), "/", r.env_name(), "/", r.chainlet_name());
}

}  // namespace

absl::Status ValidateDecisionFilter(absl::string_view chain_id, absl::string_view env_name) {
  if (chain_id.empty() && !env_name.empty()) {
    return InvalidArgumentWithViolations(
        {{"env_name", "needs chain_id: an environment is named within a chain"}});
  }
  return absl::OkStatus();
}

absl::Status ValidateLoadReport(const v1::LoadReport& report, absl::string_view prefix) {
  std::vector<FieldViolation> v;
  auto field = [&](absl::string_view name) { return absl::StrCat(prefix, name); };
  if (report.source_id().empty()) v.push_back({field("source_id"), "must not be empty"});
  if (report.source_id().size() > kMaxSourceIdLength) {
    v.push_back({field("source_id"), absl::StrCat("must be at most ", kMaxSourceIdLength,
                                                  " characters")});
  }
  if (report.chain_id().empty()) v.push_back({field("chain_id"), "must not be empty"});
  if (report.env_name().empty()) v.push_back({field("env_name"), "must not be empty"});
  if (report.chainlet_name().empty()) v.push_back({field("chainlet_name"), "must not be empty"});
  const double requests = report.in_flight_requests();
  if (!std::isfinite(requests) || requests < 0 ||
      requests > static_cast<double>(kMaxReportRequestMillis) / 1000) {
    v.push_back({field("in_flight_requests"),
                 absl::StrCat("must be a number between 0 and ", kMaxReportRequestMillis / 1000,
                              ", got ", requests)});
  }
  if (report.has_in_flight_tokens() &&
      (report.in_flight_tokens() < 0 || report.in_flight_tokens() > kMaxReportTokens)) {
    v.push_back({field("in_flight_tokens"),
                 absl::StrCat("must be between 0 and ", kMaxReportTokens, ", got ",
                              report.in_flight_tokens())});
  }
  return v.empty() ? absl::OkStatus() : InvalidArgumentWithViolations(v);
}

DecisionLoop::DecisionLoop(DecisionLoopOptions options, const Clock& clock)
    : options_(std::move(options)), clock_(clock) {}

std::unique_ptr<DecisionLoop::Chainlet> DecisionLoop::NewChainlet(const CachedChainlet& cached,
                                                                  absl::Time now) const {
  // A chainlet the loop starts serving starts from its stored decision and warms up.
  DeciderStart start;
  start.warm_up = true;
  if (cached.decision.has_value()) {
    start.replicas = cached.decision->desired_replicas();
    if (cached.decision->has_scale_down_pending_since()) {
      start.scale_down_pending_since = absl::FromUnixNanos(
          TimeUtil::TimestampToNanoseconds(cached.decision->scale_down_pending_since()));
    }
  } else {
    start.replicas = cached.settings.min_replica;
  }
  DeciderOptions options;
  options.report_staleness_seconds = options_.report_staleness_seconds;
  options.max_sources = options_.max_sources_per_chainlet;
  options.delay_tolerance = options_.decision_interval / 2;
  auto c = std::make_unique<Chainlet>(cached,
                                      ChainletDecider(cached.settings, options, start, now));
  // Watchers are told of the starting point; a first tick that keeps it is no change.
  c->told_replicas = start.replicas;
  return c;
}

void DecisionLoop::Apply(const AppliedUpdate& update) {
  const absl::Time now = clock_.Now();
  absl::MutexLock lock(&mu_);
  if (update.new_cluster) {
    // Another cluster's state: its windows and decisions mean nothing here.
    chainlets_.clear();
    changed_since_tick_.clear();
  }
  if (update.snapshot) {
    // Keep what still exists (its window and state carry on), drop the rest.
    absl::flat_hash_set<std::string> keys;
    for (const CachedChainlet& c : update.upserts) keys.insert(EncodeChainletKey(c.key));
    for (auto it = chainlets_.begin(); it != chainlets_.end();) {
      it = keys.contains(it->first) ? std::next(it) : chainlets_.erase(it);
    }
  }
  for (const CachedChainlet& cached : update.upserts) {
    std::unique_ptr<Chainlet>& slot = chainlets_[EncodeChainletKey(cached.key)];
    if (slot == nullptr) {
      slot = NewChainlet(cached, now);
    } else {
      slot->decider.set_settings(cached.settings);  // takes effect at the next decision
      slot->settings_revision = cached.revision;
    }
  }
  for (const v1::ChainletKey& key : update.removals) chainlets_.erase(EncodeChainletKey(key));
}

absl::StatusOr<std::vector<v1::ScalingDecision>> DecisionLoop::Report(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports) {
  if (reports.empty()) {
    return InvalidArgumentWithViolations({{"reports", "must hold at least one report"}});
  }
  if (reports.size() > options_.max_reports_per_batch) {
    return InvalidArgumentWithViolations(
        {{"reports", absl::StrCat("at most ", options_.max_reports_per_batch,
                                  " reports per batch, got ", reports.size())}});
  }
  std::vector<FieldViolation> violations;
  for (int i = 0; i < reports.size(); ++i) {
    absl::Status s = ValidateLoadReport(reports[i], absl::StrCat("reports[", i, "]."));
    for (FieldViolation& v : FieldViolationsOf(s)) violations.push_back(std::move(v));
  }
  if (!violations.empty()) return InvalidArgumentWithViolations(violations);

  const absl::Time now = clock_.Now();
  std::vector<std::pair<v1::ScalingDecision, bool>> changed;
  std::vector<v1::ScalingDecision> answer;
  {
    absl::MutexLock lock(&mu_);
    // Check everything before recording anything: the batch counts whole or not at all.
    std::vector<Chainlet*> targets;
    targets.reserve(reports.size());
    std::vector<std::string> unknown;
    absl::flat_hash_map<Chainlet*, int> new_sources;
    for (const v1::LoadReport& r : reports) {
      absl::StatusOr<Chainlet*> target = TargetLocked(r);
      if (absl::IsNotFound(target.status())) {
        unknown.push_back(KeyText(r));
        continue;
      }
      if (!target.ok()) return target.status();
      Chainlet* c = *target;
      // Sources new to the window within this batch must fit too.
      const LoadWindow& window = c->decider.window();
      if (!window.Knows(r.source_id()) &&
          window.source_count() + ++new_sources[c] > static_cast<size_t>(window.max_sources())) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "more than ", window.max_sources(), " sources report for ", KeyText(r)));
      }
      targets.push_back(c);
    }
    if (!unknown.empty()) {
      return absl::NotFoundError(absl::StrCat("no settings for ", QuotedList(unknown),
                                              ": the chainlet does not exist (yet)"));
    }
    absl::flat_hash_set<Chainlet*> seen;
    for (int i = 0; i < reports.size(); ++i) {
      RecordLocked(*targets[i], reports[i], now, &changed);
      if (seen.insert(targets[i]).second) answer.push_back(ToProto(*targets[i]));
    }
  }
  Notify(changed);
  return answer;
}

std::vector<absl::Status> DecisionLoop::ReportEach(
    const google::protobuf::RepeatedPtrField<v1::LoadReport>& reports) {
  std::vector<absl::Status> statuses;
  statuses.reserve(reports.size());
  for (int i = 0; i < reports.size(); ++i) {
    statuses.push_back(ValidateLoadReport(reports[i], absl::StrCat("reports[", i, "].")));
  }
  const absl::Time now = clock_.Now();
  std::vector<std::pair<v1::ScalingDecision, bool>> changed;
  {
    absl::MutexLock lock(&mu_);
    for (int i = 0; i < reports.size(); ++i) {
      if (!statuses[i].ok()) continue;
      absl::StatusOr<Chainlet*> target = TargetLocked(reports[i]);
      if (target.ok() && !(*target)->decider.window().CanAccept(reports[i].source_id())) {
        target = absl::ResourceExhaustedError(absl::StrCat(
            "more than ", (*target)->decider.window().max_sources(), " sources report for ",
            KeyText(reports[i])));
      }
      if (!target.ok()) {
        statuses[i] = target.status();
        continue;
      }
      RecordLocked(**target, reports[i], now, &changed);
    }
  }
  Notify(changed);
  return statuses;
}

absl::StatusOr<DecisionLoop::Chainlet*> DecisionLoop::TargetLocked(const v1::LoadReport& r) {
  auto it = chainlets_.find(EncodeChainletKey(r.chain_id(), r.env_name(), r.chainlet_name()));
  if (it != chainlets_.end()) return it->second.get();
  v1::ChainletKey key;
  key.set_chain_id(r.chain_id());
  key.set_env_name(r.env_name());
  if (!SelectorMatches(options_.selector, key)) {
    return absl::FailedPreconditionError(
        absl::StrCat("this agent does not serve ", KeyText(r),
                     "; report to the agent whose selector covers that environment"));
  }
  return absl::NotFoundError(absl::StrCat("no settings for ", KeyText(r)));
}

void DecisionLoop::RecordLocked(Chainlet& c, const v1::LoadReport& r, absl::Time now,
                                std::vector<std::pair<v1::ScalingDecision, bool>>* changed) {
  LoadSample sample{std::llround(r.in_flight_requests() * 1000), std::nullopt};
  if (r.has_in_flight_tokens()) sample.tokens = r.in_flight_tokens();
  // Values and the source cap were checked by the caller.
  if (!c.decider.Report(r.source_id(), sample, now).ok()) return;
  // Cold start: load reached a chainlet at zero; decide now rather than at the tick.
  if (c.decider.ColdStartDue(sample)) {
    c.decider.DecideColdStart(now);
    if (DecidedLocked(c)) {
      changed->emplace_back(ToProto(c), true);
      changed_since_tick_.push_back(changed->back().first);
    }
  }
}

bool DecisionLoop::DecidedLocked(Chainlet& c) {
  const ScaleDecision& last = c.decider.last();
  c.decided = true;
  decision_counts_[static_cast<int>(last.status)].fetch_add(1, std::memory_order_relaxed);
  const bool changed = last.desired_replicas != c.told_replicas ||
                       last.status != c.told_status || last.capped != c.told_capped;
  if (changed) {
    c.told_replicas = last.desired_replicas;
    c.told_status = last.status;
    c.told_capped = last.capped;
  }
  return changed;
}

std::vector<v1::ScalingDecision> DecisionLoop::Tick() {
  const absl::Time now = clock_.Now();
  const bool all = watchers_for_all_.load() > 0;
  std::vector<std::pair<v1::ScalingDecision, bool>> decisions;
  std::vector<v1::ScalingDecision> changed;
  {
    absl::MutexLock lock(&mu_);
    changed.swap(changed_since_tick_);
    for (auto& [key, c] : chainlets_) {
      c->decider.Decide(now);
      const bool did_change = DecidedLocked(*c);
      if (did_change) changed.push_back(ToProto(*c));
      if (did_change || all) decisions.emplace_back(did_change ? changed.back() : ToProto(*c),
                                                    did_change);
    }
  }
  Notify(decisions);
  return changed;
}

v1::ScalingDecision DecisionLoop::ToProto(const Chainlet& c) const {
  const ScaleDecision& d = c.decider.last();
  const AutoscalingSettings& settings = c.decider.settings();
  v1::ScalingDecision p;
  p.set_chain_id(c.key.chain_id());
  p.set_env_name(c.key.env_name());
  p.set_chainlet_name(c.key.chainlet_name());
  p.set_desired_replicas(d.desired_replicas);
  p.set_previous_replicas(d.previous_replicas);
  p.set_status(DecisionStatusToProto(d.status));
  p.set_reason(c.decided ? DescribeDecision(d, settings)
               : c.from_stored_decision
                   ? absl::StrCat("taken over at ", d.desired_replicas,
                                  " replicas, the stored decision")
                   : absl::StrCat("starting at ", d.desired_replicas,
                                  " replicas (min_replica; no decision stored yet)"));
  p.set_avg_in_flight_requests(d.avg_in_flight_requests);
  if (d.avg_in_flight_tokens.has_value()) p.set_avg_in_flight_tokens(*d.avg_in_flight_tokens);
  p.set_capped(d.capped);
  if (d.scale_down_pending_since.has_value()) {
    *p.mutable_scale_down_pending_since() = ToTimestamp(*d.scale_down_pending_since);
  }
  p.set_settings_revision(c.settings_revision);
  *p.mutable_decided_at() = ToTimestamp(d.decided_at);
  p.set_replicas_for_load(d.replicas_for_load);
  p.set_warming_up(d.warming_up);
  p.set_no_reports(d.no_reports);
  p.set_agent_id(options_.agent_id);
  return p;
}

absl::StatusOr<v1::ScalingDecision> DecisionLoop::Get(const v1::ChainletKey& key) const {
  absl::MutexLock lock(&mu_);
  auto it = chainlets_.find(EncodeChainletKey(key));
  if (it == chainlets_.end()) {
    if (!SelectorMatches(options_.selector, key)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this agent does not serve ", key.chain_id(), "/", key.env_name()));
    }
    return absl::NotFoundError(absl::StrCat("no chainlet ", key.chain_id(), "/",
                                            key.env_name(), "/", key.chainlet_name()));
  }
  return ToProto(*it->second);
}

std::vector<v1::ScalingDecision> DecisionLoop::List(absl::string_view chain_id,
                                                    absl::string_view env_name) const {
  std::vector<v1::ScalingDecision> out;
  absl::MutexLock lock(&mu_);
  const std::string prefix =
      chain_id.empty() ? std::string() : ChainletKeyPrefix(chain_id, env_name);
  for (auto it = chainlets_.lower_bound(prefix);
       it != chainlets_.end() && absl::StartsWith(it->first, prefix); ++it) {
    out.push_back(ToProto(*it->second));
  }
  return out;
}

absl::StatusOr<v1::ListScalingDecisionsResponse> DecisionLoop::ListPage(
    const v1::ListScalingDecisionsRequest& request) const {
  constexpr int kDefaultPageSize = 1000;
  constexpr int kMaxPageSize = 10'000;
  if (absl::Status s = ValidateDecisionFilter(request.chain_id(), request.env_name()); !s.ok()) {
    return s;
  }
  if (request.page_size() < 0) {
    return InvalidArgumentWithViolations({{"page_size", "must not be negative"}});
  }
  const int page_size = request.page_size() == 0 ? kDefaultPageSize
                                                 : std::min(request.page_size(), kMaxPageSize);
  std::string after;
  if (!request.page_token().empty() &&
      !absl::WebSafeBase64Unescape(request.page_token(), &after)) {
    return InvalidArgumentWithViolations(
        {{"page_token", "is not a token returned by ListScalingDecisions"}});
  }
  const std::string prefix = request.chain_id().empty()
                                 ? std::string()
                                 : ChainletKeyPrefix(request.chain_id(), request.env_name());
  v1::ListScalingDecisionsResponse response;
  absl::MutexLock lock(&mu_);
  // Only the page's chainlets are turned into protos.
  auto it = after.empty() ? chainlets_.lower_bound(prefix) : chainlets_.upper_bound(after);
  for (; it != chainlets_.end() && absl::StartsWith(it->first, prefix); ++it) {
    if (response.decisions_size() == page_size) {
      response.set_next_page_token(absl::WebSafeBase64Escape(std::prev(it)->first));
      break;
    }
    *response.add_decisions() = ToProto(*it->second);
  }
  return response;
}

std::vector<ChainletLoad> DecisionLoop::Loads() const {
  std::vector<ChainletLoad> out;
  absl::MutexLock lock(&mu_);
  out.reserve(chainlets_.size());
  for (const auto& [key, c] : chainlets_) {
    const LoadWindow& window = c->decider.window();
    out.push_back({c->key, static_cast<double>(window.current_request_millis()) / 1000,
                   window.current_tokens(), c->decider.last().desired_replicas});
  }
  return out;
}

size_t DecisionLoop::size() const {
  absl::MutexLock lock(&mu_);
  return chainlets_.size();
}

size_t DecisionLoop::MemoryBytes() const {
  absl::MutexLock lock(&mu_);
  size_t bytes = 0;
  for (const auto& [key, c] : chainlets_) {
    // Map node and key, the chainlet's own fields, the key proto's strings, the window.
    bytes += 64 + key.capacity() + sizeof(Chainlet) + c->key.SpaceUsedLong() +
             c->decider.window().MemoryBytes() - sizeof(LoadWindow);
  }
  return bytes;
}

std::array<int64_t, 3> DecisionLoop::DecisionCounts() const {
  return {decision_counts_[0].load(), decision_counts_[1].load(), decision_counts_[2].load()};
}

int DecisionLoop::AddWatcher(Watcher watcher, bool all) {
  absl::MutexLock lock(&watchers_mu_);
  const int id = next_watcher_++;
  watchers_[id] = {std::move(watcher), all};
  if (all) ++watchers_for_all_;
  return id;
}

void DecisionLoop::RemoveWatcher(int id) {
  absl::MutexLock lock(&watchers_mu_);
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  if (it->second.second) --watchers_for_all_;
  watchers_.erase(it);
}

void DecisionLoop::Notify(const std::vector<std::pair<v1::ScalingDecision, bool>>& decisions) {
  if (decisions.empty()) return;
  absl::MutexLock lock(&watchers_mu_);
  for (const auto& [id, watcher] : watchers_) {
    for (const auto& [decision, changed] : decisions) {
      if (changed || watcher.second) watcher.first(decision, changed);
    }
  }
}

}  // namespace chainscale
