// ProcessBackend: the replicas of one chainlet as local processes, copies of a command
// template (./dev demo runs chainscale without Docker this way).
//
// Replicas outlive the actuator: each starts in a session of its own (so a signal to the
// actuator's process group never reaches it), with the default signal dispositions, stdin
// from /dev/null and its output appended to a log file in the state directory. The state
// directory records every replica (serial, pid, start time, index, port, command), written
// atomically (a new file renamed over the old) after each change. A restarted actuator
// adopts the recorded replicas that are still alive, recognised by pid and by the start
// time in /proc/<pid>/stat, so a pid the kernel reused for another process is never
// adopted or signalled; the others are forgotten.
//
// Stop sends SIGTERM and Kill SIGKILL to the replica's process group (the command and what
// it started), after checking that the pid is still the replica.
#ifndef CHAINSCALE_TOOLS_ACTUATOR_PROCESS_BACKEND_H_
#define CHAINSCALE_TOOLS_ACTUATOR_PROCESS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/actuator/backend.h"

namespace chainscale {

struct ProcessBackendOptions {
  // "chain/env/chainlet", for logs.
  std::string target;
  // Words as a shell splits them; {port} and {index} are replaced per copy.
  std::string command;
  // Where the state file and the replicas' logs live; created when missing.
  std::string state_dir;
  // Base name of the state file (<state_dir>/<state_name>.replicas) and of the replicas'
  // logs (<state_dir>/<state_name>.<serial>.log).
  std::string state_name;
};

// A replica as the state file records it.
struct ProcessRecord {
  int64_t serial = 0;
  int pid = 0;
  uint64_t start_ticks = 0;  // field 22 of /proc/<pid>/stat
  int index = 0;
  int port = 0;  // 0 when the command has no {port}
  std::string command;  // as started, placeholders replaced
};

class ProcessBackend final : public Backend {
 public:
  // INVALID_ARGUMENT when the command template is empty, has a newline or cannot be split
  // into words. The state directory is read on the first List.
  static absl::StatusOr<std::unique_ptr<ProcessBackend>> Create(ProcessBackendOptions options);

  std::string kind() const override { return "process"; }
  absl::StatusOr<std::vector<Replica>> List() override;
  // NOT_FOUND when the command does not exist, PERMISSION_DENIED when it cannot be run.
  absl::StatusOr<Replica> Start() override;
  absl::Status Stop(const Replica& replica, absl::Duration drain_period) override;
  absl::Status Kill(const Replica& replica) override;

  // The state file's path.
  std::string state_path() const;

  // The start time of process `pid` in clock ticks since boot (/proc/<pid>/stat field 22);
  // nothing when there is no such process or it is a zombie.
  static std::optional<uint64_t> StartTicks(int pid);

 private:
  explicit ProcessBackend(ProcessBackendOptions options) : options_(std::move(options)) {}

  absl::Status Load();
  absl::Status Save() const;
  bool Alive(const ProcessRecord& record) const;
  // The record of `replica` if it is still that process.
  const ProcessRecord* Find(const Replica& replica) const;
  absl::Status Signal(const Replica& replica, int signal);

  const ProcessBackendOptions options_;
  bool loaded_ = false;
  int64_t next_serial_ = 1;
  std::vector<ProcessRecord> records_;  // oldest first
};

// The state file's format, one replica per line after a comment header.
std::string FormatProcessRecords(int64_t next_serial, const std::vector<ProcessRecord>& records);
// INVALID_ARGUMENT naming the line when the text is not in that format.
absl::Status ParseProcessRecords(absl::string_view text, int64_t* next_serial,
                                 std::vector<ProcessRecord>* records);

}  // namespace chainscale

#endif  // CHAINSCALE_TOOLS_ACTUATOR_PROCESS_BACKEND_H_
