#include "tools/actuator/process_backend.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wordexp.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/log.h"

extern char** environ;

namespace chainscale {
namespace {

// glibc's wordexp is not safe to call from two threads at once (one thread per target).
absl::Mutex wordexp_mu(absl::kConstInit);

// The command's words, split as a shell would (quotes, variables, ~), never running a
// command substitution. INVALID_ARGUMENT saying what is wrong.
absl::StatusOr<std::vector<std::string>> SplitWords(const std::string& command) {
  if (absl::StrContains(command, '\n')) {
    return absl::InvalidArgumentError("the command must be one line");
  }
  absl::MutexLock lock(&wordexp_mu);
  wordexp_t words;
  const int result = wordexp(command.c_str(), &words, WRDE_NOCMD);
  switch (result) {
    case 0:
      break;
    case WRDE_BADCHAR:
      return absl::InvalidArgumentError(absl::StrCat(
          "the command \"", command,
          "\" has a character a shell would treat specially (| & ; < > ( ) { }): quote it, or "
          "run the pipeline with sh -c '...'"));
    case WRDE_CMDSUB:
      return absl::InvalidArgumentError(
          absl::StrCat("the command \"", command, "\" asks for a command substitution"));
    case WRDE_SYNTAX:
      return absl::InvalidArgumentError(
          absl::StrCat("the command \"", command, "\" has unbalanced quotes"));
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("the command \"", command, "\" cannot be split into words"));
  }
  std::vector<std::string> out(words.we_wordv, words.we_wordv + words.we_wordc);
  wordfree(&words);
  if (out.empty()) return absl::InvalidArgumentError("the command is empty");
  return out;
}

std::string Substitute(const std::string& command, int port, int index) {
  return absl::StrReplaceAll(command,
                             {{"{port}", absl::StrCat(port)}, {"{index}", absl::StrCat(index)}});
}

// A loopback port nobody listens on now: the kernel picks it for a socket that is then
// closed, so another process could take it before the replica binds it.
absl::StatusOr<int> FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  close(fd);
  if (port == 0) return absl::InternalError("cannot find a free loopback port");
  return port;
}

// The state and start time (clock ticks since boot) of process `pid`, from
// /proc/<pid>/stat. The format is the kernel's (proc(5)): the command name in parentheses
// may itself hold spaces and parentheses, so the fields are counted from the last ')';
// the state is field 3 and the start time field 22.
struct ProcStat {
  char state = '?';
  uint64_t start_ticks = 0;
};
std::optional<ProcStat> ReadProcStat(int pid) {
  if (pid <= 0) return std::nullopt;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  if (!in) return std::nullopt;
  std::string line;
  std::getline(in, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  const std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(line).substr(paren + 1), ' ', absl::SkipEmpty());
  ProcStat stat;
  if (fields.size() < 20 || fields[0].size() != 1 ||
      !absl::SimpleAtoi(fields[19], &stat.start_ticks)) {
    return std::nullopt;
  }
  stat.state = fields[0][0];
  return stat;
}

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  const std::string temporary = path + ".tmp";
  const int fd = open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", temporary, ": ",
                                               std::strerror(errno)));
  }
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int error = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("cannot write ", temporary, ": ",
                                                 std::strerror(error)));
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot sync ", temporary, ": ",
                                               std::strerror(errno)));
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot rename ", temporary, " to ", path, ": ",
                                               std::strerror(errno)));
  }
  // The rename itself is durable once the directory is synced.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dir_fd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<uint64_t> ProcessBackend::StartTicks(int pid) {
  std::optional<ProcStat> stat = ReadProcStat(pid);
  if (!stat.has_value() || stat->state == 'Z' || stat->state == 'X') return std::nullopt;
  return stat->start_ticks;
}

absl::StatusOr<std::unique_ptr<ProcessBackend>> ProcessBackend::Create(
    ProcessBackendOptions options) {
  if (absl::StripAsciiWhitespace(options.command).empty()) {
    return absl::InvalidArgumentError("the command is empty");
  }
  absl::StatusOr<std::vector<std::string>> words = SplitWords(Substitute(options.command, 0, 0));
  if (!words.ok()) return words.status();
  if (options.state_dir.empty() || options.state_name.empty()) {
    return absl::InvalidArgumentError("the process backend needs a state directory");
  }
  return std::unique_ptr<ProcessBackend>(new ProcessBackend(std::move(options)));
}

std::string ProcessBackend::state_path() const {
  return absl::StrCat(options_.state_dir, "/", options_.state_name, ".replicas");
}

bool ProcessBackend::Alive(const ProcessRecord& record) const {
  // A child of this process that exited is reaped here (it would stay a zombie).
  int status = 0;
  if (waitpid(record.pid, &status, WNOHANG) == record.pid) return false;
  const std::optional<uint64_t> ticks = StartTicks(record.pid);
  return ticks.has_value() && *ticks == record.start_ticks;
}

absl::Status ProcessBackend::Load() {
  std::error_code error;
  std::filesystem::create_directories(options_.state_dir, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create the state directory ",
                                               options_.state_dir, ": ", error.message()));
  }
  std::ifstream in(state_path());
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    std::vector<ProcessRecord> recorded;
    int64_t next_serial = 1;
    if (absl::Status s = ParseProcessRecords(text.str(), &next_serial, &recorded); !s.ok()) {
      return absl::DataLossError(absl::StrCat(state_path(), ": ", s.message()));
    }
    next_serial_ = next_serial;
    for (ProcessRecord& record : recorded) {
      if (Alive(record)) {
        LogInfo("adopted replica", {{"chainlet", options_.target},
                                    {"pid", absl::StrCat(record.pid)},
                                    {"serial", absl::StrCat(record.serial)},
                                    {"command", record.command}});
        records_.push_back(std::move(record));
      } else {
        LogInfo("forgot replica that is gone", {{"chainlet", options_.target},
                                                {"pid", absl::StrCat(record.pid)},
                                                {"serial", absl::StrCat(record.serial)}});
      }
    }
    if (records_.size() != recorded.size()) {
      if (absl::Status s = Save(); !s.ok()) return s;
    }
  }
  loaded_ = true;
  return absl::OkStatus();
}

absl::Status ProcessBackend::Save() const {
  return WriteFileAtomically(state_path(), FormatProcessRecords(next_serial_, records_));
}

absl::StatusOr<std::vector<Replica>> ProcessBackend::List() {
  if (!loaded_) {
    if (absl::Status s = Load(); !s.ok()) return s;
  }
  const size_t before = records_.size();
  records_.erase(std::remove_if(records_.begin(), records_.end(),
                                [this](const ProcessRecord& r) { return !Alive(r); }),
                 records_.end());
  if (records_.size() != before) {
    if (absl::Status s = Save(); !s.ok()) return s;
  }
  std::vector<Replica> replicas;
  for (const ProcessRecord& r : records_) {
    replicas.push_back({absl::StrCat(r.pid), r.serial, absl::StrCat("pid ", r.pid)});
  }
  return replicas;
}

absl::StatusOr<Replica> ProcessBackend::Start() {
  if (!loaded_) {
    if (absl::Status s = Load(); !s.ok()) return s;
  }
  std::set<int> indices;
  for (const ProcessRecord& r : records_) indices.insert(r.index);
  int index = 0;
  while (indices.count(index) > 0) ++index;
  int port = 0;
  if (absl::StrContains(options_.command, "{port}")) {
    absl::StatusOr<int> free_port = FreeLoopbackPort();
    if (!free_port.ok()) return free_port.status();
    port = *free_port;
  }
  const std::string command = Substitute(options_.command, port, index);
  absl::StatusOr<std::vector<std::string>> words = SplitWords(command);
  if (!words.ok()) return words.status();
  std::vector<char*> argv;
  for (std::string& word : *words) argv.push_back(word.data());
  argv.push_back(nullptr);
  const int64_t serial = next_serial_;
  const std::string log_path =
      absl::StrCat(options_.state_dir, "/", options_.state_name, ".", serial, ".log");

  // The replica outlives the actuator: a session of its own, default signal handling
  // (the actuator blocks SIGTERM and SIGINT, and a blocked or ignored signal would be
  // inherited), stdin from /dev/null, output to its log, no descriptor of the actuator's.
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&files, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&files, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&files, 3);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t all;
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigdefault(&attributes, &all);
  pid_t pid = 0;
  const int error = posix_spawnp(&pid, argv[0], &files, &attributes, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  posix_spawnattr_destroy(&attributes);
  if (error == ENOENT) {
    return absl::NotFoundError(absl::StrCat("command not found: ", (*words)[0]));
  }
  if (error == EACCES || error == EPERM) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot run ", (*words)[0], ": ", std::strerror(error)));
  }
  if (error != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot start ", (*words)[0], ": ", std::strerror(error)));
  }
  // A process that already exited is recorded too, and found dead by the next List.
  const std::optional<ProcStat> stat = ReadProcStat(pid);
  ProcessRecord record{serial, pid, stat.has_value() ? stat->start_ticks : 0, index, port,
                       command};
  records_.push_back(record);
  next_serial_ = serial + 1;
  if (absl::Status s = Save(); !s.ok()) {
    // A replica that is not recorded would be lost to the next actuator: none is better.
    killpg(pid, SIGKILL);
    records_.pop_back();
    return s;
  }
  return Replica{absl::StrCat(pid), serial, absl::StrCat("pid ", pid)};
}

const ProcessRecord* ProcessBackend::Find(const Replica& replica) const {
  for (const ProcessRecord& r : records_) {
    if (absl::StrCat(r.pid) == replica.id) return &r;
  }
  return nullptr;
}

absl::Status ProcessBackend::Signal(const Replica& replica, int signal) {
  const ProcessRecord* record = Find(replica);
  if (record == nullptr) {
    return absl::NotFoundError(absl::StrCat(replica.description, " is not a replica of ",
                                            options_.target));
  }
  // Only a process that is still the replica (same start time) is signalled; one that
  // already went needs nothing.
  if (!Alive(*record)) return absl::OkStatus();
  if (killpg(record->pid, signal) != 0 && errno != ESRCH) {
    return absl::UnavailableError(absl::StrCat("cannot signal ", replica.description, ": ",
                                               std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status ProcessBackend::Stop(const Replica& replica, absl::Duration) {
  return Signal(replica, SIGTERM);
}

absl::Status ProcessBackend::Kill(const Replica& replica) { return Signal(replica, SIGKILL); }

std::string FormatProcessRecords(int64_t next_serial, const std::vector<ProcessRecord>& records) {
  std::string text = absl::StrCat(
      "# chainscale-actuator process replicas, one per line:\n"
      "# serial pid start_ticks index port command\n"
      "next_serial ",
      next_serial, "\n");
  for (const ProcessRecord& r : records) {
    absl::StrAppend(&text, r.serial, " ", r.pid, " ", r.start_ticks, " ", r.index, " ", r.port,
                    " ", r.command, "\n");
  }
  return text;
}

// The format is five numbers and the rest of the line (a command cannot hold a newline),
// simple enough that a parser here is shorter than any dependency.
absl::Status ParseProcessRecords(absl::string_view text, int64_t* next_serial,
                                 std::vector<ProcessRecord>* records) {
  records->clear();
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    auto bad = [&] {
      return absl::InvalidArgumentError(absl::StrCat("line ", number, " is not \"serial pid "
                                                     "start_ticks index port command\": ",
                                                     line));
    };
    if (absl::ConsumePrefix(&line, "next_serial ")) {
      if (!absl::SimpleAtoi(line, next_serial)) return bad();
      continue;
    }
    const std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(' ', 5));
    ProcessRecord record;
    if (fields.size() != 6 || !absl::SimpleAtoi(fields[0], &record.serial) ||
        !absl::SimpleAtoi(fields[1], &record.pid) ||
        !absl::SimpleAtoi(fields[2], &record.start_ticks) ||
        !absl::SimpleAtoi(fields[3], &record.index) ||
        !absl::SimpleAtoi(fields[4], &record.port) || record.pid <= 0) {
      return bad();
    }
    record.command = std::string(fields[5]);
    records->push_back(std::move(record));
  }
  return absl::OkStatus();
}

}  // namespace chainscale
