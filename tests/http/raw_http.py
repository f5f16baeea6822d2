"""HTTP/1.1 spoken by hand over raw sockets, for tests that must send what a well-behaved
client never would (pipelined requests, lying headers, bodies that never end) and read
each answer exactly as the server wrote it. Python's http.client buffers ahead and
hides those details, hence this small reader."""

import socket
import time


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:200])


class Connection:
    """One TCP connection (optionally wrapped, e.g. in TLS) with a read buffer, so
    several responses can be read back to back from one stream."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, sock=None, source=None):
        if sock is None:
            sock = socket.create_connection((host, port), timeout=timeout,
                                            source_address=(source, 0) if source else None)
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = b""

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by the server")
        self.buffer += chunk

    def _line(self):
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 65536:
                raise ValueError("header line too long")
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("latin-1")

    def _exactly(self, n):
        while len(self.buffer) < n:
            self._fill()
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_response(self, head=False):
        """The next response; `head` for the answer to a HEAD request (no body)."""
        status_line = self._line()
        while status_line == "":  # tolerate a stray CRLF
            status_line = self._line()
        parts = status_line.split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        while True:
            line = self._line()
            if line == "":
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (100, 101):
            return self.read_response(head)
        body = b""
        if head or status in (204, 304):
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self._line().split(";")[0], 16)
                if size == 0:
                    while self._line() != "":
                        pass
                    break
                body += self._exactly(size)
                self._exactly(2)
        elif "content-length" in headers:
            body = self._exactly(int(headers["content-length"]))
        else:
            # Until the server closes.
            try:
                while True:
                    self._fill()
            except (ConnectionError, OSError):
                pass
            body, self.buffer = self.buffer, b""
        return Response(status, reason, headers, body.decode("utf-8", errors="replace"))

    def closed_by_server(self, timeout):
        """True when the server closes (or resets) the connection within `timeout`,
        reading and keeping whatever it sends before that."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            self.buffer += chunk
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request(method, path, headers=(), body=b""):
    """The bytes of one request with a Content-Length (when there is a body)."""
    if isinstance(body, str):
        body = body.encode()
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"]
    lines += ["%s: %s" % (k, v) for k, v in headers]
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(port, method, path, headers=(), body=b"", source=None, timeout=10.0):
    """One request on a fresh connection (from `source` when given); its response."""
    conn = Connection(port, timeout=timeout, source=source)
    try:
        conn.send(request(method, path, headers, body))
        return conn.read_response(head=(method == "HEAD"))
    finally:
        conn.close()


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)
