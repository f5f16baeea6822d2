// Load pattern specs, shared by the load generator and the simulator.
#include "tools/loadgen/load_pattern.h"

#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

int64_t RequestsAt(const LoadPattern& p, absl::Duration t) { return p.At(t).requests; }

TEST(LoadPatternTest, ConstantStepAndRamp) {
  const ServiceTimeModel model;
  auto constant = ParseLoadPattern("constant:25", model);
  ASSERT_TRUE(constant.ok()) << constant.status();
  EXPECT_EQ(RequestsAt(**constant, absl::Hours(1)), 25);

  auto step = ParseLoadPattern("step:5,25,30s", model);
  ASSERT_TRUE(step.ok());
  EXPECT_EQ(RequestsAt(**step, absl::Seconds(29)), 5);
  EXPECT_EQ(RequestsAt(**step, absl::Seconds(30)), 25);

  auto ramp = ParseLoadPattern("ramp:0,50,60s", model);
  ASSERT_TRUE(ramp.ok());
  EXPECT_EQ(RequestsAt(**ramp, absl::ZeroDuration()), 0);
  EXPECT_EQ(RequestsAt(**ramp, absl::Seconds(30)), 25);
  EXPECT_EQ(RequestsAt(**ramp, absl::Seconds(90)), 50);
  EXPECT_EQ((*ramp)->length(), absl::InfiniteDuration());
}

TEST(LoadPatternTest, SpikePulseWaveAndPoints) {
  auto spike = ParseLoadShape("spike:2,20,10m,1m");
  ASSERT_TRUE(spike.ok()) << spike.status();
  EXPECT_EQ(RequestsAt(**spike, absl::Seconds(599)), 2);
  EXPECT_EQ(RequestsAt(**spike, absl::Seconds(600)), 20);
  EXPECT_EQ(RequestsAt(**spike, absl::Seconds(659)), 20);
  EXPECT_EQ(RequestsAt(**spike, absl::Seconds(660)), 2);

  // 0 for 20 s, then 8 for 5 s, repeating.
  auto pulse = ParseLoadShape("pulse:0,8,20s,5s");
  ASSERT_TRUE(pulse.ok()) << pulse.status();
  const int64_t want_pulse[] = {0, 0, 8, 8, 0, 0, 8};
  const int at_pulse[] = {0, 19, 20, 24, 25, 44, 45};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(RequestsAt(**pulse, absl::Seconds(at_pulse[i])), want_pulse[i]) << at_pulse[i];
  }

  // Low at the start of each period, high at its middle.
  auto wave = ParseLoadShape("wave:2,20,24h");
  ASSERT_TRUE(wave.ok()) << wave.status();
  EXPECT_EQ(RequestsAt(**wave, absl::ZeroDuration()), 2);
  EXPECT_EQ(RequestsAt(**wave, absl::Hours(6)), 11);
  EXPECT_EQ(RequestsAt(**wave, absl::Hours(12)), 20);
  EXPECT_EQ(RequestsAt(**wave, absl::Hours(24)), 2);

  // Straight lines through the points, then the last value.
  auto points = ParseLoadShape("points:10s,0,10,4");
  ASSERT_TRUE(points.ok()) << points.status();
  const int64_t want_points[] = {0, 5, 10, 7, 4, 4};
  const int at_points[] = {0, 5, 10, 15, 20, 3600};
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(RequestsAt(**points, absl::Seconds(at_points[i])), want_points[i]) << at_points[i];
  }
  // Fractional counts round to whole requests.
  auto half = ParseLoadShape("ramp:0,1,4s");
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(RequestsAt(**half, absl::Seconds(1)), 0);
  EXPECT_EQ(RequestsAt(**half, absl::Seconds(3)), 1);
}

TEST(LoadPatternTest, ShapesFromTheNetworkNeverOpenFiles) {
  const std::string path = ::testing::TempDir() + "/shape_trace.csv";
  {
    std::ofstream out(path);
    out << "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:00:00.000,1,1\n";
  }
  EXPECT_TRUE(ParseLoadPattern("trace:" + path, ServiceTimeModel{}).ok());
  absl::StatusOr<std::unique_ptr<LoadPattern>> shape = ParseLoadShape("trace:" + path);
  EXPECT_EQ(shape.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(LoadPatternTest, TraceFollowsTheServiceTimeModel) {
  const std::string path = ::testing::TempDir() + "/loadgen_trace.csv";
  {
    std::ofstream out(path);
    out << "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        << "2023-11-16 18:00:00.000,100,10\n"
        << "2023-11-16 18:00:01.000,100,10\n";
  }
  ServiceTimeModel model;
  model.overhead = absl::Seconds(2);
  model.per_context_token = absl::ZeroDuration();
  model.per_generated_token = absl::ZeroDuration();
  auto trace = ParseLoadPattern("trace:" + path, model);
  ASSERT_TRUE(trace.ok()) << trace.status();
  EXPECT_EQ(RequestsAt(**trace, absl::Seconds(0)), 1);
  EXPECT_EQ(RequestsAt(**trace, absl::Seconds(1)), 2);
  EXPECT_EQ((*trace)->At(absl::Seconds(1)).tokens, 220);
  EXPECT_EQ(RequestsAt(**trace, absl::Seconds(2)), 1);
  EXPECT_EQ((*trace)->length(), absl::Seconds(3));
}

TEST(LoadPatternTest, BadSpecsSayWhatIsExpected) {
  const ServiceTimeModel model;
  for (const char* spec :
       {"", "constant", "constant:-1", "constant:1000001", "constant:nan", "step:1,2",
        "ramp:1,2,soon", "zigzag:1", "spike:1,2,3s,0s", "pulse:1,2,0s,0s", "wave:1,2,0s",
        "wave:1,2,-5s", "points:10s", "points:0s,1,2", "points:10s,1,x", "step:1,2,inf"}) {
    auto p = ParseLoadPattern(spec, model);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(p.status().message(), HasSubstr("constant:N")) << spec;
  }
  EXPECT_EQ(ParseLoadPattern("trace:/nonexistent.csv", model).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chainscale
