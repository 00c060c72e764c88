"""The command line: import, demo, configuration errors, help, cron-next,
and graceful shutdown of `serve`."""
import os
import signal
import socket
import time

import pytest

import pftest
from pftest import Server, clean_env, image_size, make_png, run


def write(root, rel, data):
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_import_prints_ids_and_is_idempotent(tmp_path, images, backend):
    src, files = images
    srv = Server(tmp_path / "data")
    first = srv.cli("import", str(src), check=0)
    lines = sorted(first.stdout.splitlines())
    assert len(lines) == len(files)
    ids = {}
    for line in lines:
        image_id, rel = line.split("\t")
        assert len(image_id) == 6 and all(c.isdigit() or "a" <= c <= "z" for c in image_id)
        ids[rel] = image_id
    assert set(ids) == set(files)
    assert len(set(ids.values())) == len(ids)
    second = srv.cli("import", str(src), check=0)
    assert sorted(second.stdout.splitlines()) == lines
    assert srv.sql("SELECT count(*) FROM images") == [(len(files),)]
    if backend == "sqlite":
        assert srv.sql("PRAGMA user_version")[0][0] >= 1
    [row] = srv.sql("SELECT owner, album, filename, content_type, size_bytes, created_at "
                    "FROM images WHERE id = ?", (ids["alice/pics/wide.png"],))
    assert row[:5] == ("alice", "pics", "wide.png", "image/png", len(files["alice/pics/wide.png"]))
    assert row[5].endswith("Z") and "T" in row[5]
    # stored under the storage directory by id, byte for byte
    image_id = ids["alice/pics/wide.png"]
    with open(os.path.join(srv.data_dir, "images", image_id[:2], image_id, "original.png"), "rb") as f:
        assert f.read() == files["alice/pics/wide.png"]


def test_import_refusals(tmp_path):
    src = tmp_path / "src"
    good = make_png(20, 20)
    for owner in ("v1", "i", "dashboard", "metrics", "healthz", "_private", ".hidden"):
        write(src, "%s/album/x.png" % owner, good)
    write(src, "carol/album/ok.png", good)
    write(src, "carol/album/notes.txt", b"hello, not an image")
    write(src, "carol/album/fake.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    write(src, "carol/bad album!/x.png", good)
    write(src, "stray.png", good)
    srv = Server(tmp_path / "data")
    p = srv.cli("import", str(src), check=2)
    assert p.stdout.strip().endswith("\tcarol/album/ok.png")
    assert len(p.stdout.splitlines()) == 1
    for owner in ("v1", "i", "dashboard", "metrics", "healthz", "_private", ".hidden"):
        assert "%s: reserved for the server's own routes" % owner in p.stderr, owner
    assert "carol/album/notes.txt: not a JPEG, PNG, WebP or GIF image" in p.stderr
    assert "carol/album/fake.png: image data cannot be decoded" in p.stderr
    assert "carol/bad album!: album names use only" in p.stderr
    assert "stray.png: not a directory" in p.stderr
    assert "1 imported, 0 already present, 11 refused" in p.stderr


def test_import_changed_content_refused(tmp_path):
    src = tmp_path / "src"
    write(src, "dave/a/pic.png", make_png(30, 30, seed=1))
    srv = Server(tmp_path / "data")
    first = srv.cli("import", str(src), check=0)
    write(src, "dave/a/pic.png", make_png(30, 30, seed=2))
    p = srv.cli("import", str(src), check=2)
    assert "dave/a/pic.png: already imported with different content" in p.stderr
    assert p.stdout == ""
    srv.start()
    status, _, body = srv.request("GET", "/dave/a/pic.png")
    assert status == 200 and body == make_png(30, 30, seed=1)
    assert srv.stop() == 0
    assert first.stdout.split("\t")[0]


def test_import_usage_errors(tmp_path):
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data")})
    assert run(["import"], env).returncode == 2
    assert run(["import", "a", "b"], env).returncode == 2
    p = run(["import", str(tmp_path / "missing")], env)
    assert p.returncode == 2 and "cannot read directory" in p.stderr


def test_demo_is_idempotent_and_serves_every_format(tmp_path):
    srv = Server(tmp_path / "data")
    first = srv.cli("demo", check=0)
    second = srv.cli("demo", check=0)
    assert len(first.stdout.splitlines()) == 6
    assert sorted(first.stdout.splitlines()) == sorted(second.stdout.splitlines())
    assert "http://127.0.0.1:%d/alice/pics/sunset.jpg" % srv.port in first.stderr
    srv.start()
    expect = {"alice/pics/sunset.jpg": "image/jpeg", "alice/pics/dino.png": "image/png",
              "alice/travel/harbour.webp": "image/webp", "bob/art/loop.gif": "image/gif",
              "bob/art/portrait.jpg": "image/jpeg", "alice/travel/tiny-map.png": "image/png"}
    for rel, ctype in expect.items():
        status, h, body = srv.request("GET", "/" + rel + "/w256")
        assert status == 200 and h["content-type"] == ctype, rel
        w, _ = image_size(body)
        assert w <= 256
        status, h, body = srv.request("GET", "/" + rel + "/thumb")
        assert status == 200 and image_size(body) == (128, 128), rel
    status, _, body = srv.request("GET", "/alice/pics/sunset.jpg/og-image")
    assert image_size(body) == (1200, 630)
    status, _, body = srv.request("GET", "/alice/pics/sunset.jpg/w1024")
    assert image_size(body) == (1024, 683)
    assert srv.stop() == 0


@pytest.mark.no_db  # refused before any database is opened
@pytest.mark.parametrize("key,value,needle", [
    ("PIXFLARE_LISTEN", "nonsense", "ADDRESS:PORT"),
    ("ANALYTICS_AGGREGATION_CRON", "0 2 * *", "missing day-of-week"),
    ("ANALYTICS_CLEANUP_CRON", "61 1 * * *", "column 1"),
    ("ANALYTICS_RETENTION_DAYS", "ninety", "1-36500"),
    ("ANALYTICS_REALTIME_ENABLED", "perhaps", "true, false"),
    ("ANALYTICS_ENGINE", "bigquery", "embedded, clickhouse or none"),
    ("PIXFLARE_DATABASE", "oracle:", "sqlite:PATH"),  # the scheme: the rest may be secret
])
def test_bad_config_exits_2_naming_the_variable(tmp_path, key, value, needle):
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data"), key: value})
    p = run(["serve"], env)
    assert p.returncode == 2
    assert key in p.stderr and value in p.stderr and needle in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_config_file_and_environment_precedence(tmp_path):
    port = Server(tmp_path / "x").port
    conf = tmp_path / "pixflare.env"
    conf.write_text("# settings\nPIXFLARE_LISTEN='127.0.0.1:%d'\nPIXFLARE_DATA_DIR=%s\n"
                    % (port, tmp_path / "data")
                    + "".join("%s=%s\n" % kv
                              for kv in pftest.database_env(tmp_path / "data").items()))
    env = clean_env()
    import subprocess
    from pftest import BIN
    proc = subprocess.Popen([BIN, "--config", str(conf), "serve"], env=env,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("no listener")
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "127.0.0.1:%d" % port in err
    conf.write_text("PIXFLARE_LISTN=127.0.0.1:1\n")
    p = run(["--config", str(conf), "serve"], env)
    assert p.returncode == 2 and "unknown setting PIXFLARE_LISTN" in p.stderr
    env["PIXFLARE_LISTEN"] = "bad"
    conf.write_text("PIXFLARE_LISTEN=127.0.0.1:1\n")
    p = run(["--config", str(conf), "serve"], env)
    assert p.returncode == 2 and "PIXFLARE_LISTEN='bad'" in p.stderr


@pytest.mark.no_db
def test_help_and_usage(tmp_path):
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data")})
    for cmd in ("serve", "import", "demo", "cron-next"):
        p = run([cmd, "--help"], env, check=0)
        assert p.stdout.startswith("usage: pixflare " + cmd)
    assert run(["--help"], env, check=0).stdout.startswith("usage:")
    assert run([], env).returncode == 2
    p = run(["frobnicate"], env)
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr
    assert run(["--bogus", "serve"], env).returncode == 2
    assert run(["serve", "extra"], env).returncode == 2


@pytest.mark.no_db
def test_cron_next(tmp_path):
    env = clean_env()
    p = run(["cron-next", "0 2 * * *", "--from", "2026-11-24T19:56:00Z", "--count", "3"], env, check=0)
    assert p.stdout.split() == ["2026-11-25T02:00:00Z", "2026-11-26T02:00:00Z", "2026-11-27T02:00:00Z"]
    p = run(["cron-next", "0 0 29 2 *", "--from", "2026-01-01"], env, check=0)
    assert p.stdout.split()[0] == "2028-02-29T00:00:00Z" and len(p.stdout.split()) == 5
    p = run(["cron-next", "0 25 * * *"], env)
    assert p.returncode == 2 and "column 3" in p.stderr
    p = run(["cron-next", "0 2 * * *", "--from", "2026-02-30"], env)
    assert p.returncode == 2 and "2026-02-30" in p.stderr
    p = run(["cron-next", "0 2 * * *", "--count", "0"], env)
    assert p.returncode == 2
    p = run(["cron-next", "0 0 30 2 *"], env)
    assert p.returncode == 2 and "never fires" in p.stderr


def test_graceful_shutdown_finishes_in_flight_response(tmp_path):
    src = tmp_path / "src"
    # ~9 MB: more than the kernel's socket buffers hold, so the response is
    # still being written when the signal comes.
    big = make_png(1700, 1700, seed=5, noise=True)
    assert len(big) > (8 << 20)
    write(src, "erin/a/big.png", big)
    srv = Server(tmp_path / "data")
    srv.cli("import", str(src), check=0)
    srv.start()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
    s.sendall(b"GET /erin/a/big.png HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = s.recv(1024)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # new connections are refused while the old response is still going out
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", srv.port), timeout=2).close()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep and len(body) >= len(big):
            break
    s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert body == big
    assert srv.proc.wait(timeout=30) == 0
    srv.proc = None
    srv.stderr_file.close()
    assert "stopped" in srv.log()


def test_port_in_use(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data"),
                         "PIXFLARE_LISTEN": "127.0.0.1:%d" % port})
        p = run(["serve"], env)
        assert p.returncode == 1 and "cannot listen on 127.0.0.1:%d" % port in p.stderr
