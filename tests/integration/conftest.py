"""Fixtures for the integration tests: the real pixflare binary, a fresh data
directory, real image files, and a server on 127.0.0.1.

PIXFLARE_BIN names the binary (the Makefile sets it). Each server's stderr is
checked for sanitizer reports when it stops (the ASan/UBSan build runs the
same tests)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pftest import Server, make_png  # noqa: E402


@pytest.fixture
def images(tmp_path):
    """A source tree DIR/<owner>/<album>/<file> with known images."""
    src = tmp_path / "src"
    files = {
        "alice/pics/wide.png": make_png(300, 200, seed=1),
        "alice/pics/noise.png": make_png(120, 90, seed=2, noise=True),
        "alice/travel/tall.png": make_png(90, 160, seed=3),
        "bob/art/my photo.png": make_png(64, 48, seed=4),
    }
    for rel, data in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return src, files


@pytest.fixture
def server(tmp_path, images):
    """A running server over the `images` tree; .ids maps rel path -> id."""
    src, files = images
    srv = Server(tmp_path / "data")
    p = srv.cli("import", str(src), check=0)
    srv.ids = {}
    for line in p.stdout.splitlines():
        image_id, rel = line.split("\t")
        srv.ids[rel] = image_id
    srv.files = files
    srv.src = src
    srv.start()
    yield srv
    assert srv.stop() in (0, None)


@pytest.fixture(autouse=True)
def no_server_left_behind():
    """A test that fails half-way must not leave its server running."""
    yield
    for srv in list(Server.live):
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
            srv.proc = None
    Server.live.clear()
