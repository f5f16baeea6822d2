"""The Node.js client of docs/clients.md, run as printed against real binaries: the
packages pinned by tests/clients/node/package-lock.json (./dev installs them with npm ci),
the code the page shows taken verbatim from tests/clients/node/client.js."""

import json
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from client_session import ROOT, Servers, check_client_output, doc_blocks, skip  # noqa: E402

NODE_DIR = os.path.join(ROOT, "tests", "clients", "node")


class NodeClientTest(unittest.TestCase):
    def test_the_page_shows_the_client_and_its_pinned_packages(self):
        with open(os.path.join(NODE_DIR, "client.js")) as f:
            client = f.read()
        code = doc_blocks("Node.js", "js")
        self.assertGreaterEqual(len(code), 3)
        for block in code:
            self.assertTrue(block in client,
                            "docs/clients.md shows code client.js does not have:\n" + block)
        with open(os.path.join(NODE_DIR, "package.json")) as f:
            pinned = json.load(f)["dependencies"]
        install = [b for b in doc_blocks("Node.js", "sh") if "npm install" in b]
        self.assertEqual(len(install), 1)
        self.assertEqual(sorted(re.findall(r"(@?[\w/.-]+)@(\d[\w.]*)", install[0])),
                         sorted(pinned.items()))

    def test_create_update_get_invalid_report_decision(self):
        servers = Servers()
        try:
            run = [b for b in doc_blocks("Node.js", "sh") if b.startswith("node ")]
            self.assertEqual(len(run), 1)
            command = (run[0].replace("localhost:50051", servers.cp.address)
                       .replace("localhost:50061", servers.agent.address)
                       .replace("demo-key", "client-key"))
            out = subprocess.run(["bash", "-c", command], cwd=NODE_DIR, capture_output=True,
                                 text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stderr)
            check_client_output(self, out.stdout, "my-chain", "INVALID_ARGUMENT")
        finally:
            servers.close()


if __name__ == "__main__":
    if shutil.which("node") is None:
        skip("node is not installed (./dev test installs Debian's nodejs and npm)")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@grpc", "grpc-js")):
        skip("tests/clients/node/node_modules is missing: ./dev test runs npm ci there")
    unittest.main()
