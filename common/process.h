// What every chainscale binary does at the edges of its life: termination signals taken
// by one thread with sigwait (never by a handler on a random thread), and environment
// variables that stand in for flags.
#ifndef CHAINSCALE_COMMON_PROCESS_H_
#define CHAINSCALE_COMMON_PROCESS_H_

#include <signal.h>

#include <cstdlib>
#include <string>

namespace chainscale {

// Blocks SIGTERM and SIGINT in this thread and every thread it starts later. Call first
// in main, before any thread exists.
inline sigset_t BlockTerminationSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Waits for one of `signals`; returns its name.
inline const char* AwaitTerminationSignal(const sigset_t& signals) {
  int signal = 0;
  sigwait(&signals, &signal);
  return signal == SIGTERM ? "SIGTERM" : "SIGINT";
}

inline std::string EnvOrEmpty(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "" : value;
}

// The key a client tool sends: `flag_value` (its --api_key), or else the first key of
// CHAINSCALE_API_KEYS, the variable the servers read their keys from.
inline std::string ClientApiKey(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  const std::string keys = EnvOrEmpty("CHAINSCALE_API_KEYS");
  return keys.substr(0, keys.find(','));
}

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_PROCESS_H_
