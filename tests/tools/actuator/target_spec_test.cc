#include "tools/actuator/target_spec.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chainscale {
namespace {

using ::testing::HasSubstr;

TEST(TargetSpecTest, ProcessTarget) {
  absl::StatusOr<TargetSpec> spec = ParseTarget(
      "demo/production/HelloWorld=process:chainscale-replica --http_listen=127.0.0.1:{port}");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->chain_id, "demo");
  EXPECT_EQ(spec->env_name, "production");
  EXPECT_EQ(spec->chainlet_name, "HelloWorld");
  EXPECT_EQ(spec->name(), "demo/production/HelloWorld");
  ASSERT_TRUE(std::holds_alternative<ProcessBackendSpec>(spec->backend));
  EXPECT_EQ(std::get<ProcessBackendSpec>(spec->backend).command,
            "chainscale-replica --http_listen=127.0.0.1:{port}");
}

TEST(TargetSpecTest, DockerTargets) {
  absl::StatusOr<TargetSpec> spec = ParseTarget("demo/staging/Rand_Int-2=docker:service=replica");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->chainlet_name, "Rand_Int-2");
  ASSERT_TRUE(std::holds_alternative<DockerBackendSpec>(spec->backend));
  EXPECT_EQ(std::get<DockerBackendSpec>(spec->backend).label,
            "com.docker.compose.service=replica");
  EXPECT_EQ(std::get<DockerBackendSpec>(spec->backend).template_container, "");

  spec = ParseTarget("demo/production/HelloWorld=docker:label=com.example.role=llm,"
                     "template=llm-template");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(std::get<DockerBackendSpec>(spec->backend).label, "com.example.role=llm");
  EXPECT_EQ(std::get<DockerBackendSpec>(spec->backend).template_container, "llm-template");
}

TEST(TargetSpecTest, SaysWhatIsWrong) {
  const std::pair<const char*, const char*> cases[] = {
      {"demo/production=process:sleep 1", "<chain_id>/<env_name>/<chainlet_name>="},
      {"demo/production/HelloWorld", "<chain_id>/<env_name>/<chainlet_name>="},
      {"Demo/production/HelloWorld=process:sleep 1", "chain id"},
      {"demo/Prod/HelloWorld=process:sleep 1", "environment"},
      {"demo/production/Hello.World=process:sleep 1", "chainlet"},
      {"demo/production/HelloWorld=process:", "command"},
      {"demo/production/HelloWorld=kubernetes:x", "process:"},
      {"demo/production/HelloWorld=docker:", "service=<name> or label=<key>=<value>"},
      {"demo/production/HelloWorld=docker:service=a,label=b=c", "only one"},
      {"demo/production/HelloWorld=docker:label=novalue", "label=<key>=<value>"},
      {"demo/production/HelloWorld=docker:service=a,colour=blue", "colour"},
  };
  for (const auto& [text, problem] : cases) {
    absl::StatusOr<TargetSpec> spec = ParseTarget(text);
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_THAT(spec.status().message(), HasSubstr(problem)) << text;
  }
}

}  // namespace
}  // namespace chainscale
