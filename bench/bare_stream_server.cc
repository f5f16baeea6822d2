// bare-stream-server: bench/bare_stream.h's reference StreamLoad server as a process of
// its own, so bench/run.py measures it as it measures the agent (separate process, own
// connections, CPU time from /proc). Prints its port, serves until SIGTERM.
//
//   bare-stream-server --listen=127.0.0.1:0
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "bench/bare_stream.h"
#include "common/mutex_mode.h"
#include "common/process.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "gRPC host:port; port 0 picks one");

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  const sigset_t signals = chainscale::BlockTerminationSignals();
  chainscale::bench::BareAgent service;
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
  chainscale::AwaitTerminationSignal(signals);
  server->Shutdown();
  return 0;
}
