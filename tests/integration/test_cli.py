"""The command line: import, demo, configuration errors, help, cron-next,
and graceful shutdown of `serve`; a command line that explains itself: the
command list, each command's --help, warnings for misspelt settings in the
environment, a missing data directory refused, why import cannot read a
path, and a taken port in one line."""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
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
    for owner in ("v1", "i", "dashboard", "metrics", "healthz", "readyz", "_private", ".hidden"):
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
    for owner in ("v1", "i", "dashboard", "metrics", "healthz", "readyz", "_private", ".hidden"):
        assert "%s: reserved for the server's own routes" % owner in p.stderr, owner
    assert "carol/album/notes.txt: not a JPEG, PNG, WebP or GIF image" in p.stderr
    assert "carol/album/fake.png: image data cannot be decoded" in p.stderr
    assert "carol/bad album!: album names use only" in p.stderr
    assert "stray.png: not a directory" in p.stderr
    assert "1 imported, 0 already present, 12 refused" in p.stderr


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
    assert p.returncode == 2 and p.stderr == "pixflare import: %s does not exist\n" % (
        tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(make_png(4, 4))
    p = run(["import", str(tmp_path / "file.png")], env)
    assert p.returncode == 2 and p.stderr.startswith(
        "pixflare import: %s is not a directory" % (tmp_path / "file.png")), p.stderr
    assert len(p.stderr.splitlines()) == 1 and p.stdout == ""
    # A path that cannot be imported changes nothing: no data directory made.
    assert not (tmp_path / "data").exists()


def as_nobody():
    """The command prefix that runs a program as user nobody, or skip: as
    root, permissions do not apply, so an unreadable directory needs
    another user."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the binary as nobody")
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    p = subprocess.run(prefix + [pftest.BIN, "--version"], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip("user nobody cannot run %s: %s" % (pftest.BIN, p.stderr.strip()))
    return prefix


def test_import_says_a_directory_cannot_be_read():
    prefix = as_nobody()
    # Under /tmp, not pytest's tmp_path: nobody must reach the directory.
    top = tempfile.mkdtemp(prefix="pixflare-import-")
    try:
        os.chmod(top, 0o755)
        locked = os.path.join(top, "locked")
        os.mkdir(locked, 0o700)  # root's, unreadable to nobody
        env = clean_env({"PIXFLARE_DATA_DIR": os.path.join(top, "data")})
        p = subprocess.run(prefix + [pftest.BIN, "import", locked], env=env, capture_output=True,
                           text=True, timeout=60)
        pftest.sanitizer_clean(p.stderr)
        assert p.returncode == 2, (p.returncode, p.stderr)
        assert p.stderr == "pixflare import: %s cannot be read: Permission denied\n" % locked
        assert p.stdout == "" and not os.path.exists(os.path.join(top, "data"))
    finally:
        shutil.rmtree(top)


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


# Every command of SPEC.md, and help.
COMMANDS = ["serve", "import", "keys", "demo", "events", "aggregate", "cleanup", "cron-next", "db",
            "health", "doctor", "backup", "help"]


def command_lines(text):
    """{command: its one line} from the command list of `pixflare help`."""
    lines = {}
    for line in text.split("commands:\n", 1)[1].split("\n\n", 1)[0].splitlines():
        m = re.fullmatch(r"  (\S+) +(\S.*)", line)
        assert m, line
        lines[m.group(1)] = m.group(2)
    return lines


@pytest.mark.no_db
def test_help_lists_every_command_with_its_line(tmp_path):
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data")})
    listed = run(["help"], env, check=0)
    assert listed.stdout.startswith("usage: pixflare [--config FILE] COMMAND [ARGS]\n")
    assert listed.stderr == ""
    lines = command_lines(listed.stdout)
    assert list(lines) == COMMANDS
    for cmd, line in lines.items():
        assert len(line.split()) >= 4 and "usage" not in line, (cmd, line)
    assert "'pixflare COMMAND --help'" in listed.stdout
    # --help alike; bare `pixflare` is bad usage: the same text on stderr, exit 2.
    assert run(["--help"], env, check=0).stdout == listed.stdout
    alone = run([], env, check=2)
    assert alone.stderr == listed.stdout and alone.stdout == ""
    p = run(["frobnicate"], env, check=2)
    assert p.stderr.startswith("pixflare: unknown command 'frobnicate'\n")
    assert command_lines(p.stderr) == lines
    p = run(["help", "frobnicate"], env, check=2)
    assert "unknown command 'frobnicate'" in p.stderr and p.stdout == ""
    assert run(["--bogus", "serve"], env).returncode == 2
    assert run(["serve", "extra"], env).returncode == 2
    assert not (tmp_path / "data").exists()


# What each command's help must name besides its flags: what it prints.
HELP_MENTIONS = {
    "serve": ["PIXFLARE_LISTEN", "PIXFLARE_METRICS_LISTEN", "/{owner}/{album}/{file}",
              "/i/{image_id}", "/v1/analytics/overview", "/v1/analytics/images/{image_id}",
              "/dashboard", "/healthz", "/readyz", "/metrics", "stdout", "stderr", "SIGTERM"],
    "import": ["DIR", "stdout", "stderr", "<image_id>\\t<owner>/<album>/<file>", "readyz"],
    "keys": ["create", "list", "revoke", "stdout"],
    "demo": ["stdout", "stderr"],
    "events": ["stdout", "JSON"],
    "aggregate": ["stdout", "drift="],
    "cleanup": ["stdout", "ANALYTICS_RETENTION_DAYS"],
    "cron-next": ["EXPR", "stdout", "UTC"],
    "db": ["copy", "stdout", "sqlite:PATH", "postgres://"],
    "help": ["COMMAND"],
}


@pytest.mark.no_db
@pytest.mark.parametrize("cmd", COMMANDS)
def test_each_command_help_describes_its_flags(tmp_path, cmd):
    env = clean_env({"PIXFLARE_DATA_DIR": str(tmp_path / "data")})
    p = run([cmd, "--help"], env, check=0)
    assert p.stderr == ""
    assert p.stdout.startswith("usage: pixflare " + cmd), p.stdout
    usage, sep, body = p.stdout.partition("\n\n")
    assert sep and len(body.split()) >= 10, p.stdout
    # Every flag of the usage line is described below it.
    for flag in sorted(set(re.findall(r"--[a-z][a-z-]*", usage))):
        assert re.search(r"(^|[\s(])%s\b" % re.escape(flag), body), (cmd, flag, body)
    for word in HELP_MENTIONS.get(cmd, []):
        assert word in body, (cmd, word, body)
    assert run(["help", cmd], env, check=0).stdout == p.stdout
    assert run([cmd, "-h"], env, check=0).stdout == p.stdout
    assert not (tmp_path / "data").exists()


def harness_env(extra):
    """clean_env plus the test harness's own variables, as a developer's
    shell running the tests holds them."""
    env = clean_env(extra)
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIXFLARE_TEST_")})
    env.update({"PIXFLARE_BIN": pftest.BIN, "PIXFLARE_TEST_PG_URL": "postgres://u:p@h/db",
                "PIXFLARE_TEST_CH_URL": "http://127.0.0.1:1/", "PIXFLARE_TEST_MMDB": "/x.mmdb",
                "PIXFLARE_TEST_DATABASE": "sqlite:/x.db", "PIXFLARE_TEST_ARTIFACTS": "/x"})
    return env


def test_unknown_settings_in_the_environment_are_warned_of(tmp_path):
    srv = Server(tmp_path / "data")
    srv.cli("demo", check=0)
    # A correct environment, the test harness's variables included: no warning.
    for args in (["cron-next", "0 2 * * *"], ["keys", "list"], ["help"]):
        p = run(args, harness_env(srv.env), check=0)
        assert "warning" not in p.stderr and "not a setting" not in p.stderr, (args, p.stderr)
    typo = dict(srv.env, PIXFLARE_LISTN="127.0.0.1:9", ANALYTICS_RETENTON_DAYS="hidden-value",
                PIXFLARE_RETENTION_DAYS="3")
    want = ["pixflare: warning: PIXFLARE_LISTN is not a setting; did you mean PIXFLARE_LISTEN?",
            "pixflare: warning: ANALYTICS_RETENTON_DAYS is not a setting; did you mean "
            "ANALYTICS_RETENTION_DAYS?",
            "pixflare: warning: PIXFLARE_RETENTION_DAYS is not a setting; did you mean "
            "ANALYTICS_RETENTION_DAYS?"]
    for args in (["cron-next", "0 2 * * *", "--count", "1"], ["keys", "list"], ["help"],
                 ["events"], ["serve", "--help"]):
        p = run(args, typo, check=0)
        warnings = [line for line in p.stderr.splitlines() if "warning" in line]
        assert sorted(warnings) == sorted(want), (args, p.stderr)  # each once
        assert "hidden-value" not in p.stderr + p.stdout
        assert "not a setting" not in p.stdout
    # serve too, once, and it serves.
    typo_srv = Server(tmp_path / "data", {"PIXFLARE_THREADZ": "2"})
    typo_srv.start()
    assert typo_srv.stop() == 0
    log = typo_srv.log()
    assert log.count("warning") == 1, log
    assert ("pixflare: warning: PIXFLARE_THREADZ is not a setting; did you mean "
            "PIXFLARE_THREADS?") in log


def test_missing_data_dir_is_refused_not_made(tmp_path):
    missing = tmp_path / "nowhere" / "data"
    env = clean_env({"PIXFLARE_DATA_DIR": str(missing),
                     "PIXFLARE_LISTEN": "127.0.0.1:%d" % pftest.free_port()})
    for args in (["keys", "list"], ["keys", "create", "--owner", "alice"],
                 ["keys", "revoke", "aaaaaaaaaaaa"], ["events"], ["aggregate"], ["cleanup"],
                 ["db", "copy", "--to", "sqlite:%s" % (tmp_path / "copy.db")],
                 ["backup", str(tmp_path / "bk")]):
        p = run(args, env)
        if args[0] == "backup" and "not built yet" in p.stderr:
            continue  # the issue 18 stub, until backup is written
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert p.stdout == ""
        assert p.stderr.startswith("pixflare: PIXFLARE_DATA_DIR=%s: does not exist" % missing), (
            args, p.stderr)
        assert len(p.stderr.splitlines()) == 1
        assert not (tmp_path / "nowhere").exists(), args
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "bk").exists()
    # A file where the directory should be.
    (tmp_path / "file").write_text("x")
    p = run(["keys", "list"], dict(env, PIXFLARE_DATA_DIR=str(tmp_path / "file")), check=2)
    assert "PIXFLARE_DATA_DIR=%s: is not a directory" % (tmp_path / "file") in p.stderr
    # health needs none (nothing listens: 1) and makes none.
    p = run(["health", "--timeout-ms", "500"], env, check=1)
    assert "unreachable" in p.stdout and not (tmp_path / "nowhere").exists()
    # The commands that make a data directory still do.
    os.mkdir(tmp_path / "nowhere")
    run(["demo"], env, check=0)
    assert (missing / "pixflare.db").exists() or "PIXFLARE_DATABASE" in env
    run(["keys", "list"], env, check=0)


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
        assert p.returncode == 1, p.stderr
        assert p.stdout == ""
        assert p.stderr == "pixflare: cannot listen on 127.0.0.1:%d: Address already in use\n" % port
        # Found before anything was made.
        assert not (tmp_path / "data").exists()
        # The metrics listener's address alike, in one line that names it.
        env = dict(env, PIXFLARE_LISTEN="127.0.0.1:%d" % pftest.free_port(),
                   PIXFLARE_METRICS_LISTEN="127.0.0.1:%d" % port)
        p = run(["serve"], env)
        assert p.returncode == 1 and p.stdout == ""
        assert p.stderr == ("pixflare: metrics listener (PIXFLARE_METRICS_LISTEN): cannot listen "
                            "on 127.0.0.1:%d: Address already in use\n" % port)
        assert not (tmp_path / "data").exists()
