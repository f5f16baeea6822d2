// Reconciler: makes one chainlet's replica count real. It holds the latest decision's
// desired replicas and the chainlet's max_replica, and on each pass lists what the backend
// runs and acts on the difference:
// - fewer replicas than wanted: starts the missing ones at once (also when one died);
// - more: stops the newest first, each given the drain period, and kills one that is still
//   alive when its drain period is over;
// - never more than max_replica, and nothing started before max_replica is known;
// - nothing touched before the first decision arrives, so after a restart the replicas
//   found running are adopted as they are;
// - a failing backend (a daemon down, a command not found) is retried with backoff and
//   reported in the status, never a crash.
// Every action is logged on one line: the chainlet, the count from and to, what was
// started or stopped, and why. Time comes from an injected clock.
#ifndef CHAINSCALE_TOOLS_ACTUATOR_RECONCILER_H_
#define CHAINSCALE_TOOLS_ACTUATOR_RECONCILER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "tools/actuator/backend.h"

namespace chainscale {

struct ReconcilerOptions {
  // How long a replica asked to stop may take before it is killed.
  absl::Duration drain_period = absl::Seconds(30);
  // How often the backend is listed when nothing else happens, so that a replica that died
  // is replaced.
  absl::Duration resync_interval = absl::Seconds(5);
  // Retries of a failing backend.
  BackoffOptions retry = {absl::Seconds(1), 1.6, absl::Seconds(60), 0.2};
  uint64_t seed = 0;  // of the retry jitter
};

// What a target's status shows (on /metrics).
struct TargetStatus {
  std::optional<int> decided;      // the latest decision's desired replicas
  std::optional<int> max_replica;  // the chainlet's cap, once read
  std::optional<int> desired;      // what the reconciler aims at: decided, capped
  int running = 0;                 // alive and not asked to stop
  int draining = 0;                // asked to stop, still alive
  int64_t starts = 0;
  int64_t stops = 0;     // replicas that went after being asked to stop (killed ones too)
  int64_t kills = 0;     // replicas killed at the end of their drain period
  int64_t exits = 0;     // replicas that died without being asked to
  int64_t failures = 0;  // backend calls that failed
  bool backend_up = true;  // false while the last backend call failed
  std::string last_error;
};

class Reconciler {
 public:
  // `name` ("chain/env/chainlet") is what logs say. `backend` and `clock` must outlive the
  // reconciler; only Reconcile calls the backend.
  Reconciler(std::string name, Backend* backend, ReconcilerOptions options,
             const Clock* clock = &RealClock::Get());

  const std::string& name() const { return name_; }

  // The latest decision for the chainlet: replicas it asks for, and why.
  void SetDecision(int desired_replicas, std::string reason) ABSL_LOCKS_EXCLUDED(mu_);
  // The chainlet's max_replica as its settings say now.
  void SetMaxReplica(int max_replica) ABSL_LOCKS_EXCLUDED(mu_);

  // One pass: lists the backend and starts, stops or kills what is due now. Returns when
  // the next pass is due (a retry, the end of a drain period, or the resync interval);
  // SetDecision and SetMaxReplica make one due at once.
  absl::Time Reconcile() ABSL_LOCKS_EXCLUDED(mu_);

  // Waits, in real time, until `due`, an input changes or Shutdown is called.
  void WaitUntil(absl::Time due) ABSL_LOCKS_EXCLUDED(mu_);
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_);
  bool shut_down() const ABSL_LOCKS_EXCLUDED(mu_);

  TargetStatus status() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // A replica asked to stop, and since when.
  struct Draining {
    Replica replica;
    absl::Time since;
    bool killed = false;
  };

  // Records a failed backend call: retried after the next backoff delay.
  absl::Time Fail(absl::string_view what, const absl::Status& status, absl::Time now);
  void Succeed();

  const std::string name_;
  Backend* const backend_;
  const ReconcilerOptions options_;
  const Clock* const clock_;

  // Used only by Reconcile (one thread).
  Backoff backoff_;
  absl::Time retry_at_ = absl::InfinitePast();
  std::map<std::string, Draining> draining_;  // by replica id
  std::vector<Replica> last_running_;
  std::optional<int> logged_cap_;  // the cap last logged as limiting the decision

  mutable absl::Mutex mu_;
  std::optional<int> decided_ ABSL_GUARDED_BY(mu_);
  std::string reason_ ABSL_GUARDED_BY(mu_);
  std::optional<int> max_replica_ ABSL_GUARDED_BY(mu_);
  bool changed_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;
  TargetStatus status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_RECONCILER_H_
