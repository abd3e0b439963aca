"""An HTTP forwarder in front of moto for the checks: what a test proxy reads of a request, how
it passes the request on, and how it answers (a HEAD keeps the object's Content-Length)."""
import http.client
import http.server


class Forwarder(http.server.BaseHTTPRequestHandler):
    """Forwards each request to `upstream` (host, port); subclasses decide what to do around it."""

    upstream = None

    def body(self):
        """The request's body: by Content-Length, or de-chunked (Transfer-Encoding: chunked)."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            body = b"".join(chunks)
        return body

    def relay(self, body):
        """The request with `body` sent upstream: (status, headers to pass back, data)."""
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "content-length")}
        if body is not None:
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        # A HEAD's Content-Length is the object's, not its empty body's.
        dropped = ("transfer-encoding", "connection", "date", "server") + (() if self.command == "HEAD" else ("content-length",))
        return resp.status, [(k, v) for k, v in resp.getheaders() if k.lower() not in dropped], data

    def answer(self, status, headers, data):
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            if self.command != "HEAD":
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def forward(self):
        self.answer(*self.relay(self.body()))

    def do_GET(self):
        self.forward()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def log_message(self, *args):
        pass
