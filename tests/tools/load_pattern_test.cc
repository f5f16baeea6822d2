// Load pattern specs of the load generator.
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
  for (const char* spec : {"", "constant", "constant:-1", "step:1,2", "ramp:1,2,soon", "zigzag:1"}) {
    auto p = ParseLoadPattern(spec, model);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_THAT(p.status().message(), HasSubstr("constant:N")) << spec;
  }
  EXPECT_EQ(ParseLoadPattern("trace:/nonexistent.csv", model).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chainscale
