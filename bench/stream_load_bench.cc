// In-process smoke of StreamLoad: control plane, agent and one client in one process,
// ONE stream over one connection, reports spread over 10 chainlets. It overstates what
// users get; bench/run.py (group "ingest") measures the real agent at 1, 16 and 256
// streams over 10 000 chainlets beside a bare stream server.
//
//   build/bench/stream_load_bench --batches=2000 --batch=100
#include <cstdio>
#include <filesystem>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/server.h"
#include "bench/bare_stream.h"
#include "chainscale/v1/agent.grpc.pb.h"
#include "common/mutex_mode.h"
#include "control_plane/server.h"

ABSL_FLAG(int, batches, 2000, "StreamLoad messages per run");
ABSL_FLAG(int, batch, 100, "reports per message");
ABSL_FLAG(int, chainlets, 10, "chainlets the reports are spread over");

namespace chainscale {
namespace {

// Streams `batches` messages, writing ahead of the answers; returns reports per second.
double Drive(const std::string& address, const std::vector<v1::StreamLoadRequest>& batches) {
  auto stub = v1::Agent::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->StreamLoad(&context);
  const absl::Time start = absl::Now();
  std::thread writer([&] {
    for (const auto& b : batches) {
      if (!stream->Write(b)) return;
    }
    stream->WritesDone();
  });
  v1::StreamLoadResponse response;
  int64_t accepted = 0;
  while (stream->Read(&response)) accepted += response.accepted();
  const absl::Duration took = absl::Now() - start;
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok() || accepted != static_cast<int64_t>(batches.size()) * batches[0].reports_size()) {
    std::fprintf(stderr, "stream failed: %s, %lld accepted\n", status.error_message().c_str(),
                 static_cast<long long>(accepted));
    std::exit(1);
  }
  return accepted / absl::ToDoubleSeconds(took);
}

int Run() {
  const int chainlets = absl::GetFlag(FLAGS_chainlets);
  const std::string dir = (std::filesystem::temp_directory_path() /
                           absl::StrCat("chainscale-stream-bench-", ::getpid()))
                              .string();
  ControlPlaneOptions cp_options;
  cp_options.listen = "127.0.0.1:0";
  cp_options.http_listen = "";
  cp_options.data_dir = dir;
  cp_options.insecure = true;
  auto control_plane = ControlPlaneServer::Start(cp_options).value();
  const std::string cp_address = absl::StrCat("127.0.0.1:", control_plane->grpc_port());
  {
    auto stub = v1::ControlPlane::NewStub(
        grpc::CreateChannel(cp_address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    v1::CreateChainRequest request;
    request.set_chain_id("bench");
    for (int i = 0; i < chainlets; ++i) request.add_chainlet_names(absl::StrCat("c", i));
    v1::Chain chain;
    if (!stub->CreateChain(&context, request, &chain).ok()) return 1;
  }
  AgentOptions agent_options;
  agent_options.listen = "127.0.0.1:0";
  agent_options.http_listen = "";
  agent_options.insecure = true;
  agent_options.control_plane = cp_address;
  agent_options.agent_id = "bench-agent";
  auto agent = AgentServer::Start(agent_options).value();
  while (agent->loop().size() < static_cast<size_t>(2 * chainlets)) {
    absl::SleepFor(absl::Milliseconds(10));  // waiting for the first snapshot
  }

  bench::BareAgent bare;
  int bare_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &bare_port);
  builder.RegisterService(&bare);
  auto bare_server = builder.BuildAndStart();

  std::vector<v1::StreamLoadRequest> batches(absl::GetFlag(FLAGS_batches));
  for (size_t i = 0; i < batches.size(); ++i) {
    batches[i].set_sequence(i);
    for (int r = 0; r < absl::GetFlag(FLAGS_batch); ++r) {
      v1::LoadReport* report = batches[i].add_reports();
      report->set_source_id(absl::StrCat("replica-", r % 20));
      report->set_chain_id("bench");
      report->set_env_name("production");
      report->set_chainlet_name(absl::StrCat("c", r % chainlets));
      report->set_in_flight_requests((i + r) % 17);
    }
  }
  const std::string agent_address = absl::StrCat("127.0.0.1:", agent->grpc_port());
  const std::string bare_address = absl::StrCat("127.0.0.1:", bare_port);
  Drive(agent_address, {batches.begin(), batches.begin() + 100});  // warm up both
  Drive(bare_address, {batches.begin(), batches.begin() + 100});
  const double through_agent = Drive(agent_address, batches);
  const double bare_rate = Drive(bare_address, batches);
  std::printf("in-process StreamLoad, one stream, %zu messages of %d reports (%zu bytes each)\n", batches.size(),
              absl::GetFlag(FLAGS_batch), batches[0].ByteSizeLong());
  std::printf("  chainscale agent  %10.0f reports/s\n", through_agent);
  std::printf("  bare gRPC stream  %10.0f reports/s\n", bare_rate);
  std::printf("  ratio             %10.2f\n", through_agent / bare_rate);
  bare_server->Shutdown();
  agent->Shutdown();
  control_plane->Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace chainscale

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  absl::ParseCommandLine(argc, argv);
  return chainscale::Run();
}
