// LoadGenerator: plays replicas (or routers) of chainlets against agents. Every report
// interval it sends each source's share of the pattern's load in ReportLoad batches, and
// prints the decisions it gets back when they change. With several agents the sources
// are spread over them, as replicas behind a load balancer would be (any agent takes any
// report and forwards it to the owner, DESIGN §11); a batch an agent cannot take is sent
// to the next one.
#ifndef CHAINSCALE_TOOLS_LOADGEN_LOAD_GENERATOR_H_
#define CHAINSCALE_TOOLS_LOADGEN_LOAD_GENERATOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "tools/loadgen/load_pattern.h"

namespace chainscale {

struct LoadGeneratorOptions {
  std::vector<std::string> agents = {"127.0.0.1:50061"};
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  std::string api_key;
  std::string chain_id;
  std::string env_name = "production";
  std::vector<std::string> chainlets;
  int sources = 2;  // replicas per chainlet; each reports an equal share
  absl::Duration report_interval = absl::Seconds(1);
  absl::Duration duration = absl::InfiniteDuration();
  bool report_tokens = false;
  bool print_decisions = true;
};

class LoadGenerator {
 public:
  LoadGenerator(LoadGeneratorOptions options, std::unique_ptr<LoadPattern> pattern,
                std::ostream& out);

  // Reports until `stop` is set, the duration passes or the pattern ends. Report errors
  // are printed and the next interval tries again.
  void Run(const std::atomic<bool>& stop);

  int64_t reports_sent() const { return reports_sent_; }
  int64_t errors() const { return errors_; }

  // One batch per agent: the reports of the sources it is given, source k of all the
  // chainlets' sources to agent k modulo the number of agents.
  std::vector<v1::ReportLoadRequest> Batches(absl::Duration elapsed) const;

 private:
  // Sends `request` to agent `first`, or, when that one cannot take it (UNAVAILABLE or
  // no answer in time), to each next one in turn.
  grpc::Status Send(size_t first, const v1::ReportLoadRequest& request,
                    v1::ReportLoadResponse* response, absl::Duration elapsed);
  void Print(absl::Duration elapsed, const v1::ReportLoadResponse& response);

  const LoadGeneratorOptions options_;
  std::unique_ptr<LoadPattern> pattern_;
  std::ostream& out_;
  std::vector<std::unique_ptr<v1::Agent::Stub>> stubs_;
  // Last printed (replicas, status and capped) per chainlet.
  std::map<std::string, std::pair<int32_t, int>> printed_;
  int64_t reports_sent_ = 0;
  int64_t errors_ = 0;
};

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_LOADGEN_LOAD_GENERATOR_H_
