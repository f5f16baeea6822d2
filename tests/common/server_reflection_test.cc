#include "common/server_reflection.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "chainscale/served_descriptor_set.h"
#include "google/protobuf/descriptor.pb.h"

namespace chainscale {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<std::string> Names(const std::vector<std::string>& serialized) {
  std::vector<std::string> names;
  for (const std::string& bytes : serialized) {
    google::protobuf::FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    names.push_back(file.name());
  }
  return names;
}

TEST(DescriptorIndexTest, EmbeddedSetHoldsEveryServedService) {
  const google::protobuf::DescriptorPool& pool = DescriptorIndex::Served().pool();
  for (const char* service :
       {"chainscale.v1.ControlPlane", "chainscale.v1.Agent", "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}) {
    EXPECT_NE(pool.FindServiceByName(service), nullptr) << service;
  }
  EXPECT_NE(pool.FindMessageTypeByName("google.rpc.BadRequest"), nullptr);
}

TEST(DescriptorIndexTest, FilesCarryCommentsButNoJsonNames) {
  const DescriptorIndex& index = DescriptorIndex::Served();
  const google::protobuf::FileDescriptor* file =
      index.pool().FindFileByName("chainscale/v1/settings.proto");
  ASSERT_NE(file, nullptr);
  absl::flat_hash_set<std::string> sent;
  std::vector<std::string> files = index.FileWithImports(*file, &sent);
  google::protobuf::FileDescriptorProto proto;
  ASSERT_TRUE(proto.ParseFromString(files[0]));
  EXPECT_GT(proto.source_code_info().location_size(), 10);
  ASSERT_GT(proto.message_type_size(), 0);
  for (const auto& field : proto.message_type(0).field()) {
    EXPECT_FALSE(field.has_json_name()) << field.name();
  }
  google::protobuf::SourceLocation location;
  ASSERT_TRUE(file->FindMessageTypeByName("AutoscalingSettings")->GetSourceLocation(&location));
  EXPECT_THAT(location.leading_comments, HasSubstr("Field names follow Baseten's"));
}

TEST(DescriptorIndexTest, ImportsGoOncePerSentSet) {
  const DescriptorIndex& index = DescriptorIndex::Served();
  const auto* agent = index.pool().FindFileByName("chainscale/v1/agent.proto");
  const auto* control_plane = index.pool().FindFileByName("chainscale/v1/control_plane.proto");
  ASSERT_NE(agent, nullptr);
  ASSERT_NE(control_plane, nullptr);
  absl::flat_hash_set<std::string> sent;
  EXPECT_THAT(Names(index.FileWithImports(*agent, &sent)),
              ElementsAre("chainscale/v1/agent.proto", "chainscale/v1/settings.proto",
                          "google/protobuf/timestamp.proto"));
  EXPECT_THAT(Names(index.FileWithImports(*control_plane, &sent)),
              ElementsAre("chainscale/v1/control_plane.proto", "google/protobuf/struct.proto"));
  EXPECT_THAT(Names(index.FileWithImports(*agent, &sent)),
              ElementsAre("chainscale/v1/agent.proto"));
}

TEST(DescriptorIndexTest, RejectsWhatDoesNotParseOrBuild) {
  EXPECT_EQ(DescriptorIndex::Build("\xff\xff garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  // A file whose import is missing from the set does not build.
  google::protobuf::FileDescriptorSet set;
  auto* file = set.add_file();
  file->set_name("a.proto");
  file->add_dependency("missing.proto");
  absl::StatusOr<std::unique_ptr<DescriptorIndex>> index =
      DescriptorIndex::Build(set.SerializeAsString());
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(index.status().message(), HasSubstr("a.proto"));
}

}  // namespace
}  // namespace chainscale
