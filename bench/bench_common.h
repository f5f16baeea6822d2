// Shared pieces of the benchmark driver: one connection per client, a monotonic clock that
// other processes on the machine share, percentiles, what /proc says about a process, and
// JSON lines for bench/run.py to read.
#ifndef CHAINSCALE_BENCH_BENCH_COMMON_H_
#define CHAINSCALE_BENCH_BENCH_COMMON_H_

#include <grpcpp/grpcpp.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace chainscale::bench {

// CLOCK_MONOTONIC in nanoseconds: the clock chainscale-sync-probe --timestamps prints and
// Python's time.monotonic_ns() reads, so times from several processes compare.
inline int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

inline double Millis(int64_t nanos) { return static_cast<double>(nanos) / 1e6; }

// A channel that shares no connection with any other: gRPC pools connections among
// channels with equal targets and arguments, so each client gets an argument of its own,
// as separate client processes would have separate connections.
inline std::shared_ptr<grpc::Channel> OwnChannel(const std::string& target, int client) {
  grpc::ChannelArguments args;
  args.SetInt("chainscale.bench.client", client);
  args.SetMaxReceiveMessageSize(64 << 20);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// The value below which a fraction `p` of `values` falls (nearest rank).
inline double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return values[index];
}

// One JSON object on one line: {"key": value, ...} with numbers and plain strings.
class JsonLine {
 public:
  JsonLine& Add(const std::string& key, double value) {
    fields_.push_back(absl::StrCat("\"", key, "\": ", value));
    return *this;
  }
  JsonLine& Add(const std::string& key, int64_t value) {
    fields_.push_back(absl::StrCat("\"", key, "\": ", value));
    return *this;
  }
  JsonLine& Add(const std::string& key, int value) { return Add(key, int64_t{value}); }
  JsonLine& Add(const std::string& key, const std::string& value) {
    fields_.push_back(absl::StrCat("\"", key, "\": \"", value, "\""));
    return *this;
  }
  // p50, p99, p999 and max of latencies in milliseconds, under `prefix`.
  JsonLine& AddLatencies(const std::string& prefix, const std::vector<double>& ms) {
    Add(prefix + "count", static_cast<int64_t>(ms.size()));
    Add(prefix + "p50_ms", Percentile(ms, 0.50));
    Add(prefix + "p99_ms", Percentile(ms, 0.99));
    Add(prefix + "p999_ms", Percentile(ms, 0.999));
    Add(prefix + "max_ms", Percentile(ms, 1.0));
    return *this;
  }
  void Print() const {
    std::printf("{%s}\n", absl::StrJoin(fields_, ", ").c_str());
    std::fflush(stdout);
  }

 private:
  std::vector<std::string> fields_;
};

// CPU seconds (user + system) a process has used, from /proc/PID/stat; -1 when unreadable.
inline double ProcessCpuSeconds(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // The command name (field 2) may hold spaces; the fields after it follow its ')'.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::vector<std::string> fields = absl::StrSplit(stat.substr(close + 2), ' ');
  if (fields.size() < 13) return -1;
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  const double ticks = std::stod(fields[11]) + std::stod(fields[12]);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Resident set size of a process in bytes, from VmRSS in /proc/PID/status; -1 when unreadable.
inline int64_t ProcessRssBytes(int pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      std::istringstream fields(line.substr(6));
      int64_t kb = 0;
      fields >> kb;
      return kb * 1024;
    }
  }
  return -1;
}

}  // namespace chainscale::bench

#endif  // CHAINSCALE_BENCH_BENCH_COMMON_H_
