// DecisionFollower: one chain environment's part of the control plane's decision feed
// (ControlPlane/WatchScalingDecisions, DESIGN §11: the stored, fenced decisions, whichever
// agent owns the environment), handed to the reconcilers of the chainlets actuated there.
//
// Before each stream it reads the environment's settings (GetChainEnvironment) and gives
// each reconciler its chainlet's max_replica; a decision made with newer settings than
// those read makes it read them again. A stream that ends is opened again after a backoff
// (reset once a message arrives), resuming after the last feed position received, so the
// control plane sends only what was stored since.
#ifndef CHAINSCALE_TOOLS_ACTUATOR_DECISION_FOLLOWER_H_
#define CHAINSCALE_TOOLS_ACTUATOR_DECISION_FOLLOWER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "chainscale/v1/control_plane.grpc.pb.h"
#include "common/backoff.h"
#include "tools/actuator/reconciler.h"

namespace chainscale {

struct DecisionFollowerOptions {
  std::string chain_id;
  std::string env_name;
  std::shared_ptr<grpc::Channel> channel;  // to the control plane
  std::string api_key;                      // sent as "authorization: Api-Key <key>"
  BackoffOptions reconnect;
  absl::Duration call_timeout = absl::Seconds(10);  // of GetChainEnvironment
};

class DecisionFollower {
 public:
  // `reconcilers`: by chainlet name; they must outlive the follower.
  DecisionFollower(DecisionFollowerOptions options, std::map<std::string, Reconciler*> reconcilers);
  ~DecisionFollower();

  DecisionFollower(const DecisionFollower&) = delete;
  DecisionFollower& operator=(const DecisionFollower&) = delete;

  void Start();
  // Ends the stream and the thread. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& chain_id() const { return options_.chain_id; }
  const std::string& env_name() const { return options_.env_name; }
  // True while a stream is open and has answered.
  bool connected() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  // Reads the settings, then follows one stream until it ends.
  absl::Status Follow(Backoff& backoff) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status ReadSettings();
  void Apply(const v1::ScalingDecision& decision);

  const DecisionFollowerOptions options_;
  const std::map<std::string, Reconciler*> reconcilers_;
  const std::unique_ptr<v1::ControlPlane::Stub> stub_;

  // Used only by the follower's thread.
  std::string feed_id_;
  int64_t resume_after_ = 0;
  std::map<std::string, int64_t> settings_revision_;  // by chainlet
  std::map<std::string, int> max_replica_;            // by chainlet, as last read

  mutable absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_DECISION_FOLLOWER_H_
