// The reference for StreamLoad: chainscale.v1.Agent/StreamLoad served with the callback
// API, doing nothing with the reports. Each message is parsed and answered with its
// sequence and the number of reports, as the agent answers, so what separates the agent
// from it is the agent's own work.
#ifndef CHAINSCALE_BENCH_BARE_STREAM_H_
#define CHAINSCALE_BENCH_BARE_STREAM_H_

#include <grpcpp/grpcpp.h>

#include "chainscale/v1/agent.grpc.pb.h"

namespace chainscale::bench {

class BareStream final
    : public grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse> {
 public:
  BareStream() { StartRead(&in_); }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    out_.set_sequence(in_.sequence());
    out_.set_accepted(in_.reports_size());
    StartWrite(&out_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::CANCELLED);
      return;
    }
    StartRead(&in_);
  }
  void OnDone() override { delete this; }

 private:
  v1::StreamLoadRequest in_;
  v1::StreamLoadResponse out_;
};

class BareAgent final : public v1::Agent::WithCallbackMethod_StreamLoad<v1::Agent::Service> {
 public:
  grpc::ServerBidiReactor<v1::StreamLoadRequest, v1::StreamLoadResponse>* StreamLoad(
      grpc::CallbackServerContext*) override {
    return new BareStream();
  }
};

}  // namespace chainscale::bench

#endif  // CHAINSCALE_BENCH_BARE_STREAM_H_
