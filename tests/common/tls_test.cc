// TLS and mutual TLS from the --tls_* flags, with the test certificates in
// tests/testdata/tls.
#include "common/tls.h"

#include <grpcpp/grpcpp.h>

#include <fstream>

#include "chainscale/v1/control_plane.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/raw_grpc.h"

namespace chainscale {
namespace {

std::string TestData(const std::string& name) {
  return std::string(CHAINSCALE_SOURCE_DIR) + "/tests/testdata/tls/" + name;
}

// A server with the health service (and, so that it has a service to poll for, an
// unimplemented ControlPlane), on TLS made from `files`.
class TlsServer {
 public:
  explicit TlsServer(const TlsFiles& files) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(files);
    EXPECT_TRUE(credentials.ok()) << credentials.status();
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", *credentials, &port_);
    builder.RegisterService(&unimplemented_);
    server_ = builder.BuildAndStart();
    EXPECT_NE(port_, 0);
  }
  ~TlsServer() { server_->Shutdown(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_ = 0;
  v1::ControlPlane::Service unimplemented_;
  std::unique_ptr<grpc::Server> server_;
};

int HealthOver(const std::string& address, const TlsFiles& client) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      MakeChannelCredentials(client);
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  return testing::HealthStatus(grpc::CreateChannel(address, *credentials), "");
}

TEST(TlsTest, ServesTlsToClientsThatTrustTheCa) {
  TlsServer server({TestData("server.pem"), TestData("server.key"), ""});
  EXPECT_EQ(HealthOver(server.address(), {"", "", TestData("ca.pem")}), 1);
  EXPECT_EQ(HealthOver(server.address(), {"", "", ""}), -1);  // plaintext client
}

TEST(TlsTest, MutualTlsRequiresAClientCertificate) {
  TlsServer server({TestData("server.pem"), TestData("server.key"), TestData("ca.pem")});
  EXPECT_EQ(HealthOver(server.address(),
                       {TestData("client.pem"), TestData("client.key"), TestData("ca.pem")}),
            1);
  EXPECT_EQ(HealthOver(server.address(), {"", "", TestData("ca.pem")}), -1);
}

TEST(TlsTest, FlagMistakesAreReported) {
  EXPECT_EQ(MakeServerCredentials({TestData("server.pem"), "", ""}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeServerCredentials({"", "", TestData("ca.pem")}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeServerCredentials({"/nonexistent.pem", "/nonexistent.key", ""}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(MakeServerCredentials({"", "", ""}).ok());
}

// A garbage certificate or a key of another pair must be named as such at start-up, not
// surface later as "cannot listen".
TEST(TlsTest, BadCertificatesAndKeysAreNamed) {
  const std::string garbage = ::testing::TempDir() + "/garbage.pem";
  {
    std::ofstream out(garbage);
    out << "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
  }
  absl::Status s = MakeServerCredentials({garbage, TestData("server.key"), ""}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("--tls_cert " + garbage));
  s = MakeServerCredentials({TestData("server.pem"), garbage, ""}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("--tls_key " + garbage));
  // client.key belongs to client.pem, not to server.pem.
  s = MakeServerCredentials({TestData("server.pem"), TestData("client.key"), ""}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("does not match"));
  s = MakeServerCredentials({TestData("server.pem"), TestData("server.key"), garbage}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("--tls_ca " + garbage));
}

}  // namespace
}  // namespace chainscale
