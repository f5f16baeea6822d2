// Server reflection, grpc.reflection.v1 and v1alpha, answered from the descriptor set that
// protoc compiled with source info (proto/CMakeLists.txt): every service a process serves,
// grpc.health.v1 and reflection included, with its comments, so `grpcurl describe` prints
// the API reference. It replaces gRPC C++'s built-in reflection, which serves compiled-in
// descriptors (no comments, no grpc.health.v1, no v1) and in 1.51 piles earlier answers
// into later ones on a reused stream (grpc/grpc#18009).
#ifndef CHAINSCALE_COMMON_SERVER_REFLECTION_H_
#define CHAINSCALE_COMMON_SERVER_REFLECTION_H_

#include <grpcpp/server_builder.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/descriptor.h"

namespace chainscale {

// The files reflection serves, indexed for its questions.
class DescriptorIndex {
 public:
  // From a serialized FileDescriptorSet holding every file's imports before it (as
  // `protoc --include_imports` writes it). INVALID_ARGUMENT when it does not parse or a
  // file does not build.
  static absl::StatusOr<std::unique_ptr<DescriptorIndex>> Build(absl::string_view set);
  // The index of the set embedded at build time. Built on first use; never fails for the
  // embedded set (a test holds that).
  static const DescriptorIndex& Served();

  const google::protobuf::DescriptorPool& pool() const { return pool_; }

  // The serialized FileDescriptorProto of `file` (source info included, json_name left
  // out: see the .cc), followed by those of the files it imports, directly or not, that
  // are not in `sent`; adds every file returned to `sent`.
  std::vector<std::string> FileWithImports(const google::protobuf::FileDescriptor& file,
                                           absl::flat_hash_set<std::string>* sent) const;

 private:
  DescriptorIndex() = default;

  google::protobuf::DescriptorPool pool_;
  absl::flat_hash_map<std::string, std::string> serialized_;  // by file name
};

// Adds grpc.reflection.v1 and grpc.reflection.v1alpha to the server `builder` builds,
// serving DescriptorIndex::Served() and listing the services the built server registered.
// Call before BuildAndStart.
void AddServerReflection(grpc::ServerBuilder& builder);

}  // namespace chainscale

#endif  // CHAINSCALE_COMMON_SERVER_REFLECTION_H_
