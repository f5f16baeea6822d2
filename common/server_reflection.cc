#include "common/server_reflection.h"

#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>
#include <grpcpp/support/server_callback.h>

#include <cstdlib>
#include <deque>
#include <utility>

#include "absl/strings/str_cat.h"
#include "chainscale/served_descriptor_set.h"
#include "common/log.h"
#include "google/protobuf/descriptor.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace chainscale {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;

// protoc writes each field's json_name (lowerCamelCase) into descriptor sets, and clients
// such as grpcurl print JSON with it when it is there. chainscale's JSON is Baseten's
// snake_case (the REST gateway's too), as the compiled-in descriptors gRPC served before
// gave it, so the served files leave json_name out.
void ClearJsonNames(google::protobuf::DescriptorProto* message) {
  for (auto& field : *message->mutable_field()) field.clear_json_name();
  for (auto& field : *message->mutable_extension()) field.clear_json_name();
  for (auto& nested : *message->mutable_nested_type()) ClearJsonNames(&nested);
}

void ClearJsonNames(google::protobuf::FileDescriptorProto* file) {
  for (auto& message : *file->mutable_message_type()) ClearJsonNames(&message);
  for (auto& field : *file->mutable_extension()) field.clear_json_name();
}

// The service names of one server, as gRPC collects them while it builds and starts the
// server (the default health service joins at start). Read only after the server
// started, when the list no longer changes.
struct ServiceList {
  const std::vector<std::string>* names = nullptr;
};

// One answer. Request and Response are the v1 or v1alpha messages, which have the same
// fields. `sent` holds the files this stream already sent, so imports go once per stream.
template <typename Request, typename Response>
Response Answer(const DescriptorIndex& index, const std::vector<std::string>& services,
                const Request& request, absl::flat_hash_set<std::string>* sent) {
  Response response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  const DescriptorPool& pool = index.pool();
  auto reply_files = [&](const FileDescriptor* file, absl::string_view what) {
    if (file == nullptr) {
      response.mutable_error_response()->set_error_code(grpc::StatusCode::NOT_FOUND);
      response.mutable_error_response()->set_error_message(
          absl::StrCat(what, " is not served by this server's reflection"));
      return;
    }
    for (std::string& bytes : index.FileWithImports(*file, sent)) {
      response.mutable_file_descriptor_response()->add_file_descriptor_proto(std::move(bytes));
    }
  };
  switch (request.message_request_case()) {
    case Request::kFileByFilename:
      reply_files(pool.FindFileByName(request.file_by_filename()),
                  absl::StrCat("file \"", request.file_by_filename(), "\""));
      break;
    case Request::kFileContainingSymbol:
      reply_files(pool.FindFileContainingSymbol(request.file_containing_symbol()),
                  absl::StrCat("symbol \"", request.file_containing_symbol(), "\""));
      break;
    case Request::kFileContainingExtension: {
      const auto& question = request.file_containing_extension();
      const Descriptor* type = pool.FindMessageTypeByName(question.containing_type());
      const FieldDescriptor* extension =
          type == nullptr ? nullptr : pool.FindExtensionByNumber(type, question.extension_number());
      reply_files(extension == nullptr ? nullptr : extension->file(),
                  absl::StrCat("extension ", question.extension_number(), " of \"",
                               question.containing_type(), "\""));
      break;
    }
    case Request::kAllExtensionNumbersOfType: {
      const Descriptor* type = pool.FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        response.mutable_error_response()->set_error_code(grpc::StatusCode::NOT_FOUND);
        response.mutable_error_response()->set_error_message(
            absl::StrCat("message type \"", request.all_extension_numbers_of_type(),
                         "\" is not served by this server's reflection"));
        break;
      }
      std::vector<const FieldDescriptor*> extensions;
      pool.FindAllExtensions(type, &extensions);
      auto* numbers = response.mutable_all_extension_numbers_response();
      numbers->set_base_type_name(type->full_name());
      for (const FieldDescriptor* extension : extensions) {
        numbers->add_extension_number(extension->number());
      }
      break;
    }
    case Request::kListServices:
      for (const std::string& name : services) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    default:
      response.mutable_error_response()->set_error_code(grpc::StatusCode::UNIMPLEMENTED);
      response.mutable_error_response()->set_error_message(
          "the request asks nothing this server knows; set one of file_by_filename, "
          "file_containing_symbol, file_containing_extension, "
          "all_extension_numbers_of_type or list_services");
      break;
  }
  return response;
}

// One ServerReflectionInfo stream: read a question, write its answer, read the next.
// Reads and writes alternate, so at most one operation is in flight.
template <typename Request, typename Response>
class ReflectionStream final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  ReflectionStream(const DescriptorIndex& index, const std::vector<std::string>& services)
      : index_(index), services_(services) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or the call ended
      this->Finish(grpc::Status::OK);
      return;
    }
    response_ = Answer<Request, Response>(index_, services_, request_, &sent_);
    this->StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream broke"));
      return;
    }
    this->StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const DescriptorIndex& index_;
  const std::vector<std::string>& services_;
  Request request_;
  Response response_;
  absl::flat_hash_set<std::string> sent_;
};

template <typename Service, typename Request, typename Response>
class ReflectionService final : public Service::CallbackService {
 public:
  explicit ReflectionService(std::shared_ptr<const ServiceList> services)
      : services_(std::move(services)) {}

  grpc::ServerBidiReactor<Request, Response>* ServerReflectionInfo(
      grpc::CallbackServerContext*) override {
    return new ReflectionStream<Request, Response>(DescriptorIndex::Served(),
                                                   *services_->names);
  }

 private:
  const std::shared_ptr<const ServiceList> services_;
};

using ReflectionV1 = ReflectionService<grpc::reflection::v1::ServerReflection,
                                       grpc::reflection::v1::ServerReflectionRequest,
                                       grpc::reflection::v1::ServerReflectionResponse>;
using ReflectionV1alpha =
    ReflectionService<grpc::reflection::v1alpha::ServerReflection,
                      grpc::reflection::v1alpha::ServerReflectionRequest,
                      grpc::reflection::v1alpha::ServerReflectionResponse>;

// Registers both services on the server being built, then takes the server's service
// list: gRPC's own seam for reflection (ServerBuilderPlugin), set per builder.
class ReflectionPlugin final : public grpc::ServerBuilderPlugin {
 public:
  std::string name() override { return "chainscale_server_reflection"; }
  void InitServer(grpc::ServerInitializer* initializer) override {
    initializer->RegisterService(std::make_shared<ReflectionV1alpha>(services_));
    initializer->RegisterService(std::make_shared<ReflectionV1>(services_));
  }
  void Finish(grpc::ServerInitializer* initializer) override {
    services_->names = initializer->GetServiceList();
  }
  void ChangeArguments(const std::string&, void*) override {}

 private:
  const std::shared_ptr<ServiceList> services_ = std::make_shared<ServiceList>();
};

class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    plugins->push_back(std::make_unique<ReflectionPlugin>());
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<DescriptorIndex>> DescriptorIndex::Build(absl::string_view set) {
  google::protobuf::FileDescriptorSet files;
  if (!files.ParseFromArray(set.data(), static_cast<int>(set.size()))) {
    return absl::InvalidArgumentError("the descriptor set does not parse");
  }
  std::unique_ptr<DescriptorIndex> index(new DescriptorIndex());
  for (google::protobuf::FileDescriptorProto& file : *files.mutable_file()) {
    ClearJsonNames(&file);
    if (index->pool_.BuildFile(file) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("file \"", file.name(), "\" of the descriptor set does not build"));
    }
    index->serialized_[file.name()] = file.SerializeAsString();
  }
  return index;
}

const DescriptorIndex& DescriptorIndex::Served() {
  static const DescriptorIndex* const served = [] {
    const std::string_view set = ServedDescriptorSet();
    absl::StatusOr<std::unique_ptr<DescriptorIndex>> index =
        Build(absl::string_view(set.data(), set.size()));
    if (!index.ok()) {
      // The set is compiled by protoc at build time; this is a broken build.
      LogError("the embedded descriptor set is broken",
               {{"error", std::string(index.status().message())}});
      std::abort();
    }
    return index->release();
  }();
  return *served;
}

std::vector<std::string> DescriptorIndex::FileWithImports(
    const FileDescriptor& file, absl::flat_hash_set<std::string>* sent) const {
  std::vector<std::string> out = {serialized_.at(file.name())};
  sent->insert(file.name());
  std::deque<const FileDescriptor*> queue = {&file};
  while (!queue.empty()) {
    const FileDescriptor* next = queue.front();
    queue.pop_front();
    for (int i = 0; i < next->dependency_count(); ++i) {
      const FileDescriptor* dependency = next->dependency(i);
      if (!sent->insert(dependency->name()).second) continue;
      out.push_back(serialized_.at(dependency->name()));
      queue.push_back(dependency);
    }
  }
  return out;
}

void AddServerReflection(grpc::ServerBuilder& builder) {
  builder.SetOption(std::make_unique<ReflectionOption>());
}

}  // namespace chainscale
