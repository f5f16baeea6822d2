#include "tools/loadgen/load_generator.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace chainscale {
namespace {

std::string Elapsed(absl::Duration d) {
  const int64_t s = absl::ToInt64Seconds(d);
  return absl::StrFormat("%02d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
}

}  // namespace

LoadGenerator::LoadGenerator(LoadGeneratorOptions options, std::unique_ptr<LoadPattern> pattern,
                             std::ostream& out)
    : options_(std::move(options)),
      pattern_(std::move(pattern)),
      out_(out) {
  for (const std::string& agent : options_.agents) {
    stubs_.push_back(v1::Agent::NewStub(grpc::CreateChannel(agent, options_.credentials)));
  }
}

std::vector<v1::ReportLoadRequest> LoadGenerator::Batches(absl::Duration elapsed) const {
  const InFlight load = pattern_->At(elapsed);
  std::vector<v1::ReportLoadRequest> requests(options_.agents.size());
  size_t source = 0;
  for (const std::string& chainlet : options_.chainlets) {
    for (int i = 0; i < options_.sources; ++i) {
      v1::LoadReport* r = requests[source++ % requests.size()].add_reports();
      r->set_source_id(absl::StrCat(chainlet, "-replica-", i));
      r->set_chain_id(options_.chain_id);
      r->set_env_name(options_.env_name);
      r->set_chainlet_name(chainlet);
      r->set_in_flight_requests(static_cast<double>(load.requests) / options_.sources);
      if (options_.report_tokens) r->set_in_flight_tokens(load.tokens / options_.sources);
    }
  }
  return requests;
}

grpc::Status LoadGenerator::Send(size_t first, const v1::ReportLoadRequest& request,
                                 v1::ReportLoadResponse* response, absl::Duration elapsed) {
  grpc::Status status;
  for (size_t tried = 0; tried < stubs_.size(); ++tried) {
    const size_t agent = (first + tried) % stubs_.size();
    grpc::ClientContext context;
    if (!options_.api_key.empty()) {
      context.AddMetadata("authorization", absl::StrCat("Api-Key ", options_.api_key));
    }
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
    response->Clear();
    status = stubs_[agent]->ReportLoad(&context, request, response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return status;
    }
    if (stubs_.size() > 1) {
      out_ << Elapsed(elapsed) << "  " << options_.agents[agent]
           << " could not take a batch: " << status.error_message() << "\n";
      out_.flush();
    }
  }
  return status;
}

void LoadGenerator::Print(absl::Duration elapsed, const v1::ReportLoadResponse& response) {
  if (!options_.print_decisions) return;
  for (const v1::ScalingDecision& d : response.decisions()) {
    const std::string key = absl::StrCat(d.chain_id(), "/", d.env_name(), "/", d.chainlet_name());
    const std::pair<int32_t, int> now{d.desired_replicas(), d.status() * 2 + d.capped()};
    auto it = printed_.find(key);
    if (it != printed_.end() && it->second == now) continue;
    printed_[key] = now;
    out_ << absl::StrFormat("%s  %-28s  replicas %3d  %-9s  %s\n", Elapsed(elapsed), key,
                            d.desired_replicas(), v1::ScalingDecision::Status_Name(d.status()),
                            d.reason());
    out_.flush();
  }
}

void LoadGenerator::Run(const std::atomic<bool>& stop) {
  const absl::Time start = absl::Now();
  const absl::Duration length = std::min(options_.duration, pattern_->length());
  for (absl::Duration elapsed = absl::ZeroDuration(); !stop.load() && elapsed < length;
       elapsed += options_.report_interval) {
    const absl::Time due = start + elapsed;
    if (absl::Now() < due) std::this_thread::sleep_for(absl::ToChronoNanoseconds(due - absl::Now()));
    if (stop.load()) break;
    const std::vector<v1::ReportLoadRequest> requests = Batches(elapsed);
    for (size_t agent = 0; agent < requests.size(); ++agent) {
      if (requests[agent].reports().empty()) continue;
      v1::ReportLoadResponse response;
      grpc::Status status = Send(agent, requests[agent], &response, elapsed);
      if (!status.ok()) {
        ++errors_;
        out_ << Elapsed(elapsed) << "  report failed: " << status.error_message() << "\n";
        out_.flush();
        continue;
      }
      reports_sent_ += requests[agent].reports_size();
      // An agent answers with the decisions of the environments it owns; forwarded
      // reports come back without one.
      Print(elapsed, response);
    }
  }
}

}  // namespace chainscale
