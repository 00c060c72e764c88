"""Fixtures for the integration tests: the real pixflare binary, a fresh data
directory, real image files, and a server on 127.0.0.1.

PIXFLARE_BIN names the binary (the Makefile sets it). Each server's stderr is
checked for sanitizer reports when it stops (the ASan/UBSan build runs the
same tests).

Database backends: every test runs twice, as test[sqlite] and test[pg] (the
`backend` fixture, "sqlite" or "postgres"), except
- @pytest.mark.sqlite_only: what only SQLite has (its file, its locks): [sqlite];
- @pytest.mark.pg_only: what only PostgreSQL has: [pg];
- @pytest.mark.no_db (or a module's pytestmark): never opens a database: once,
  unparametrised (on SQLite, should a Server come up after all).
On [pg] every data directory gets a fresh PostgreSQL database on the server
PIXFLARE_TEST_PG_URL names (scripts/test.sh starts one with scripts/pg.sh);
without it the [pg] tests are skipped. Each test also carries a marker
named after its backend: `-m sqlite`, `-m pg`, `-m "not pg"` (all but the
PostgreSQL runs) select by it. See pftest.py for the SQL helpers."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pftest  # noqa: E402
from pftest import Server, make_png  # noqa: E402

BACKENDS = {"sqlite": "sqlite", "postgres": "pg"}  # fixture value -> test id


def pytest_configure(config):
    for line in ("sqlite_only: runs on the SQLite backend only (not doubled on PostgreSQL)",
                 "pg_only: runs on the PostgreSQL backend only",
                 "no_db: opens no database: runs once, not per backend",
                 "sqlite: set by conftest.py: this run is on SQLite",
                 "pg: set by conftest.py: this run is on PostgreSQL"):
        config.addinivalue_line("markers", line)


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    marks = {m.name for m in metafunc.definition.iter_markers()}
    if "no_db" in marks:
        return
    if "sqlite_only" in marks and "pg_only" in marks:
        raise pytest.UsageError(metafunc.definition.nodeid + ": sqlite_only and pg_only")
    names = ["sqlite", "postgres"]
    if "sqlite_only" in marks:
        names = ["sqlite"]
    elif "pg_only" in marks:
        names = ["postgres"]
    metafunc.parametrize("backend", [pytest.param(n, marks=getattr(pytest.mark, BACKENDS[n]))
                                     for n in names],
                         ids=[BACKENDS[n] for n in names], indirect=True)


@pytest.fixture(autouse=True)
def backend(request):
    """The test's database backend, "sqlite" or "postgres" (see above):
    every Server (and clean_env with a data directory) of the test uses it.
    The test's PostgreSQL databases are dropped after it."""
    name = getattr(request, "param", "sqlite")
    if name == "postgres" and not pftest.PG_URL:
        pytest.skip("PIXFLARE_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL)")
    pftest.use_backend(name)
    try:
        yield name
    finally:
        pftest.end_backend()


@pytest.fixture
def pg_db_factory():
    """new(): the URL of one more fresh, empty PostgreSQL database (say the
    target of `pixflare db copy`), on any backend; dropped after the test.
    Skips the test when there is no PIXFLARE_TEST_PG_URL."""
    return pftest.new_pg_database


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
def server(tmp_path, images, backend):
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
def no_server_left_behind(backend):
    """A test that fails half-way must not leave its server running (nor
    connected to a database about to be dropped)."""
    yield
    for srv in list(Server.live):
        if srv.proc is not None:
            srv.proc.kill()
            srv.proc.wait()
            srv.proc = None
    Server.live.clear()
