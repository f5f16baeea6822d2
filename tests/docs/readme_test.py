"""Replays the README's grpcurl session and its REST cURL call against a real control
plane and checks every printed answer: the services listed, each call's JSON response
(in grpcurl's JSON form: lowerCamelCase names, int64 as strings), the code and message of
the error shown, and the REST answer."""

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

import grpc
from google.protobuf import json_format

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
from chainscale_process import ControlPlane  # noqa: E402
from chainscale.v1 import agent_pb2  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")
GRPC_CODE_NAMES = {"InvalidArgument": grpc.StatusCode.INVALID_ARGUMENT}


def readme_blocks():
    """(language, text) of every fenced block of the README, in order."""
    with open(README) as f:
        text = f.read()
    return re.findall(r"```(\w*)\n(.*?)```", text, re.S)


def grpcurl_session():
    """(argv, expected block language, expected text) for each grpcurl command."""
    blocks = readme_blocks()
    session = []
    for i, (lang, text) in enumerate(blocks):
        if lang == "sh" and text.startswith("curl "):
            expected = blocks[i + 1] if blocks[i + 1][0] == "json" else (None, None)
            session.append((["curl", text], expected[0], expected[1]))
            continue
        if lang != "sh" or not text.startswith("grpcurl"):
            continue
        assert text.count("grpcurl ") == 1, "one grpcurl command per block:\n" + text
        argv = shlex.split(text.replace("\\\n", " "))
        expected = blocks[i + 1] if i + 1 < len(blocks) and blocks[i + 1][0] in (
            "json", "text") else (None, None)
        session.append((argv, expected[0], expected[1]))
    return session


def list_services(channel):
    """Service names from grpc.reflection.v1alpha list_services, decoded by hand."""
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    (response,) = list(call(iter([b"\x3a\x00"]), timeout=10))
    return sorted(name.decode() for name in re.findall(rb"\x0a.\x0a.([\w.]+)", response))


class ReadmeSessionTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name,
                               "demo-key").start()
        self.channel = grpc.insecure_channel(self.cp.address)

    def tearDown(self):
        self.channel.close()
        self.cp.kill()
        self.dir.cleanup()

    def test_session_answers_as_printed(self):
        session = grpcurl_session()
        self.assertGreaterEqual(len(session), 6)
        checked = 0
        for argv, lang, expected in session:
            if argv[0] == "curl":
                command = argv[1].strip().replace("localhost:8080",
                                                  "127.0.0.1:%d" % self.cp.http_port)
                out = subprocess.run(["bash", "-c", command + " --silent --show-error"],
                                     capture_output=True, text=True, timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(json.loads(out.stdout), json.loads(expected))
                checked += 1
                continue
            self.assertEqual(argv[:2], ["grpcurl", "-plaintext"], argv)
            if argv[-1] == "list":
                self.assertEqual(list_services(self.channel), expected.split())
                checked += 1
                continue
            if "-d" not in argv:
                continue  # describe: prints the proto, nothing to compare
            metadata = tuple(tuple(h.split(": ", 1)) for i, h in enumerate(argv)
                             if argv[i - 1] == "-H")
            body = json.loads(argv[argv.index("-d") + 1])
            if argv[-2] == "localhost:50061":
                # An agent call: its request must parse as that method's request type.
                service, method = argv[-1].rsplit("/", 1)
                self.assertEqual(service, "chainscale.v1.Agent")
                descriptor = agent_pb2.DESCRIPTOR.services_by_name["Agent"].methods_by_name[
                    method]
                json_format.ParseDict(body, getattr(agent_pb2, descriptor.input_type.name)())
                self.assertIsNone(lang, "agent calls print no expected answer")
                continue
            self.assertEqual(argv[-2], "localhost:50051")
            service, method = argv[-1].rsplit("/", 1)
            self.assertEqual(service, "chainscale.v1.ControlPlane")
            descriptor = cp.DESCRIPTOR.services_by_name["ControlPlane"].methods_by_name[method]
            request_class = getattr(cp, descriptor.input_type.name)
            response_class = getattr(cp, descriptor.output_type.name)
            call = self.channel.unary_unary(
                "/chainscale.v1.ControlPlane/" + method,
                request_serializer=request_class.SerializeToString,
                response_deserializer=response_class.FromString)
            request = json_format.ParseDict(body, request_class())
            if lang == "json":
                response = call(request, metadata=metadata, timeout=10)
                got = json_format.MessageToDict(response)
                want = json.loads(expected)
                if "createTime" in want:
                    self.assertRegex(got.pop("createTime"), r"^\d{4}-\d\d-\d\dT")
                    want.pop("createTime")
                self.assertEqual(got, want, method)
            else:
                with self.assertRaises(grpc.RpcError) as err:
                    call(request, metadata=metadata, timeout=10)
                code = re.search(r"Code: (\w+)", expected).group(1)
                message = re.search(r"Message: (.*)", expected).group(1)
                self.assertEqual(err.exception.code(), GRPC_CODE_NAMES[code])
                self.assertEqual(err.exception.details(), message)
            checked += 1
        self.assertEqual(checked, 7)


if __name__ == "__main__":
    unittest.main()
