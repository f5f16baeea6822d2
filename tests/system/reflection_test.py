"""Server reflection of both binaries, asked as grpcurl and other clients ask it, over
grpc.reflection.v1alpha and v1: every listed service resolves (grpc.health.v1 included),
the files carry their comments and no json_name, google.rpc.BadRequest resolves so error
details decode, and a reused stream answers each question alone (no pile-up)."""

import os
import sys
import tempfile
import unittest

import grpc
from google.protobuf import descriptor_pb2

sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import Agent, ControlPlane  # noqa: E402
from reflection.v1 import reflection_pb2 as v1  # noqa: E402
from reflection.v1alpha import reflection_pb2 as v1alpha  # noqa: E402

KEY = "reflection-key"
VERSIONS = {"v1": v1, "v1alpha": v1alpha}


def ask(channel, version, requests):
    """The answers to `requests` on one ServerReflectionInfo stream."""
    module = VERSIONS[version]
    call = channel.stream_stream(
        "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo" % version,
        request_serializer=module.ServerReflectionRequest.SerializeToString,
        response_deserializer=module.ServerReflectionResponse.FromString)
    return list(call(iter(requests), timeout=10))


def files_of(response):
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in response.file_descriptor_response.file_descriptor_proto]


def leading_comment(file, path):
    for location in file.source_code_info.location:
        if list(location.path) == path:
            return location.leading_comments.strip()
    return None


class ReflectionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        cls.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], cls.dir.name, KEY).start()
        cls.agent = Agent(os.environ["CHAINSCALE_AGENT"], cls.cp.address, KEY, "",
                          extra_args=["--agent_id=reflection-agent"]).start()
        # Each server, its own API, and any other service it serves (the control plane
        # also serves KEDA's external scaler protocol).
        cls.servers = {
            "control plane": (cls.cp, "chainscale.v1.ControlPlane",
                              ["externalscaler.ExternalScaler"]),
            "agent": (cls.agent, "chainscale.v1.Agent", []),
        }

    @classmethod
    def tearDownClass(cls):
        cls.agent.kill()
        cls.cp.kill()
        cls.dir.cleanup()

    def test_lists_every_service_it_serves(self):
        for name, (process, api, others) in self.servers.items():
            for version, module in VERSIONS.items():
                with self.subTest(server=name, version=version), \
                        grpc.insecure_channel(process.address) as channel:
                    (answer,) = ask(channel, version,
                                    [module.ServerReflectionRequest(list_services="*")])
                    services = sorted(s.name for s in answer.list_services_response.service)
                    self.assertEqual(services, sorted([api, "grpc.health.v1.Health",
                                                       "grpc.reflection.v1.ServerReflection",
                                                       "grpc.reflection.v1alpha.ServerReflection"]
                                                      + others))

    def test_every_listed_service_resolves_with_comments(self):
        for name, (process, api, _) in self.servers.items():
            for version, module in VERSIONS.items():
                with self.subTest(server=name, version=version), \
                        grpc.insecure_channel(process.address) as channel:
                    (listing,) = ask(channel, version,
                                     [module.ServerReflectionRequest(list_services="*")])
                    services = [s.name for s in listing.list_services_response.service]
                    answers = ask(channel, version, [
                        module.ServerReflectionRequest(file_containing_symbol=s)
                        for s in services])
                    self.assertEqual(len(answers), len(services))
                    for service, answer in zip(services, answers):
                        self.assertFalse(answer.HasField("error_response"),
                                         "%s: %s" % (service, answer.error_response))
                        file = files_of(answer)[0]
                        package, _, short = service.rpartition(".")
                        self.assertEqual(file.package, package)
                        self.assertIn(short, [s.name for s in file.service])
                        self.assertGreater(len(file.source_code_info.location), 10, service)
                    (answer,) = ask(channel, version, [
                        module.ServerReflectionRequest(file_containing_symbol=api)])
                    # path [6, 0]: the first service of the file.
                    self.assertIn(leading_comment(files_of(answer)[0], [6, 0]), (
                        "Management API and agent synchronisation.",
                        "Load intake and scaling decisions."))

    def test_control_plane_comments_and_snake_case_names(self):
        with grpc.insecure_channel(self.cp.address) as channel:
            (answer,) = ask(channel, "v1alpha", [v1alpha.ServerReflectionRequest(
                file_containing_symbol="chainscale.v1.ControlPlane")])
        files = {f.name: f for f in files_of(answer)}
        self.assertEqual(sorted(files), ["chainscale/v1/control_plane.proto",
                                         "chainscale/v1/settings.proto",
                                         "google/protobuf/struct.proto",
                                         "google/protobuf/timestamp.proto"])
        control_plane = files["chainscale/v1/control_plane.proto"]
        self.assertEqual(leading_comment(control_plane, [6, 0]),
                         "Management API and agent synchronisation.")
        methods = [m.name for m in control_plane.service[0].method]
        create = methods.index("CreateChain")
        self.assertTrue(leading_comment(control_plane, [6, 0, 2, create]).startswith(
            "Creates a chain with its chainlets"))
        for file in files.values():
            for message in file.message_type:
                for field in message.field:
                    self.assertFalse(field.HasField("json_name"), field.name)

    def test_error_details_resolve(self):
        with grpc.insecure_channel(self.cp.address) as channel:
            answers = ask(channel, "v1alpha", [
                v1alpha.ServerReflectionRequest(file_containing_symbol="google.rpc.BadRequest"),
                v1alpha.ServerReflectionRequest(
                    all_extension_numbers_of_type="google.rpc.BadRequest"),
                v1alpha.ServerReflectionRequest(file_containing_symbol="no.such.Thing")])
        self.assertEqual(files_of(answers[0])[0].name, "google/rpc/error_details.proto")
        self.assertEqual(answers[1].all_extension_numbers_response.base_type_name,
                         "google.rpc.BadRequest")
        self.assertEqual(list(answers[1].all_extension_numbers_response.extension_number), [])
        self.assertEqual(answers[2].error_response.error_code, grpc.StatusCode.NOT_FOUND.value[0])
        self.assertIn("no.such.Thing", answers[2].error_response.error_message)

    def test_reused_stream_answers_each_question_alone(self):
        for version, module in VERSIONS.items():
            with self.subTest(version=version), \
                    grpc.insecure_channel(self.agent.address) as channel:
                answers = ask(channel, version, [
                    module.ServerReflectionRequest(file_containing_symbol="chainscale.v1.Agent"),
                    module.ServerReflectionRequest(
                        file_containing_symbol="chainscale.v1.LoadReport"),
                    module.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
                    module.ServerReflectionRequest(file_containing_symbol="no.such.Thing"),
                    module.ServerReflectionRequest(list_services="*")])
                names = [[f.name for f in files_of(a)] for a in answers]
                # Imports go once per stream; the file asked for always comes back.
                self.assertEqual(names[0], ["chainscale/v1/agent.proto",
                                            "chainscale/v1/settings.proto",
                                            "google/protobuf/timestamp.proto"])
                self.assertEqual(names[1], ["chainscale/v1/agent.proto"])
                self.assertEqual(names[2], ["grpc/health/v1/health.proto"])
                self.assertEqual(names[3], [])
                self.assertEqual(answers[3].error_response.error_code,
                                 grpc.StatusCode.NOT_FOUND.value[0])
                self.assertEqual(names[4], [])
                self.assertFalse(answers[4].HasField("error_response"))
                self.assertEqual(len(answers[4].list_services_response.service), 4)
                self.assertEqual(answers[1].original_request.file_containing_symbol,
                                 "chainscale.v1.LoadReport")

if __name__ == "__main__":
    unittest.main()
