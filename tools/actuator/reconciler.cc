#include "tools/actuator/reconciler.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace chainscale {
namespace {

std::string Describe(const std::vector<Replica>& replicas) {
  return absl::StrJoin(replicas, ", ", [](std::string* out, const Replica& r) {
    absl::StrAppend(out, r.description);
  });
}

}  // namespace

Reconciler::Reconciler(std::string name, Backend* backend, ReconcilerOptions options,
                       const Clock* clock)
    : name_(std::move(name)),
      backend_(backend),
      options_(options),
      clock_(clock),
      backoff_(options.retry, options.seed) {}

void Reconciler::SetDecision(int desired_replicas, std::string reason) {
  absl::MutexLock lock(&mu_);
  if (decided_ != desired_replicas) changed_ = true;
  decided_ = desired_replicas;
  reason_ = std::move(reason);
  status_.decided = desired_replicas;
}

void Reconciler::SetMaxReplica(int max_replica) {
  absl::MutexLock lock(&mu_);
  if (max_replica_ != max_replica) changed_ = true;
  max_replica_ = max_replica;
  status_.max_replica = max_replica;
}

absl::Time Reconciler::Reconcile() {
  const absl::Time now = clock_->Now();
  std::optional<int> decided;
  std::optional<int> max_replica;
  std::string reason;
  {
    absl::MutexLock lock(&mu_);
    changed_ = false;
    decided = decided_;
    max_replica = max_replica_;
    reason = reason_;
  }
  if (now < retry_at_) return retry_at_;

  absl::StatusOr<std::vector<Replica>> listed = backend_->List();
  if (!listed.ok()) return Fail("list replicas", listed.status(), now);
  std::vector<Replica> alive = *std::move(listed);
  std::stable_sort(alive.begin(), alive.end(),
                   [](const Replica& a, const Replica& b) { return a.serial < b.serial; });

  // Replicas asked to stop: gone ones are stopped, ones past their drain period killed.
  std::set<std::string> alive_ids;
  for (const Replica& r : alive) alive_ids.insert(r.id);
  int64_t stopped = 0;
  for (auto it = draining_.begin(); it != draining_.end();) {
    if (alive_ids.count(it->first) == 0) {
      LogInfo("replica stopped", {{"chainlet", name_},
                                  {"replica", it->second.replica.description},
                                  {"after", absl::FormatDuration(now - it->second.since)}});
      ++stopped;
      it = draining_.erase(it);
      continue;
    }
    ++it;
  }
  int64_t killed = 0;
  absl::Status kill_error;
  for (auto& [id, draining] : draining_) {
    if (draining.killed || now - draining.since < options_.drain_period) continue;
    if (absl::Status s = backend_->Kill(draining.replica); !s.ok()) {
      kill_error = s;
      continue;
    }
    draining.killed = true;
    ++killed;
    LogWarning("replica outlived its drain period; killed",
               {{"chainlet", name_},
                {"replica", draining.replica.description},
                {"drain_period", absl::FormatDuration(options_.drain_period)}});
  }

  std::vector<Replica> running;
  for (const Replica& r : alive) {
    if (draining_.count(r.id) == 0) running.push_back(r);
  }
  // Replicas that went without being asked to.
  std::vector<Replica> exited;
  for (const Replica& r : last_running_) {
    if (alive_ids.count(r.id) == 0) exited.push_back(r);
  }
  if (!exited.empty()) {
    LogWarning("replicas exited unexpectedly",
               {{"chainlet", name_}, {"replicas", Describe(exited)}});
  }
  {
    absl::MutexLock lock(&mu_);
    status_.stops += stopped;
    status_.kills += killed;
    status_.exits += static_cast<int64_t>(exited.size());
    status_.running = static_cast<int>(running.size());
    status_.draining = static_cast<int>(draining_.size());
  }
  last_running_ = running;
  if (!kill_error.ok()) return Fail("kill a replica", kill_error, now);

  // What to aim at: the decision, never above max_replica. Without a decision, what runs
  // stays as it is (adopted after a restart); without max_replica, nothing starts.
  std::optional<int> desired;
  if (decided.has_value()) {
    if (max_replica.has_value()) {
      desired = std::min(*decided, *max_replica);
      if (*decided > *max_replica && logged_cap_ != *max_replica) {
        LogInfo("capped at max_replica", {{"chainlet", name_},
                                          {"decided", absl::StrCat(*decided)},
                                          {"max_replica", absl::StrCat(*max_replica)}});
      }
      logged_cap_ = *decided > *max_replica ? max_replica : std::nullopt;
    } else if (*decided < static_cast<int>(running.size())) {
      desired = *decided;  // scaling down never needs the cap
    }
  }
  {
    absl::MutexLock lock(&mu_);
    status_.desired = desired;
  }

  const int from = static_cast<int>(running.size());
  if (desired.has_value() && *desired > from) {
    const std::string why =
        exited.empty() ? reason
                       : absl::StrCat("replacing replicas that exited (", Describe(exited), ")");
    std::vector<Replica> started;
    absl::Status start_error;
    while (static_cast<int>(running.size()) < *desired) {
      absl::StatusOr<Replica> replica = backend_->Start();
      if (!replica.ok()) {
        start_error = replica.status();
        break;
      }
      started.push_back(*replica);
      running.push_back(*replica);
    }
    {
      absl::MutexLock lock(&mu_);
      status_.starts += static_cast<int64_t>(started.size());
      status_.running = static_cast<int>(running.size());
    }
    last_running_ = running;
    if (!started.empty()) {
      LogInfo("scaled up", {{"chainlet", name_},
                            {"from", absl::StrCat(from)},
                            {"to", absl::StrCat(running.size())},
                            {"started", Describe(started)},
                            {"why", why}});
    }
    if (!start_error.ok()) return Fail("start a replica", start_error, now);
  } else if (desired.has_value() && *desired < from) {
    // Newest first: the end of the list.
    std::vector<Replica> stopping;
    absl::Status stop_error;
    while (static_cast<int>(running.size()) > *desired) {
      const Replica newest = running.back();
      if (absl::Status s = backend_->Stop(newest, options_.drain_period); !s.ok()) {
        stop_error = s;
        break;
      }
      draining_[newest.id] = Draining{newest, now, false};
      stopping.push_back(newest);
      running.pop_back();
    }
    {
      absl::MutexLock lock(&mu_);
      status_.running = static_cast<int>(running.size());
      status_.draining = static_cast<int>(draining_.size());
    }
    last_running_ = running;
    if (!stopping.empty()) {
      LogInfo("scaling down", {{"chainlet", name_},
                               {"from", absl::StrCat(from)},
                               {"to", absl::StrCat(running.size())},
                               {"stopping", Describe(stopping)},
                               {"drain_period", absl::FormatDuration(options_.drain_period)},
                               {"why", reason}});
    }
    if (!stop_error.ok()) return Fail("stop a replica", stop_error, now);
  }
  Succeed();

  absl::Time next = now + options_.resync_interval;
  for (const auto& [id, draining] : draining_) {
    if (!draining.killed) next = std::min(next, draining.since + options_.drain_period);
  }
  return next;
}

absl::Time Reconciler::Fail(absl::string_view what, const absl::Status& status, absl::Time now) {
  const absl::Duration delay = backoff_.Next();
  retry_at_ = now + delay;
  bool was_up;
  {
    absl::MutexLock lock(&mu_);
    was_up = status_.backend_up;
    status_.backend_up = false;
    ++status_.failures;
    status_.last_error = std::string(status.message());
  }
  LogWarning(was_up ? "backend failing" : "backend still failing",
             {{"chainlet", name_},
              {"backend", backend_->kind()},
              {"while", std::string(what)},
              {"error", std::string(status.message())},
              {"retry_in", absl::FormatDuration(delay)}});
  return retry_at_;
}

void Reconciler::Succeed() {
  backoff_.Reset();
  retry_at_ = absl::InfinitePast();
  absl::MutexLock lock(&mu_);
  if (!status_.backend_up) {
    LogInfo("backend recovered", {{"chainlet", name_}, {"backend", backend_->kind()}});
  }
  status_.backend_up = true;
  status_.last_error.clear();
}

void Reconciler::WaitUntil(absl::Time due) {
  absl::MutexLock lock(&mu_);
  auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return changed_ || shutdown_; };
  mu_.AwaitWithDeadline(absl::Condition(&woken), due);
}

void Reconciler::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

bool Reconciler::shut_down() const {
  absl::MutexLock lock(&mu_);
  return shutdown_;
}

TargetStatus Reconciler::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace chainscale
