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

// DESIGN §14: whatever a core produced, the status a client receives has a message of at
// most 1 KiB and at most 10 bounded field violations, so that grpc-message and
// grpc-status-details-bin fit the 8 KiB metadata limit of default clients.
constexpr size_t kDefaultClientMetadataLimit = 8192;

// What the trailers of `s` cost against a client's metadata limit: HPACK counts name,
// value and 32 bytes per entry; grpc-message is percent-encoded, the details base64.
size_t TrailerBytes(const grpc::Status& s) {
  size_t message = 0;
  for (unsigned char c : s.error_message()) message += (c >= 0x20 && c < 0x7F && c != '%') ? 1 : 3;
  const size_t details = (s.error_details().size() + 2) / 3 * 4;
  return (11 + 1 + 32) + (12 + message + 32) + (23 + details + 32) + (12 + 16 + 32);
}

TEST(GrpcStatusTest, LongMessagesAreCutToOneKibibyteOnACharacterBoundary) {
  std::string name;
  for (int i = 0; i < 2000; ++i) name += "\xC3\xA9";  // é, two bytes each
  grpc::Status s = ToGrpcStatus(absl::NotFoundError("chain \"" + name + "\" not found"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_LE(s.error_message().size(), 1024u);
  EXPECT_GT(s.error_message().size(), 900u);
  EXPECT_EQ(s.error_message().rfind("chain \"\xC3\xA9", 0), 0u);
  // Never half a character: the cut text is still valid UTF-8 up to the marker.
  const std::string cut = s.error_message();
  EXPECT_EQ(cut.substr(cut.size() - 3), "...");
  EXPECT_NE(static_cast<unsigned char>(cut[cut.size() - 4]), 0xC3);
  EXPECT_LT(TrailerBytes(s), kDefaultClientMetadataLimit);
}

TEST(GrpcStatusTest, ManyViolationsAreCutToTenAndSayHowManyMore) {
  std::vector<FieldViolation> violations;
  for (int i = 0; i < 300; ++i) {
    violations.push_back({"updates[" + std::to_string(i) + "].autoscaling_settings.max_replica",
                          "must be at least 1, got 0"});
  }
  grpc::Status s = ToGrpcStatus(InvalidArgumentWithViolations(violations));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(s.error_message().size(), 1024u);
  EXPECT_NE(s.error_message().find("and 290 more"), std::string::npos) << s.error_message();
  google::rpc::Status details;
  ASSERT_TRUE(grpc::ExtractErrorDetails(s, &details).ok());
  EXPECT_EQ(details.message(), s.error_message());  // clients check that they agree
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  ASSERT_EQ(bad_request.field_violations_size(), 10);
  EXPECT_EQ(bad_request.field_violations(9).field(), "updates[9].autoscaling_settings.max_replica");
  EXPECT_LT(TrailerBytes(s), kDefaultClientMetadataLimit);
}

TEST(GrpcStatusTest, HugeViolationsStillFitADefaultClient) {
  // The worst a core could hand over: long non-ASCII fields and descriptions.
  std::string huge;
  for (int i = 0; i < 50000; ++i) huge += "\xE2\x80\xAE";  // U+202E, three bytes
  std::vector<FieldViolation> violations(40, FieldViolation{huge, huge});
  grpc::Status s = ToGrpcStatus(InvalidArgumentWithViolations(violations));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(s.error_message().size(), 1024u);
  google::rpc::Status details;
  ASSERT_TRUE(grpc::ExtractErrorDetails(s, &details).ok());
  google::rpc::BadRequest bad_request;
  ASSERT_TRUE(details.details(0).UnpackTo(&bad_request));
  EXPECT_GE(bad_request.field_violations_size(), 1);
  EXPECT_LE(bad_request.field_violations_size(), 10);
  EXPECT_LT(TrailerBytes(s), kDefaultClientMetadataLimit);
}

TEST(FieldViolationsTest, StatusWithoutViolationsHasNone) {
  EXPECT_TRUE(FieldViolationsOf(absl::InvalidArgumentError("bad")).empty());
  EXPECT_TRUE(FieldViolationsOf(absl::OkStatus()).empty());
}

}  // namespace
}  // namespace chainscale
