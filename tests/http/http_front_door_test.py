"""The control plane's HTTP port attacked the way a hostile client would, over raw sockets
against the real binary: huge and endless bodies with and without a key, slow clients,
pipelined requests, plaintext on an HTTPS port, lying headers, odd methods, wrong JSON
types, and the rate limits. Each test prints what it tried and what held."""

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "system"))
sys.path.insert(0, os.path.dirname(__file__))
from chainscale_process import ControlPlane  # noqa: E402
from chainscale.v1 import control_plane_pb2 as cp  # noqa: E402
from chainscale.v1 import control_plane_pb2_grpc as cp_grpc  # noqa: E402
from raw_http import Connection, chunk, exchange, request  # noqa: E402

KEY = "front-door-key"
AUTH = ("Authorization", "Api-Key " + KEY)
PATH = "/v1/chains/demo/environments/production/chainlet_settings/autoscaling_settings"
ENV_PATH = "/v1/chains/demo/environments/production"
TLS_DIR = os.path.join(os.path.dirname(__file__), "..", "testdata", "tls")
MIB = 1 << 20
# Resident memory the control plane may gain while the uploads of a test run: the body
# limit is 1 MiB per connection, so a few MiB of buffers plus allocator slack.
RSS_BOUND = 64 * MIB
REQUEST_TIMEOUT = 10.0  # DESIGN §14: a whole request within 10 s
SLACK = 3.0


def update_body(max_replica, chainlet="HelloWorld"):
    return json.dumps({"updates": [{"chainlet_name": chainlet,
                                    "autoscaling_settings": {"max_replica": max_replica}}]})


class RssSampler:
    """Samples a process's VmRSS every 10 ms in the background; `peak` is the largest."""

    def __init__(self, process):
        self.process = process
        self.peak = process.rss_bytes()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.running:
            try:
                self.peak = max(self.peak, self.process.rss_bytes())
            except OSError:
                return
            time.sleep(0.01)

    def stop(self):
        self.running = False
        self.thread.join(timeout=5)
        return self.peak


def upload(port, total, chunked, key):
    """Sends a PATCH with a `total`-byte body (chunked or with a Content-Length) while
    reading the answer; returns (status or 0 when none came, bytes of body sent)."""
    conn = Connection(port, timeout=60)
    headers = [("Content-Type", "application/json")]
    if key:
        headers.append(("Authorization", "Api-Key " + key))
    headers.append(("Transfer-Encoding", "chunked") if chunked
                   else ("Content-Length", str(total)))
    head = ("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % PATH +
            "".join("%s: %s\r\n" % h for h in headers) + "\r\n").encode()
    sent = [0]

    def send():
        piece = b" " * 65536
        try:
            conn.send(head)
            while sent[0] < total:
                conn.send(chunk(piece) if chunked else piece)
                sent[0] += len(piece)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: what we want

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        status = conn.read_response().status
    except (ConnectionError, OSError, ValueError):
        status = 0
    conn.close()
    sender.join(timeout=60)
    return status, sent[0]


class FrontDoorTest(unittest.TestCase):
    extra_args = ()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cp = ControlPlane(os.environ["CHAINSCALE_CONTROL_PLANE"], self.dir.name, KEY,
                               extra_args=self.extra_args)
        self.cp.start()
        with self.channel() as channel:
            cp_grpc.ControlPlaneStub(channel).CreateChain(
                cp.CreateChainRequest(chain_id="demo", chainlet_names=["HelloWorld", "RandInt"]),
                metadata=(("authorization", "Api-Key " + KEY),), timeout=20)
        self.port = self.cp.http_port

    def tearDown(self):
        self.cp.kill()
        self.dir.cleanup()

    def channel(self):
        return grpc.insecure_channel(self.cp.address)

    def call(self, method, path, headers=(AUTH,), body=b"", source=None):
        return exchange(self.port, method, path, headers, body, source)

    def max_replica(self, chainlet="HelloWorld"):
        env = json.loads(self.call("GET", ENV_PATH).body)
        return {c["chainlet_name"]: c["autoscaling_settings"]["max_replica"]
                for c in env["chainlet_settings"]}[chainlet]


class BodyLimitTest(FrontDoorTest):
    def uploads(self, count, of):
        """Runs `count` uploads at once (of(i) gives the i-th one's arguments) while
        sampling the control plane's RSS; returns (baseline, peak, results)."""
        baseline = self.cp.rss_bytes()
        sampler = RssSampler(self.cp)
        results = [None] * count
        threads = [threading.Thread(target=lambda i=i: results.__setitem__(
            i, upload(self.port, **of(i)))) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return baseline, sampler.stop(), results

    def test_unauthenticated_chunked_uploads_are_refused_before_the_body(self):
        baseline, peak, results = self.uploads(
            6, of=lambda i: dict(total=100 * MIB, chunked=True, key=None))
        print("six 100 MiB chunked PATCHes without a key: answers %s, body bytes sent %s; "
              "RSS %d MiB -> peak %d MiB (bound +%d MiB)" % (
                  [r[0] for r in results], [r[1] for r in results], baseline // MIB,
                  peak // MIB, RSS_BOUND // MIB))
        self.assertEqual([r[0] for r in results], [401] * 6)
        self.assertLess(peak - baseline, RSS_BOUND)

    def test_authenticated_uploads_stop_at_one_mebibyte(self):
        baseline, peak, results = self.uploads(
            8, of=lambda i: dict(total=60 * MIB, chunked=(i % 2 == 0), key=KEY))
        print("eight 60 MiB PATCHes with a key (4 chunked, 4 with Content-Length): answers "
              "%s; RSS %d MiB -> peak %d MiB (bound +%d MiB)" % (
                  [r[0] for r in results], baseline // MIB, peak // MIB, RSS_BOUND // MIB))
        self.assertEqual([r[0] for r in results], [413] * 8)
        self.assertLess(peak - baseline, RSS_BOUND)
        # The port still serves.
        self.assertEqual(self.call("GET", "/healthz").status, 200)


class SlowClientTest(FrontDoorTest):
    def test_slow_clients_neither_block_health_nor_stay(self):
        slow = []
        for i in range(200):
            conn = Connection(self.port, timeout=5)
            conn.send(b"PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % PATH.encode())
            slow.append(conn)
        # One authenticated upload whose chunked body drips a byte at a time.
        drip = Connection(self.port, timeout=5)
        drip.send(("PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Api-Key %s\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n" % (PATH, KEY)).encode())
        opened = time.monotonic()

        # While they are all open, every route answers within 1 s.
        answers = {}
        for method, path in (("GET", "/healthz"), ("GET", "/metrics"), ("GET", ENV_PATH)):
            conn = Connection(self.port, timeout=1.0)
            started = time.monotonic()
            try:
                conn.send(request(method, path, (AUTH,)))
                answers[path] = (conn.read_response().status, time.monotonic() - started)
            except (socket.timeout, ConnectionError, OSError) as e:
                answers[path] = (repr(e), time.monotonic() - started)
            conn.close()

        # Keep every slow client sending (a header line, a body byte) once a second until
        # the server closes it; none may outlive the whole-request limit.
        closed_after = {}
        everyone = slow + [drip]
        while len(closed_after) < len(everyone) and \
                time.monotonic() - opened < REQUEST_TIMEOUT + 2 * SLACK:
            for i, conn in enumerate(everyone):
                if i in closed_after:
                    continue
                try:
                    conn.send(b"1\r\nx\r\n" if conn is drip else b"X-Slow: %d\r\n" % i)
                except OSError:
                    closed_after[i] = time.monotonic() - opened
                    continue
                if conn.closed_by_server(0.001):
                    closed_after[i] = time.monotonic() - opened
            time.sleep(min(1.0, max(0.0, 1.0 - (time.monotonic() - opened) % 1.0)))
        for conn in everyone:
            conn.close()
        latest = max(closed_after.values()) if closed_after else None
        print("200 connections sending a header line per second and one chunked body "
              "dripping a byte per second: answers while open %s; closed by the server %d "
              "of %d, the last after %s s (limit %.0f s)" % (
                  answers, len(closed_after), len(everyone),
                  "%.1f" % latest if latest is not None else "-", REQUEST_TIMEOUT))
        for path, (status, _) in answers.items():
            self.assertEqual(status, 200, path)
        self.assertEqual(len(closed_after), len(everyone))
        self.assertLessEqual(latest, REQUEST_TIMEOUT + SLACK)
        self.assertEqual(self.call("GET", "/healthz").status, 200)


class PipeliningTest(FrontDoorTest):
    def test_pipelined_requests_are_all_answered_in_order(self):
        conn = Connection(self.port, timeout=20)
        stream = b"".join(request("PATCH", PATH, (AUTH,), update_body(n)) for n in (2, 3, 4, 4))
        conn.send(stream + request("GET", ENV_PATH, (AUTH,)))
        answers = [conn.read_response() for _ in range(5)]
        conn.close()
        statuses = [json.loads(a.body).get("status") for a in answers[:4]]
        final = {c["chainlet_name"]: c["autoscaling_settings"]["max_replica"]
                 for c in json.loads(answers[4].body)["chainlet_settings"]}
        print("four PATCHes and a GET in one write: HTTP %s, statuses %s, final max_replica %s"
              % ([a.status for a in answers], statuses, final["HelloWorld"]))
        self.assertEqual([a.status for a in answers], [200] * 5)
        self.assertEqual(statuses, ["QUEUED", "QUEUED", "QUEUED", "UNCHANGED"])
        self.assertEqual(final["HelloWorld"], 4)


class ProtocolEdgeTest(FrontDoorTest):
    def test_methods_get_405_with_allow_and_options_answers(self):
        options = self.call("OPTIONS", PATH)
        trace = self.call("TRACE", PATH)
        brew = self.call("BREW", PATH)
        health_post = self.call("POST", "/healthz")
        health_head = self.call("HEAD", "/healthz")
        print("OPTIONS %d Allow=%s; TRACE %d Allow=%s; BREW %d; POST /healthz %d Allow=%s; "
              "HEAD /healthz %d" % (options.status, options.header("allow"), trace.status,
                                    trace.header("allow"), brew.status, health_post.status,
                                    health_post.header("allow"), health_head.status))
        self.assertEqual(options.status, 204)
        self.assertEqual(options.header("allow"), "OPTIONS, PATCH")
        for answer in (trace, brew):
            self.assertEqual(answer.status, 405)
            self.assertEqual(answer.header("allow"), "OPTIONS, PATCH")
            self.assertEqual(json.loads(answer.body)["error"]["code"], "INVALID_ARGUMENT")
        self.assertEqual(health_post.status, 405)
        self.assertEqual(health_post.header("allow"), "GET, HEAD, OPTIONS")
        self.assertEqual(health_head.status, 200)
        self.assertEqual(health_head.body, "")

    def test_lying_lengths_are_refused(self):
        negative = self.call("PATCH", PATH, (AUTH, ("Content-Length", "-1")))
        conn = Connection(self.port)
        body = update_body(9).encode()
        conn.send(("PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key %s\r\n"
                   "Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n"
                   % (PATH, KEY, len(body))).encode() + chunk(body) + b"0\r\n\r\n")
        try:
            both = conn.read_response().status
        except (ConnectionError, OSError):
            both = 0
        conn.close()
        stored = self.max_replica()
        print("Content-Length -1: %d; Content-Length with chunked: %d, max_replica after: %d"
              % (negative.status, both, stored))
        self.assertEqual(negative.status, 400)
        self.assertEqual(both, 400)
        self.assertEqual(stored, 1)

    def test_wrong_json_types_are_400_with_the_field(self):
        answer = self.call("PATCH", PATH, (AUTH,), json.dumps(
            {"updates": [{"chainlet_name": "HelloWorld",
                          "autoscaling_settings": {"max_replica": "7"}}]}))
        body = json.loads(answer.body)
        print('"max_replica": "7" -> %d %s' % (answer.status, body))
        self.assertEqual(answer.status, 400)
        self.assertEqual(body["error"]["field_violations"][0]["field"],
                         "updates[0].autoscaling_settings.max_replica")
        self.assertEqual(self.max_replica(), 1)


class RateLimitTest(FrontDoorTest):
    extra_args = ("--rest_rate_limit=2",)

    def test_the_limit_holds_across_header_spellings(self):
        spellings = ["Api-Key " + KEY, "Bearer " + KEY, "Bearer    " + KEY, "api-key " + KEY,
                     "API-KEY " + KEY, "BEARER " + KEY, "Api-Key %s  " % KEY,
                     "bearer\t" + KEY]
        conn = Connection(self.port, timeout=10)
        codes = []
        for i in range(16):
            conn.send(request("GET", ENV_PATH, (("Authorization", spellings[i % len(spellings)]),)))
            codes.append(conn.read_response().status)
        conn.close()
        print("16 GETs at --rest_rate_limit=2 cycling %d spellings of one key: %s"
              % (len(spellings), codes))
        self.assertNotIn(401, codes)
        self.assertLessEqual(codes.count(200), 3)  # the burst (2) and at most one refill
        self.assertGreaterEqual(codes.count(429), 13)

    def test_failed_keys_are_throttled_per_client_address(self):
        conn = Connection(self.port, timeout=10)
        codes = []
        for i in range(40):
            conn.send(request("GET", ENV_PATH, (("Authorization", "Api-Key guess-%d" % i),)))
            answer = conn.read_response()
            codes.append(answer.status)
            if answer.header("connection") == "close":
                conn.close()
                conn = Connection(self.port, timeout=10)
        conn.close()
        other = self.call("GET", ENV_PATH, source="127.0.0.2")
        print("40 wrong keys from 127.0.0.1: %d answered 401, %d refused 429; a right key "
              "from 127.0.0.2: %d" % (codes.count(401), codes.count(429), other.status))
        self.assertLessEqual(codes.count(401), 11)
        self.assertGreaterEqual(codes.count(429), 29)
        self.assertEqual(codes.count(401) + codes.count(429), 40)
        self.assertEqual(other.status, 200)


class HttpsTest(FrontDoorTest):
    extra_args = ("--tls_cert=" + os.path.join(TLS_DIR, "server.pem"),
                  "--tls_key=" + os.path.join(TLS_DIR, "server.key"))

    def channel(self):
        with open(os.path.join(TLS_DIR, "ca.pem"), "rb") as f:
            return grpc.secure_channel(self.cp.address,
                                       grpc.ssl_channel_credentials(root_certificates=f.read()))

    def https(self, method, path, body=None):
        context = ssl.create_default_context(cafile=os.path.join(TLS_DIR, "ca.pem"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=10)
        try:
            conn.request(method, path, body=body, headers=dict([AUTH]))
            response = conn.getresponse()
            served = conn.sock.getpeercert(binary_form=True)
            return response.status, response.read().decode(), served
        finally:
            conn.close()

    def test_https_is_served_and_plaintext_refused(self):
        status, body, served = self.https("PATCH", PATH, update_body(5))
        with open(os.path.join(TLS_DIR, "server.pem")) as f:
            expected = ssl.PEM_cert_to_DER_cert(f.read())
        conn = Connection(self.port, timeout=5)
        try:
            conn.send(request("PATCH", PATH, (AUTH,), update_body(9)))
            plain = conn.read_response()
            plain_answer = (plain.status, plain.body[:80])
        except (ConnectionError, OSError, ValueError) as e:
            plain = None
            plain_answer = repr(e)
        conn.close()
        health = self.https("GET", "/healthz")[0]
        env = json.loads(self.https("GET", ENV_PATH)[1])
        stored = {c["chainlet_name"]: c["autoscaling_settings"]["max_replica"]
                  for c in env["chainlet_settings"]}["HelloWorld"]
        print("HTTPS PATCH: %d (certificate %s the gRPC one); plaintext PATCH: %s; "
              "HTTPS /healthz: %d; max_replica stored: %d" % (
                  status, "is" if served == expected else "is NOT", plain_answer, health,
                  stored))
        self.assertEqual(status, 200, body)
        self.assertEqual(served, expected)
        self.assertTrue(plain is None or plain.status == 400, plain_answer)
        self.assertEqual(health, 200)
        self.assertEqual(stored, 5)


class TlsFlagTest(unittest.TestCase):
    def start(self, cert, key):
        with tempfile.TemporaryDirectory() as data:
            return subprocess.run(
                [os.environ["CHAINSCALE_CONTROL_PLANE"], "--listen=127.0.0.1:0",
                 "--http_listen=127.0.0.1:0", "--data_dir=" + data, "--tls_cert=" + cert,
                 "--tls_key=" + key],
                env=dict(os.environ, CHAINSCALE_API_KEYS=KEY), capture_output=True, text=True,
                timeout=60)

    def test_bad_certificates_are_named_at_start(self):
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as garbage:
            garbage.write("-----BEGIN CERTIFICATE-----\nZ2FyYmFnZQ==\n-----END CERTIFICATE-----\n")
            garbage.flush()
            bad_cert = self.start(garbage.name, os.path.join(TLS_DIR, "server.key"))
        mismatched = self.start(os.path.join(TLS_DIR, "server.pem"),
                                os.path.join(TLS_DIR, "client.key"))
        print("garbage --tls_cert: exit %d, %s\nmismatched --tls_key: exit %d, %s" % (
            bad_cert.returncode, bad_cert.stderr.strip()[-200:], mismatched.returncode,
            mismatched.stderr.strip()[-200:]))
        self.assertNotEqual(bad_cert.returncode, 0)
        self.assertIn("--tls_cert " + garbage.name + ": not a PEM certificate", bad_cert.stderr)
        self.assertNotEqual(mismatched.returncode, 0)
        self.assertIn("does not match the certificate in --tls_cert", mismatched.stderr)


if __name__ == "__main__":
    unittest.main()
