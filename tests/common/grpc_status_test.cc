// Field violations must survive the trip from absl::Status to the gRPC wire form that
// grpcurl and generated clients decode.
#include "common/grpc_status.h"

#include <grpcpp/support/error_details.h>

#include "common/field_violations.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

TEST(GrpcStatusTest, OkStaysOk) { EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok()); }

TEST(GrpcStatusTest, CodeAndMessageCarryOver) {
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("chain \"abc\" not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "chain \"abc\" not found");
  EXPECT_TRUE(s.error_details().empty());
}

TEST(GrpcStatusTest, FieldViolationsTravelAsBadRequestDetails) {
  const absl::Status status = InvalidArgumentWithViolations(
      {{"updates[0].autoscaling_settings.min_replica", "must be at least 0, got -1"},
       {"updates[0].chainlet_name", "appears twice"}});
  grpc::Status s = ToGrpcStatus(status);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "updates[0].autoscaling_settings.min_replica: must be at least 0, got -1; "
            "updates[0].chainlet_name: appears twice");

  google::rpc::Status details;
  ASSERT_TRUE(grpc::ExtractErrorDetails(s, &details).ok());
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  ASSERT_EQ(details.details_size(), 1);
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 2);
  EXPECT_EQ(bad_request.field_violations(0).field(),
            "updates[0].autoscaling_settings.min_replica");
  EXPECT_EQ(bad_request.field_violations(1).description(), "appears twice");
}

TEST(FieldViolationsTest, StatusWithoutViolationsHasNone) {
  EXPECT_TRUE(FieldViolationsOf(absl::InvalidArgumentError("bad")).empty());
  EXPECT_TRUE(FieldViolationsOf(absl::OkStatus()).empty());
}

}  // namespace
}  // namespace chainscale
