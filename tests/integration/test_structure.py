"""scripts/check_structure.py catches each kind of fault it promises to.

Each case copies src/ into a temporary tree, plants one fault, and runs the
checker on that tree: it must exit 1 naming the fault. The unchanged copy
passes, so every failure comes from the planted fault alone. (The checker on
the real tree runs as its own step of `make test`, with the objects.)
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHECK = os.path.join(ROOT, "scripts", "check_structure.py")

pytestmark = pytest.mark.no_db  # no pixflare runs here: once, not per database backend


def run(root):
    p = subprocess.run([sys.executable, CHECK, "--root", str(root)], capture_output=True,
                       text=True, timeout=60)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture
def tree(tmp_path):
    shutil.copytree(os.path.join(ROOT, "src"), tmp_path / "src")
    return tmp_path


def append(tree, rel, text):
    with open(tree / "src" / rel, "a", encoding="utf-8") as f:
        f.write(text)


def test_the_tree_as_it_is_passes(tree):
    rc, out = run(tree)
    assert rc == 0, out
    assert "0 faults" in out


@pytest.mark.parametrize("rel, line, expect", [
    # An arrow up: the base layer including the HTTP server.
    ("base/err.c", '#include "http/http_server.h"\n', "includes point down only"),
    # Sideways: two folders of one layer.
    ("jobs/jobs.c", '#include "api/api.h"\n', "includes point down only"),
    ("config/config.c", '#include "http/http.h"\n', "includes point down only"),
    # An include of ours without its folder, and one of a file that is not there.
    ("cdn/cdn.c", '#include "err.h"\n', "does not name its folder"),
    ("cdn/cdn.c", '#include "cdn/nothing.h"\n', "does not exist"),
    # Another module's insides.
    ("jobs/aggregate.c", '#include "store/db_int.h"\n', "is internal to store/db*"),
    ("analytics/rollup.c", '#include "analytics/evlog_int.h"\n', "is internal"),
    # A library outside the files that wrap it.
    ("cdn/catalog.c", "#include <sqlite3.h>\n", "<sqlite3.h> outside"),
    ("api/api.c", "#include <microhttpd.h>\n", "<microhttpd.h> outside"),
])
def test_a_planted_include_fault_is_caught(tree, rel, line, expect):
    append(tree, rel, line)
    rc, out = run(tree)
    assert rc == 1, out
    assert expect in out, out


def test_a_circle_within_a_layer_is_caught(tree):
    # Two modules of one folder including each other (legal by layer).
    append(tree, "cdn/catalog.h", '#include "cdn/cdn.h"\n')
    rc, out = run(tree)
    assert rc == 1, out
    assert "include circle" in out and "cdn/catalog" in out and "cdn/cdn" in out, out


def test_a_longer_circle_is_caught(tree):
    # storage -> urlpath -> import -> storage.
    append(tree, "cdn/storage.h", '#include "cdn/urlpath.h"\n')
    append(tree, "cdn/urlpath.h", '#include "cdn/import.h"\n')
    append(tree, "cdn/import.h", '#include "cdn/storage.h"\n')
    rc, out = run(tree)
    assert rc == 1, out
    assert "include circle" in out, out


def test_a_file_over_the_limit_is_caught(tree):
    append(tree, "base/utf8.c", "/* filler */\n" * 1000)
    rc, out = run(tree)
    assert rc == 1, out
    assert "src/base/utf8.c" in out and "lines (at most 1000" in out, out


def test_a_new_folder_needs_a_layer(tree):
    os.mkdir(tree / "src" / "extra")
    with open(tree / "src" / "extra" / "x.c", "w", encoding="utf-8") as f:
        f.write("int x_one(void) { return 1; }\n")
    rc, out = run(tree)
    assert rc == 1, out
    assert "src/extra/ has no layer" in out, out


def test_an_export_without_its_prefix_is_caught(tree, tmp_path):
    # A compiled object of the copy's utf8.c with one misnamed export.
    append(tree, "base/utf8.c", "int u8_count(void);\nint u8_count(void) { return 0; }\n")
    obj = tmp_path / "obj"
    for folder, stem in [(f, os.path.splitext(n)[0]) for f in os.listdir(tree / "src")
                         for n in os.listdir(tree / "src" / f) if n.endswith(".c")]:
        os.makedirs(obj / folder, exist_ok=True)
        src = tree / "src" / folder / (stem + ".c")
        if stem == "utf8":
            subprocess.run(["cc", "-std=c17", "-c", "-I", str(tree / "src"), "-o",
                            str(obj / folder / "utf8.o"), str(src)], check=True)
        else:
            # An empty object stands for the rest: no exports, nothing to fault.
            subprocess.run(["cc", "-c", "-x", "c", "-o", str(obj / folder / (stem + ".o")),
                            "/dev/null"], check=True)
    p = subprocess.run([sys.executable, CHECK, "--root", str(tree), "--objects", str(obj)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout
    assert "exports u8_count, which does not start with utf8_" in p.stdout, p.stdout
