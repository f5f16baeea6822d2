// Calls to services whose C++ client stubs are not installed (grpc.health.v1,
// grpc.reflection.v1alpha), made with raw bytes over a channel.
#ifndef CHAINSCALE_TESTS_TESTING_RAW_GRPC_H_
#define CHAINSCALE_TESTS_TESTING_RAW_GRPC_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/rpc_method.h>
#include <grpcpp/impl/codegen/sync_stream.h>
#include <grpcpp/support/byte_buffer.h>

#include <string>
#include <vector>

#include "common/health_probe.h"

namespace chainscale::testing {

inline std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  (void)buffer.Dump(&slices);
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A length-delimited protobuf field: tag, length, bytes (lengths below 128 only).
inline std::string StringField(int field, const std::string& value) {
  return std::string(1, static_cast<char>(field << 3 | 2)) +
         std::string(1, static_cast<char>(value.size())) + value;
}

// grpc.health.v1.Health/Check for `service`: 1 SERVING, 2 NOT_SERVING, -1 unreachable.
inline int HealthStatus(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) {
  switch (ProbeHealth(channel, service)) {
    case HealthState::kServing:
      return 1;
    case HealthState::kNotServing:
      return 2;
    case HealthState::kUnreachable:
      return -1;
  }
  return -1;
}

// One ServerReflectionInfo exchange; returns the raw response bytes ("" on failure).
inline std::string ReflectionExchange(const std::shared_ptr<grpc::Channel>& channel,
                                      const std::string& request_bytes) {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel.get(),
          grpc::internal::RpcMethod(
              "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
              grpc::internal::RpcMethod::BIDI_STREAMING),
          &context));
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  if (!stream->Write(request) || !stream->WritesDone() || !stream->Read(&response)) return "";
  std::string out = ToString(response);
  while (stream->Read(&response)) {
  }
  return stream->Finish().ok() ? out : "";
}

}  // namespace chainscale::testing

#endif  // CHAINSCALE_TESTS_TESTING_RAW_GRPC_H_
