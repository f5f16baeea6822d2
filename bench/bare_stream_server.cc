// bare-stream-server: the reference for StreamLoad. Serves chainscale.v1.Agent/StreamLoad
// with the callback API and does nothing with the reports: each message is parsed and
// answered with its sequence and the number of reports, as the agent answers, so the
// difference to the agent is the agent's own work. Prints its port, serves until SIGTERM.
//
//   bare-stream-server --listen=127.0.0.1:0
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "chainscale/v1/agent.grpc.pb.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC host:port; port 0 picks one");

namespace {

class BareStream final : public grpc::ServerBidiReactor<chainscale::v1::StreamLoadRequest,
                                                        chainscale::v1::StreamLoadResponse> {
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
  chainscale::v1::StreamLoadRequest in_;
  chainscale::v1::StreamLoadResponse out_;
};

class BareAgent final
    : public chainscale::v1::Agent::WithCallbackMethod_StreamLoad<chainscale::v1::Agent::Service> {
 public:
  grpc::ServerBidiReactor<chainscale::v1::StreamLoadRequest, chainscale::v1::StreamLoadResponse>*
  StreamLoad(grpc::CallbackServerContext*) override {
    return new BareStream();
  }
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  BareAgent service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    std::fprintf(stderr, "cannot listen on %s\n", absl::GetFlag(FLAGS_listen).c_str());
    return 1;
  }
  std::printf("%d\n", port);
  std::fflush(stdout);
  int signal = 0;
  sigwait(&signals, &signal);
  server->Shutdown();
  return 0;
}
