#!/usr/bin/env python3
"""bench/chstub.py - a stand-in for ClickHouse's HTTP interface that takes
pixflare's event inserts and throws them away, for bench/clickhouse.sh: the
cost of ANALYTICS_ENGINE=clickhouse to the node itself (the shipper reading
the local log, encoding RowBinary, sending it) without ClickHouse's own work
on the same CPUs.

  chstub.py PORT_FILE CLICKHOUSE_URL

Listens on a free port of 127.0.0.1 (written to PORT_FILE), HTTP/1.1 with
keep-alive, one thread per connection. An INSERT whose rows come in the
body (the statement in the URL: the shipper's batches) is read whole and
dropped, answered 200 at once, and counted. Every other request (the start's
checks and CREATE TABLEs, the nodes table's progress rows, a count()) is
passed on to the real ClickHouse at CLICKHOUSE_URL (http://host:port/), and
its answer passed back: the tables exist and are checked there, whatever
their columns are. SIGTERM stops it; it then prints "inserts=N bytes=B
forwarded=F" on stdout.
"""
import http.client
import http.server
import signal
import socketserver
import sys
import threading
import urllib.parse

stats = {"inserts": 0, "bytes": 0, "forwarded": 0}
lock = threading.Lock()
UPSTREAM = None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body, ctype="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        n = int(self.headers.get("Content-Length", "0"))
        sql = q.get("query", [""])[0]
        if sql.lstrip().upper().startswith("INSERT"):
            left = n
            while left > 0:
                chunk = self.rfile.read(min(left, 1 << 20))
                if not chunk:
                    break
                left -= len(chunk)
            with lock:
                stats["inserts"] += 1
                stats["bytes"] += n
            self.reply(200, b"")
            return
        body = self.rfile.read(n) if n > 0 else b""
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() in ("authorization", "content-type", "x-clickhouse-user", "x-clickhouse-key")}
        try:
            c = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=60)
            c.request("POST", self.path, body=body, headers=headers)
            r = c.getresponse()
            data = r.read()
            c.close()
        except OSError as e:
            self.reply(502, ("chstub: ClickHouse unreachable: %s" % e).encode())
            return
        with lock:
            stats["forwarded"] += 1
        self.reply(r.status, data, r.getheader("Content-Type", "text/plain"))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    global UPSTREAM
    UPSTREAM = urllib.parse.urlsplit(sys.argv[2])
    srv = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w") as f:
        f.write("%d\n" % srv.server_address[1])

    def stop(*_):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    srv.serve_forever()
    print("inserts=%d bytes=%d forwarded=%d" % (stats["inserts"], stats["bytes"], stats["forwarded"]))


if __name__ == "__main__":
    main()
