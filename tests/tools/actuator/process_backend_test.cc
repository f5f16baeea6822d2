#include "tools/actuator/process_backend.h"

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/wait.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Real processes: every test kills what it started.
class ProcessBackendTest : public ::testing::Test {
 protected:
  ~ProcessBackendTest() override {
    for (int pid : started_) {
      if (ProcessBackend::StartTicks(pid).has_value()) killpg(pid, SIGKILL);
    }
  }

  std::unique_ptr<ProcessBackend> Make(const std::string& command) {
    absl::StatusOr<std::unique_ptr<ProcessBackend>> backend = ProcessBackend::Create(
        {"demo/production/HelloWorld", command, dir_.str(), "demo.production.HelloWorld"});
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? *std::move(backend) : nullptr;
  }

  Replica StartOne(ProcessBackend& backend) {
    absl::StatusOr<Replica> replica = backend.Start();
    EXPECT_TRUE(replica.ok()) << replica.status();
    if (!replica.ok()) return {};
    int pid = 0;
    EXPECT_TRUE(absl::SimpleAtoi(replica->id, &pid));
    started_.push_back(pid);
    return *replica;
  }

  static std::vector<std::string> Ids(const std::vector<Replica>& replicas) {
    std::vector<std::string> ids;
    for (const Replica& r : replicas) ids.push_back(r.id);
    return ids;
  }

  testing::ScopedTempDir dir_;
  std::vector<int> started_;
};

TEST_F(ProcessBackendTest, StartsCopiesWithTheirOwnPortAndIndex) {
  const std::string out = dir_.str() + "/out-";
  std::unique_ptr<ProcessBackend> backend =
      Make("/bin/sh -c 'echo {index} {port} > " + out + "{index}; exec sleep 1000'");
  ASSERT_NE(backend, nullptr);
  ASSERT_TRUE(backend->List().ok());
  const Replica first = StartOne(*backend);
  const Replica second = StartOne(*backend);
  EXPECT_EQ(first.serial, 1);
  EXPECT_EQ(second.serial, 2);
  EXPECT_EQ(first.description, "pid " + first.id);

  ASSERT_TRUE(testing::WaitFor([&] {
    return absl::EndsWith(ReadFile(out + "0"), "\n") && absl::EndsWith(ReadFile(out + "1"), "\n");
  }));
  std::vector<std::string> zero = absl::StrSplit(absl::StripSuffix(ReadFile(out + "0"), "\n"), ' ');
  std::vector<std::string> one = absl::StrSplit(absl::StripSuffix(ReadFile(out + "1"), "\n"), ' ');
  ASSERT_EQ(zero.size(), 2u);
  ASSERT_EQ(one.size(), 2u);
  EXPECT_EQ(zero[0], "0");
  EXPECT_EQ(one[0], "1");
  int port0 = 0, port1 = 0;
  ASSERT_TRUE(absl::SimpleAtoi(zero[1], &port0));
  ASSERT_TRUE(absl::SimpleAtoi(one[1], &port1));
  EXPECT_GT(port0, 0);
  EXPECT_GT(port1, 0);
  EXPECT_NE(port0, port1);

  absl::StatusOr<std::vector<Replica>> listed = backend->List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(Ids(*listed), ::testing::ElementsAre(first.id, second.id));

  // The state file records both, with the command as started.
  const std::string state = ReadFile(backend->state_path());
  EXPECT_THAT(state, HasSubstr(absl::StrCat("1 ", first.id, " ")));
  EXPECT_THAT(state, HasSubstr("echo 1 " + one[1] + " > " + out + "1"));
}

TEST_F(ProcessBackendTest, StopEndsTheReplicaAndListForgetsIt) {
  std::unique_ptr<ProcessBackend> backend = Make("sleep 1000");
  ASSERT_NE(backend, nullptr);
  const Replica replica = StartOne(*backend);
  ASSERT_TRUE(backend->Stop(replica, absl::Seconds(30)).ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    absl::StatusOr<std::vector<Replica>> listed = backend->List();
    return listed.ok() && listed->empty();
  }));
  EXPECT_THAT(ReadFile(backend->state_path()), ::testing::Not(HasSubstr(" " + replica.id + " ")));
}

TEST_F(ProcessBackendTest, KillEndsAReplicaThatIgnoresSigterm) {
  std::unique_ptr<ProcessBackend> backend = Make("/bin/sh -c 'trap \"\" TERM; exec sleep 1000'");
  ASSERT_NE(backend, nullptr);
  const Replica replica = StartOne(*backend);
  ASSERT_TRUE(backend->Stop(replica, absl::Seconds(30)).ok());
  absl::StatusOr<std::vector<Replica>> listed = backend->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 1u);  // SIGTERM is ignored
  ASSERT_TRUE(backend->Kill(replica).ok());
  ASSERT_TRUE(testing::WaitFor([&] {
    absl::StatusOr<std::vector<Replica>> now = backend->List();
    return now.ok() && now->empty();
  }));
}

TEST_F(ProcessBackendTest, ARestartedBackendAdoptsTheReplicasStillAlive) {
  std::vector<std::string> before;
  {
    std::unique_ptr<ProcessBackend> backend = Make("sleep 1000");
    ASSERT_NE(backend, nullptr);
    before.push_back(StartOne(*backend).id);
    before.push_back(StartOne(*backend).id);
    const Replica third = StartOne(*backend);
    before.push_back(third.id);
    ASSERT_TRUE(backend->Kill(third).ok());
    ASSERT_TRUE(testing::WaitFor([&] {
      absl::StatusOr<std::vector<Replica>> listed = backend->List();
      return listed.ok() && listed->size() == 2;
    }));
    before.pop_back();
  }  // the backend goes; its replicas stay

  std::unique_ptr<ProcessBackend> restarted = Make("sleep 1000");
  ASSERT_NE(restarted, nullptr);
  absl::StatusOr<std::vector<Replica>> adopted = restarted->List();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_EQ(Ids(*adopted), before);
  EXPECT_EQ((*adopted)[0].serial, 1);
  EXPECT_EQ((*adopted)[1].serial, 2);
  // Serials go on from where they were.
  EXPECT_EQ(StartOne(*restarted).serial, 4);
}

TEST_F(ProcessBackendTest, NeverAdoptsAReusedPidAndForgetsDeadOnes) {
  // This test's own pid with another start time (a pid the kernel gave to someone else
  // since), and a pid that no longer exists.
  const uint64_t my_ticks = ProcessBackend::StartTicks(getpid()).value();
  std::vector<ProcessRecord> records = {
      {1, getpid(), my_ticks + 1, 0, 0, "sleep 1000"},
      {2, 0x3ffffff0, 12345, 1, 0, "sleep 1000"},
  };
  {
    std::ofstream state(dir_.str() + "/demo.production.HelloWorld.replicas");
    state << FormatProcessRecords(3, records);
  }
  std::unique_ptr<ProcessBackend> backend = Make("sleep 1000");
  ASSERT_NE(backend, nullptr);
  absl::StatusOr<std::vector<Replica>> adopted = backend->List();
  ASSERT_TRUE(adopted.ok()) << adopted.status();
  EXPECT_TRUE(adopted->empty());
  int64_t next_serial = 0;
  std::vector<ProcessRecord> kept;
  ASSERT_TRUE(ParseProcessRecords(ReadFile(backend->state_path()), &next_serial, &kept).ok());
  EXPECT_EQ(next_serial, 3);
  EXPECT_TRUE(kept.empty());
  // Stop and Kill refuse a replica that is not (or no longer) theirs: nothing is signalled.
  const Replica stranger{absl::StrCat(getpid()), 1, "pid"};
  EXPECT_EQ(backend->Stop(stranger, absl::Seconds(1)).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(backend->Kill(stranger).code(), absl::StatusCode::kNotFound);
}

TEST_F(ProcessBackendTest, RecordsRoundTrip) {
  const std::vector<ProcessRecord> records = {
      {4, 101, 9001, 0, 40001, "chainscale-replica --http_listen=127.0.0.1:40001"},
      {7, 102, 9002, 1, 0, "python3 -c 'import time; time.sleep(1000)'"},
  };
  const std::string text = FormatProcessRecords(8, records);
  int64_t next_serial = 0;
  std::vector<ProcessRecord> parsed;
  ASSERT_TRUE(ParseProcessRecords(text, &next_serial, &parsed).ok());
  EXPECT_EQ(next_serial, 8);
  ASSERT_EQ(parsed.size(), 2u);
  EXPECT_EQ(parsed[1].serial, 7);
  EXPECT_EQ(parsed[1].pid, 102);
  EXPECT_EQ(parsed[1].start_ticks, 9002u);
  EXPECT_EQ(parsed[1].index, 1);
  EXPECT_EQ(parsed[1].port, 0);
  EXPECT_EQ(parsed[1].command, records[1].command);
  EXPECT_EQ(parsed[0].command, records[0].command);

  const absl::Status bad = ParseProcessRecords("next_serial 2\n1 x 3 4 5 sleep\n", &next_serial,
                                               &parsed);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("line 2"));
}

TEST_F(ProcessBackendTest, ACommandThatDoesNotExistIsNotFound) {
  std::unique_ptr<ProcessBackend> backend = Make("chainscale-no-such-command --port={port}");
  ASSERT_NE(backend, nullptr);
  absl::StatusOr<Replica> replica = backend->Start();
  EXPECT_EQ(replica.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(replica.status().message(), HasSubstr("chainscale-no-such-command"));
}

TEST_F(ProcessBackendTest, RefusesTemplatesItCannotSplit) {
  for (const std::string command : {"", "sleep 'unbalanced", "sleep 1\nsleep 2", "a | b",
                                    "echo $(id)"}) {
    absl::StatusOr<std::unique_ptr<ProcessBackend>> backend = ProcessBackend::Create(
        {"demo/production/HelloWorld", command, dir_.str(), "demo.production.HelloWorld"});
    EXPECT_EQ(backend.status().code(), absl::StatusCode::kInvalidArgument) << command;
  }
}

}  // namespace
}  // namespace chainscale
