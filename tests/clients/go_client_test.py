"""The Go client of docs/clients.md, run as printed against real binaries: the page's
shell commands (all but the package installs, which ./dev does) run in order in a fresh
HOME, generating the stubs with Debian's protoc-gen-go (a private copy, as the page
explains) and protoc-gen-go-grpc, building tests/clients/go/main.go in GOPATH mode
against Debian's grpc-go, and running it."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from client_session import ROOT, Servers, check_client_output, doc_blocks, skip  # noqa: E402

CLIENT = os.path.join(ROOT, "tests", "clients", "go", "main.go")
PROTOC_GEN_GO = os.environ.get("CHAINSCALE_PROTOC_GEN_GO", "")  # the extracted package root
GOCACHE = os.environ.get("CHAINSCALE_GOCACHE", "")
INSTALL = re.compile(r"^(sudo |apt-get |dpkg-deb )")


class GoClientTest(unittest.TestCase):
    def test_the_page_shows_the_client(self):
        with open(CLIENT) as f:
            client = f.read()
        code = doc_blocks("Go", "go")
        self.assertGreaterEqual(len(code), 2)
        for block in code:
            self.assertTrue(block in client,
                            "docs/clients.md shows code main.go does not have:\n" + block)

    def test_create_update_get_invalid_report_decision(self):
        commands = [b for b in doc_blocks("Go", "sh") if not INSTALL.match(b)]
        self.assertGreaterEqual(len(commands), 3)
        servers = Servers()
        with tempfile.TemporaryDirectory() as work:
            try:
                home = os.path.join(work, "home")
                source = os.path.join(home, "go", "src", "chainscale-client")
                os.makedirs(source)
                shutil.copy(CLIENT, source)
                os.symlink(os.path.join(ROOT, "proto"), os.path.join(work, "proto"))
                os.symlink(PROTOC_GEN_GO, os.path.join(work, "protoc-gen-go-1.28"))
                script = "set -e\n" + "\n".join(commands)
                script = (script.replace("localhost:50051", servers.cp.address)
                          .replace("localhost:50061", servers.agent.address)
                          .replace("demo-key", "client-key"))
                env = dict(os.environ, HOME=home)
                if GOCACHE:
                    env["GOCACHE"] = GOCACHE  # only where Go keeps its build cache
                out = subprocess.run(["bash", "-c", script], cwd=work, env=env,
                                     capture_output=True, text=True, timeout=600)
                self.assertEqual(out.returncode, 0, out.stderr)
                check_client_output(self, out.stdout, "my-chain", "InvalidArgument")
                # The module-mode command put the stubs where its M flags said.
                with open(os.path.join(work, "chainscalev1", "agent_grpc.pb.go")) as f:
                    self.assertIn("package chainscalev1", f.read())
            finally:
                servers.close()


def missing_toolchain():
    for tool in ("go", "protoc", "protoc-gen-go-grpc"):
        if shutil.which(tool) is None:
            return tool + " is not installed"
    if not os.access(os.path.join(PROTOC_GEN_GO, "usr", "bin", "protoc-gen-go"), os.X_OK):
        return "no protoc-gen-go extracted at %r" % PROTOC_GEN_GO
    for package in ("google.golang.org/grpc", "google.golang.org/protobuf",
                    "github.com/golang/protobuf/proto", "google.golang.org/genproto"):
        if not os.path.isdir(os.path.join("/usr/share/gocode/src", package)):
            return "Debian's Go package for %s is not installed" % package
    return None


if __name__ == "__main__":
    reason = missing_toolchain()
    if reason:
        skip(reason + " (./dev test installs the Go toolchain and packages)")
    unittest.main()
