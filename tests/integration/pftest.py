"""Helpers shared by the integration tests: image files made here (no
downloads), image-size parsing, and a handle on a real pixflare server."""
import http.client
import os
import random
import signal
import socket
import struct
import subprocess
import time
import zlib

BIN = os.environ.get("PIXFLARE_BIN",
                     os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../build/pixflare"))


def make_png(width, height, seed=1, noise=False):
    """A truecolour PNG: a gradient, or incompressible noise when asked."""
    rng = random.Random(seed)
    rows = []
    for y in range(height):
        if noise:
            row = rng.randbytes(width * 3)
        else:
            row = bytes(v for x in range(width)
                        for v in (x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                                  seed * 40 % 256))
        rows.append(b"\x00" + row)
    raw = zlib.compress(b"".join(rows), 6)

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def image_size(data):
    """(width, height) of a PNG, GIF, WebP or JPEG body."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        kind = data[12:16]
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3fff, h & 0x3fff
        if kind == b"VP8L":
            b = int.from_bytes(data[21:25], "little")
            return (b & 0x3fff) + 1, ((b >> 14) & 0x3fff) + 1
        if kind == b"VP8X":
            return (int.from_bytes(data[24:27], "little") + 1,
                    int.from_bytes(data[27:30], "little") + 1)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            marker = data[i + 1]
            length = struct.unpack(">H", data[i + 2:i + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):
                h, w = struct.unpack(">HH", data[i + 5:i + 9])
                return w, h
            i += 2 + length
    raise ValueError("unknown image format")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    """The test process's environment without any Pixflare setting."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("PIXFLARE_") or k.startswith("ANALYTICS_"))}
    env.update(extra or {})
    return env


def run(args, env, check=None, **kw):
    p = subprocess.run([BIN] + list(args), env=env, capture_output=True, text=True,
                       timeout=120, **kw)
    if check is not None:
        assert p.returncode == check, (args, p.returncode, p.stdout, p.stderr)
    sanitizer_clean(p.stderr)
    return p


def sanitizer_clean(stderr):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert marker not in stderr, stderr


class Server:
    live = set()  # started and not stopped: killed after each test (conftest.py)

    def __init__(self, data_dir, extra_env=None):
        self.data_dir = str(data_dir)
        self.port = free_port()
        self.env = clean_env({"PIXFLARE_DATA_DIR": self.data_dir,
                              "PIXFLARE_LISTEN": "127.0.0.1:%d" % self.port})
        self.env.update(extra_env or {})
        self.proc = None
        self.stderr_path = os.path.join(os.path.dirname(self.data_dir),
                                        os.path.basename(self.data_dir) + ".serve.log")

    def cli(self, *args, check=None):
        return run(args, self.env, check=check)

    def start(self):
        self.stderr_file = open(self.stderr_path, "w")
        self.proc = subprocess.Popen([BIN, "serve"], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr_file)
        Server.live.add(self)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("server exited: " + self.log())
            try:
                status, _, _ = self.request("GET", "/healthz")
                if status == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("server did not start: " + self.log())

    def log(self):
        with open(self.stderr_path) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=60)
        self.proc = None
        Server.live.discard(self)
        self.stderr_file.close()
        sanitizer_clean(self.log())
        return rc

    def kill(self):
        """kill -9: no chance to flush or seal anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        Server.live.discard(self)
        self.stderr_file.close()

    def connect(self, timeout=30):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, headers=None):
        c = self.connect()
        try:
            c.request(method, path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def raw(self, data, timeout=10):
        """Send raw bytes; return (status, headers, body) of the reply, parsed
        loosely so that malformed requests can be tested."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(data)
            buf = b""
            try:
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    buf += b
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep:
                        length = None
                        for line in head.split(b"\r\n")[1:]:
                            k, _, v = line.partition(b":")
                            if k.strip().lower() == b"content-length":
                                length = int(v)
                        if length is not None and len(body) >= length:
                            break
            except (socket.timeout, ConnectionResetError):
                pass
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else 0
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers[k.strip().lower().decode()] = v.strip().decode()
        return status, headers, body


def import_tree(srv, src):
    """Run `pixflare import SRC` on srv's data dir: {owner/album/file: image id}."""
    p = srv.cli("import", str(src), check=0)
    ids = {}
    for line in p.stdout.splitlines():
        image_id, rel = line.split("\t")
        ids[rel] = image_id
    return ids
