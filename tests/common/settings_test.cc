// Pins the settings model of DESIGN §3: defaults, both edges of every range, min against
// max on the merged result, the development pins, and partial merges.
#include "common/settings.h"

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "common/field_violations.h"
#include "common/settings_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::AnyOf;
using ::testing::Not;

const SettingsLimits kLimits{};

TEST(SettingsTest, DefaultsMatchTheContract) {
  const AutoscalingSettings s = DefaultSettings("production");
  EXPECT_EQ(s.min_replica, 0);
  EXPECT_EQ(s.max_replica, 1);
  EXPECT_EQ(s.autoscaling_window, 60);
  EXPECT_EQ(s.scale_down_delay, 900);
  EXPECT_EQ(s.concurrency_target, 1);
  EXPECT_EQ(s.target_utilization_percentage, 70);
  EXPECT_FALSE(s.target_in_flight_tokens.has_value());
  EXPECT_EQ(s.max_scale_down_rate, 50);
  EXPECT_EQ(DefaultSettings("development"), s);
  EXPECT_TRUE(Validate(s, "production", kLimits).ok());
  EXPECT_TRUE(Validate(s, "development", kLimits).ok());
}

// One field set to one value, and whether that value is inside the range.
struct EdgeCase {
  std::string field;
  int32_t value;
  bool valid;
};

void SetField(SettingsUpdate& u, const std::string& field, int32_t value) {
  if (field == "min_replica") u.min_replica = value;
  if (field == "max_replica") u.max_replica = value;
  if (field == "autoscaling_window") u.autoscaling_window = value;
  if (field == "scale_down_delay") u.scale_down_delay = value;
  if (field == "concurrency_target") u.concurrency_target = value;
  if (field == "target_utilization_percentage") u.target_utilization_percentage = value;
  if (field == "target_in_flight_tokens") u.target_in_flight_tokens = value;
  if (field == "max_scale_down_rate") u.max_scale_down_rate = value;
}

class SettingsRangeTest : public ::testing::TestWithParam<EdgeCase> {};

TEST_P(SettingsRangeTest, AcceptsInsideAndRejectsOutsideNamingTheField) {
  const EdgeCase& c = GetParam();
  AutoscalingSettings stored;
  stored.max_replica = 10;  // so that min_replica edges are not masked by max_replica
  SettingsUpdate update;
  SetField(update, c.field, c.value);
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(stored, update, "production", kLimits);
  if (c.valid) {
    ASSERT_TRUE(merged.ok()) << merged.status();
    return;
  }
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<FieldViolation> violations = FieldViolationsOf(merged.status());
  ASSERT_EQ(violations.size(), 1u) << merged.status();
  EXPECT_EQ(violations[0].field, c.field);
  EXPECT_THAT(violations[0].description, HasSubstr(std::to_string(c.value)));
}

INSTANTIATE_TEST_SUITE_P(
    Edges, SettingsRangeTest,
    ::testing::Values(
        EdgeCase{"min_replica", -1, false}, EdgeCase{"min_replica", 0, true},
        EdgeCase{"min_replica", 10, true}, EdgeCase{"max_replica", 0, false},
        EdgeCase{"max_replica", 1, true}, EdgeCase{"max_replica", 1000, true},
        EdgeCase{"max_replica", 1001, false}, EdgeCase{"autoscaling_window", 9, false},
        EdgeCase{"autoscaling_window", 10, true}, EdgeCase{"autoscaling_window", 3600, true},
        EdgeCase{"autoscaling_window", 3601, false}, EdgeCase{"scale_down_delay", -1, false},
        EdgeCase{"scale_down_delay", 0, true}, EdgeCase{"scale_down_delay", 3600, true},
        EdgeCase{"scale_down_delay", 3601, false}, EdgeCase{"concurrency_target", 0, false},
        EdgeCase{"concurrency_target", 1, true},
        EdgeCase{"concurrency_target", 2147483647, true},
        EdgeCase{"target_utilization_percentage", 0, false},
        EdgeCase{"target_utilization_percentage", 1, true},
        EdgeCase{"target_utilization_percentage", 100, true},
        EdgeCase{"target_utilization_percentage", 101, false},
        EdgeCase{"target_in_flight_tokens", 0, false},
        EdgeCase{"target_in_flight_tokens", 1, true},
        EdgeCase{"max_scale_down_rate", 0, false}, EdgeCase{"max_scale_down_rate", 1, true},
        EdgeCase{"max_scale_down_rate", 50, true},
        EdgeCase{"max_scale_down_rate", 51, false}),
    [](const ::testing::TestParamInfo<EdgeCase>& info) {
      return info.param.field + (info.param.value < 0 ? "_minus" : "_") +
             std::to_string(std::abs(info.param.value));
    });

TEST(SettingsTest, MaxReplicaLimitIsConfigurable) {
  SettingsUpdate update;
  update.max_replica = 51;
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(AutoscalingSettings{}, update, "production", SettingsLimits{50});
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(merged.status()),
              ElementsAre(FieldViolation{"max_replica", "must be between 1 and 50, got 51"}));
}

TEST(SettingsTest, MinAboveStoredMaxIsRejectedAgainstMin) {
  AutoscalingSettings stored;
  stored.max_replica = 3;
  SettingsUpdate update;
  update.min_replica = 5;
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(stored, update, "production", kLimits);
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(merged.status()),
              ElementsAre(FieldViolation{"min_replica",
                                         "min_replica (5) must not exceed max_replica (3)"}));
}

TEST(SettingsTest, MaxBelowStoredMinIsRejectedAgainstMax) {
  AutoscalingSettings stored;
  stored.min_replica = 3;
  stored.max_replica = 5;
  SettingsUpdate update;
  update.max_replica = 2;
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(stored, update, "production", kLimits);
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(FieldViolationsOf(merged.status()),
              ElementsAre(FieldViolation{"max_replica",
                                         "min_replica (3) must not exceed max_replica (2)"}));
}

TEST(SettingsTest, MinEqualToMaxIsValid) {
  SettingsUpdate update;
  update.min_replica = 4;
  update.max_replica = 4;
  EXPECT_TRUE(MergeAndValidate(AutoscalingSettings{}, update, "production", kLimits).ok());
}

TEST(SettingsTest, EveryProblemIsReportedOnceWithTheFieldPrefix) {
  SettingsUpdate update;
  update.autoscaling_window = 5;
  update.scale_down_delay = 4000;
  update.target_utilization_percentage = 0;
  absl::StatusOr<AutoscalingSettings> merged = MergeAndValidate(
      AutoscalingSettings{}, update, "production", kLimits, "updates[1].autoscaling_settings.");
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      FieldViolationsOf(merged.status()),
      ElementsAre(
          FieldViolation{"updates[1].autoscaling_settings.autoscaling_window",
                         "must be between 10 and 3600 seconds, got 5"},
          FieldViolation{"updates[1].autoscaling_settings.scale_down_delay",
                         "must be between 0 and 3600 seconds, got 4000"},
          FieldViolation{"updates[1].autoscaling_settings.target_utilization_percentage",
                         "must be between 1 and 100 percent, got 0"}));
  EXPECT_THAT(merged.status().message(),
              HasSubstr("updates[1].autoscaling_settings.autoscaling_window: must be between"));
}

TEST(SettingsTest, DevelopmentRejectsChangingTheReplicaBounds) {
  SettingsUpdate update;
  update.min_replica = 1;
  update.max_replica = 2;
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(DefaultSettings("development"), update, "development", kLimits);
  ASSERT_EQ(merged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      FieldViolationsOf(merged.status()),
      ElementsAre(
          FieldViolation{"min_replica", "is fixed at 0 in development environments, got 1"},
          FieldViolation{"max_replica", "is fixed at 1 in development environments, got 2"}));
}

TEST(SettingsTest, DevelopmentAcceptsThePinnedValuesAndTheOtherFields) {
  SettingsUpdate update;
  update.min_replica = 0;
  update.max_replica = 1;
  update.autoscaling_window = 120;
  update.scale_down_delay = 30;
  update.concurrency_target = 4;
  update.target_utilization_percentage = 90;
  absl::StatusOr<AutoscalingSettings> merged =
      MergeAndValidate(DefaultSettings("development"), update, "development", kLimits);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->autoscaling_window, 120);
  EXPECT_EQ(merged->scale_down_delay, 30);
  EXPECT_EQ(merged->concurrency_target, 4);
  EXPECT_EQ(merged->target_utilization_percentage, 90);
  EXPECT_EQ(merged->min_replica, 0);
  EXPECT_EQ(merged->max_replica, 1);
}

TEST(SettingsTest, OtherEnvironmentsMayChangeTheBounds) {
  SettingsUpdate update;
  update.min_replica = 2;
  update.max_replica = 7;
  for (const char* env : {"production", "staging"}) {
    absl::StatusOr<AutoscalingSettings> merged =
        MergeAndValidate(DefaultSettings(env), update, env, kLimits);
    ASSERT_TRUE(merged.ok()) << env << ": " << merged.status();
    EXPECT_EQ(merged->min_replica, 2);
    EXPECT_EQ(merged->max_replica, 7);
  }
}

TEST(SettingsTest, PartialMergeChangesOnlyThePresentFields) {
  AutoscalingSettings stored;
  stored.min_replica = 2;
  stored.max_replica = 8;
  stored.scale_down_delay = 63;
  stored.target_in_flight_tokens = 40'000;
  SettingsUpdate update;
  update.concurrency_target = 4;
  update.max_replica = 9;
  const AutoscalingSettings merged = Merge(stored, update);
  AutoscalingSettings expected = stored;
  expected.concurrency_target = 4;
  expected.max_replica = 9;
  EXPECT_EQ(merged, expected);
  EXPECT_EQ(Merge(stored, SettingsUpdate{}), stored);
}

TEST(SettingsTest, DescribeChangesNamesEachChangedField) {
  AutoscalingSettings before;
  AutoscalingSettings after = before;
  EXPECT_EQ(DescribeChanges(before, after), "");
  after.min_replica = 2;
  after.max_replica = 3;
  after.target_in_flight_tokens = 500;
  EXPECT_EQ(DescribeChanges(before, after),
            "min_replica from 0 to 2, max_replica from 1 to 3, "
            "target_in_flight_tokens from unset to 500");
  // Plain words: JSON encoders (grpcurl's, the REST gateway's) escape '>' and '<'.
  EXPECT_THAT(DescribeChanges(before, after), Not(AnyOf(HasSubstr(">"), HasSubstr("<"))));
}

TEST(SettingsTest, ResetFieldReturnsEachFieldToItsDefault) {
  AutoscalingSettings s;
  s.min_replica = 2;
  s.max_replica = 9;
  s.target_in_flight_tokens = 500;
  s.max_scale_down_rate = 10;
  for (const char* field : {"min_replica", "max_replica", "target_in_flight_tokens",
                            "max_scale_down_rate"}) {
    EXPECT_TRUE(ResetField(field, "production", &s)) << field;
  }
  EXPECT_EQ(s, DefaultSettings("production"));
  EXPECT_FALSE(s.target_in_flight_tokens.has_value());
  EXPECT_FALSE(ResetField("nonsense", "production", &s));
  EXPECT_FALSE(ResetField("", "production", &s));

  SettingsUpdate update;
  update.scale_down_delay = 5;
  EXPECT_TRUE(UpdateSets(update, "scale_down_delay"));
  EXPECT_FALSE(UpdateSets(update, "min_replica"));
  EXPECT_FALSE(UpdateSets(update, "nonsense"));
  EXPECT_TRUE(IsSettingName("target_in_flight_tokens"));
  EXPECT_FALSE(IsSettingName("targetInFlightTokens"));
}

// Changing any single field must make settings unequal (or an update would be answered
// UNCHANGED and dropped) and must be described.
class SettingsFieldTest : public ::testing::TestWithParam<EdgeCase> {};

TEST_P(SettingsFieldTest, ChangingOneFieldIsSeenAndDescribed) {
  const EdgeCase& c = GetParam();
  AutoscalingSettings before;
  before.max_replica = 10;
  SettingsUpdate update;
  SetField(update, c.field, c.value);
  const AutoscalingSettings after = Merge(before, update);
  EXPECT_NE(after, before);
  EXPECT_FALSE(after == before);
  EXPECT_THAT(DescribeChanges(before, after), HasSubstr(c.field + " "));
  EXPECT_THAT(DescribeChanges(before, after), HasSubstr(" to " + std::to_string(c.value)));
}

INSTANTIATE_TEST_SUITE_P(
    EveryField, SettingsFieldTest,
    ::testing::Values(EdgeCase{"min_replica", 3, true}, EdgeCase{"max_replica", 11, true},
                      EdgeCase{"autoscaling_window", 61, true},
                      EdgeCase{"scale_down_delay", 901, true},
                      EdgeCase{"concurrency_target", 2, true},
                      EdgeCase{"target_utilization_percentage", 71, true},
                      EdgeCase{"target_in_flight_tokens", 500, true},
                      EdgeCase{"max_scale_down_rate", 49, true}),
    [](const ::testing::TestParamInfo<EdgeCase>& info) { return info.param.field; });

TEST(SettingsTest, ValidateReportsStoredSettingsThatBreakTheRules) {
  AutoscalingSettings s;
  s.min_replica = 2;  // above max_replica 1
  s.max_scale_down_rate = 0;
  absl::Status status = Validate(s, "production", kLimits);
  EXPECT_THAT(FieldViolationsOf(status),
              ElementsAre(FieldViolation{"min_replica",
                                         "min_replica (2) must not exceed max_replica (1)"},
                          FieldViolation{"max_scale_down_rate",
                                         "must be between 1 and 50 percent, got 0"}));
  s = AutoscalingSettings{};
  s.max_replica = 3;
  EXPECT_THAT(FieldViolationsOf(Validate(s, "development", kLimits)),
              ElementsAre(FieldViolation{
                  "max_replica", "is fixed at 1 in development environments, got 3"}));
}

TEST(SettingsProtoTest, DecisionStatusesMapToTheirProtoNames) {
  EXPECT_EQ(DecisionStatusToProto(DecisionStatus::kAccepted), v1::ScalingDecision::ACCEPTED);
  EXPECT_EQ(DecisionStatusToProto(DecisionStatus::kQueued), v1::ScalingDecision::QUEUED);
  EXPECT_EQ(DecisionStatusToProto(DecisionStatus::kUnchanged), v1::ScalingDecision::UNCHANGED);
}

TEST(SettingsTest, ReplicaCapacityIsExactInMilliRequests) {
  AutoscalingSettings s;
  EXPECT_EQ(ReplicaCapacityMilli(s), 700);  // 1 × 70 %
  s.concurrency_target = 10;
  EXPECT_EQ(ReplicaCapacityMilli(s), 7000);
}

TEST(SettingsProtoTest, AbsentFieldsAreNotPassed) {
  v1::AutoscalingSettings proto;
  proto.set_min_replica(0);
  proto.set_scale_down_delay(63);
  const SettingsUpdate update = UpdateFromProto(proto);
  EXPECT_EQ(update.min_replica, 0);  // present though zero
  EXPECT_EQ(update.scale_down_delay, 63);
  EXPECT_FALSE(update.max_replica.has_value());
  EXPECT_FALSE(update.autoscaling_window.has_value());
  EXPECT_FALSE(update.concurrency_target.has_value());
  EXPECT_FALSE(update.target_utilization_percentage.has_value());
  EXPECT_FALSE(update.target_in_flight_tokens.has_value());
  EXPECT_FALSE(update.max_scale_down_rate.has_value());
}

TEST(SettingsProtoTest, EffectiveSettingsRoundTrip) {
  AutoscalingSettings s;
  s.min_replica = 2;
  s.max_replica = 9;
  s.max_scale_down_rate = 25;
  v1::AutoscalingSettings proto = SettingsToProto(s);
  EXPECT_TRUE(proto.has_min_replica());
  EXPECT_TRUE(proto.has_scale_down_delay());
  EXPECT_FALSE(proto.has_target_in_flight_tokens());
  EXPECT_EQ(Merge(AutoscalingSettings{}, UpdateFromProto(proto)), s);
  s.target_in_flight_tokens = 40'000;
  proto = SettingsToProto(s);
  EXPECT_EQ(proto.target_in_flight_tokens(), 40'000);
  EXPECT_EQ(Merge(AutoscalingSettings{}, UpdateFromProto(proto)), s);
}

}  // namespace
}  // namespace chainscale
