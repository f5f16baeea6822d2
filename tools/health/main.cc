// chainscale-health: exits 0 when a server reports SERVING on grpc.health.v1, 1
// otherwise. For container health checks.
//
//   chainscale-health 127.0.0.1:50051 [SERVICE]
#include <iostream>

#include "common/health_probe.h"
#include "common/mutex_mode.h"

int main(int argc, char** argv) {
  chainscale::DisableMutexDeadlockDetection();
  if (argc < 2 || argc > 3) {
    std::cerr << "usage: chainscale-health HOST:PORT [SERVICE]\n";
    return 2;
  }
  const chainscale::HealthState state = chainscale::ProbeHealth(
      grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials()), argc == 3 ? argv[2] : "");
  switch (state) {
    case chainscale::HealthState::kServing:
      std::cout << "SERVING\n";
      return 0;
    case chainscale::HealthState::kNotServing:
      std::cout << "NOT_SERVING\n";
      return 1;
    case chainscale::HealthState::kUnreachable:
      std::cout << "UNREACHABLE\n";
      return 1;
  }
  return 1;
}
