#!/usr/bin/env python3
"""check_structure.py - the architecture of docs/ARCHITECTURE.md, checked.

Fails (exit 1, one line per fault) when:
  1. a folder of src/ is missing from LAYERS, or a file includes a folder of
     a higher or equal layer (only its own folder and lower layers may be
     included: the arrows point down);
  2. modules include each other in a circle (a module is a folder/stem: x.c,
     x.h and its internal x_int.h are one module), at any length;
  3. an include of ours does not name its folder ("base/err.h"), or names a
     file that does not exist;
  4. an internal header (NAME_int.h) is included from outside its module
     family (files of the same folder whose stem starts with NAME);
  5. a library's header is included outside the files that wrap it
     (LIBRARY_HOMES: SQLite only in the SQLite backend, libmicrohttpd only in
     http/, ...);
  6. a C file or header of src/ is over MAX_LINES lines;
  7. with --objects DIR (a build's object tree, build/gcc/obj): a symbol an
     object exports does not carry its file's prefix (all of the file's stem,
     or its first word: evlog_write.o may export evlog_*).

Usage: python3 scripts/check_structure.py [--root DIR] [--objects DIR]
(--root: another checkout's top directory; tests/integration/test_structure.py
plants faults in a copy of src/ to show that each one is caught.)
"""
import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SRC = os.path.join(ROOT, "src")

# Folder -> layer. A file may include its own folder and folders of a lower
# layer; folders of one layer never include each other.
LAYERS = {
    "base": 0,       # errors, time, files, UTF-8, hashing, threads: uses nothing of ours
    "config": 1,     # every setting, validated
    "http": 1,       # the server (libmicrohttpd), request/response types, the router
    "store": 2,      # the database boundary (db.h) and its backends
    "analytics": 3,  # the event, its sinks (event log, realtime rollup), the engine
    "cdn": 4,        # catalog, storage, variants served, the CDN route
    "api": 5,        # /v1 (keys, rate limit, queries), dashboard, health
    "jobs": 5,       # scheduler, aggregation, retention
    "cli": 6,        # main and the subcommands: the composition root
}

# A library's headers may be included only under these path prefixes.
LIBRARY_HOMES = {
    "sqlite3.h": ["src/store/db_sqlite"],
    "libpq-fe.h": ["src/store/db_postgres"],
    "curl/curl.h": ["src/analytics/clickhouse.c", "src/http/http_client.c"],
    "microhttpd.h": ["src/http/"],
    "maxminddb.h": ["src/analytics/geoip.c"],
    "pcre2.h": ["src/analytics/uaclass.c"],
    "hs.h": ["src/analytics/uaclass.c"],
    "vips/vips.h": ["src/cdn/storage.c", "src/cli/demo.c"],
}

MAX_LINES = 1000

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)


def src_files():
    out = []
    for folder in sorted(os.listdir(SRC)):
        d = os.path.join(SRC, folder)
        if not os.path.isdir(d):
            out.append((None, os.path.join("src", folder)))
            continue
        for name in sorted(os.listdir(d)):
            if name.endswith((".c", ".h")):
                out.append((folder, os.path.join("src", folder, name)))
    return out


def module_of(path):
    """folder/stem; an internal header x_int.h belongs to module x."""
    mod = os.path.splitext(path[len("src/"):])[0]
    return mod[: -len("_int")] if mod.endswith("_int") else mod


def check_sources(faults):
    files = src_files()
    graph = {}
    for folder, path in files:
        if folder is None:
            faults.append("%s: a file directly under src/ (every file belongs to a layer's folder)"
                          % path)
            continue
        if folder not in LAYERS:
            faults.append("%s: folder src/%s/ has no layer in scripts/check_structure.py"
                          % (path, folder))
            continue
        with open(os.path.join(ROOT, path), encoding="utf-8") as f:
            text = f.read()
        lines = text.count("\n")
        if lines > MAX_LINES:
            faults.append("%s: %d lines (at most %d: split it)" % (path, lines, MAX_LINES))
        me = module_of(path)
        stem = os.path.splitext(os.path.basename(path))[0]
        for m in INCLUDE.finditer(text):
            kind, name = m.group(1), m.group(2)
            line = text.count("\n", 0, m.start()) + 1
            where = "%s:%d" % (path, line)
            if kind == "<":
                for lib, homes in LIBRARY_HOMES.items():
                    if name == lib and not any(path.startswith(h) for h in homes):
                        faults.append("%s: <%s> outside %s" % (where, lib, ", ".join(homes)))
                continue
            if "/" not in name:
                faults.append('%s: "%s" does not name its folder ("base/err.h")' % (where, name))
                continue
            target = os.path.join("src", name)
            if not os.path.isfile(os.path.join(ROOT, target)):
                faults.append('%s: "%s" does not exist' % (where, name))
                continue
            tfolder = name.split("/")[0]
            if tfolder not in LAYERS:
                continue  # reported with the target's own files
            if tfolder != folder and LAYERS[tfolder] >= LAYERS[folder]:
                faults.append("%s: %s/ (layer %d) includes %s (layer %d): includes point down only"
                              % (where, folder, LAYERS[folder], name, LAYERS[tfolder]))
            tstem = os.path.splitext(os.path.basename(name))[0]
            if tstem.endswith("_int"):
                family = tstem[: -len("_int")]
                if tfolder != folder or not stem.startswith(family):
                    faults.append('%s: "%s" is internal to %s/%s*' % (where, name, tfolder, family))
            tmod = module_of(target)
            if tmod != me:
                graph.setdefault(me, set()).add(tmod)
    return graph


def find_cycles(graph):
    """Every elementary circle found by a DFS (one per back edge), as lists."""
    cycles = []
    state = {}
    stack = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    return cycles


def check_symbols(objdir, faults):
    """The objects of today's sources (a build tree may hold stale ones)."""
    objects = [os.path.join(objdir, os.path.splitext(p[len("src/"):])[0] + ".o")
               for f, p in src_files() if f is not None and p.endswith(".c")]
    gen = os.path.join(objdir, "gen")
    if os.path.isdir(gen):
        objects += [os.path.join(gen, n) for n in sorted(os.listdir(gen)) if n.endswith(".o")]
    for path in objects:
        if not os.path.isfile(path):
            faults.append("%s: missing (build first)" % os.path.relpath(path, ROOT))
            continue
        stem = os.path.basename(path)[:-2]
        prefixes = {stem, stem.split("_")[0]}
        out = subprocess.run(["nm", "-g", "--defined-only", path], capture_output=True,
                             text=True, check=True).stdout
        for row in out.splitlines():
            sym = row.split()[-1]
            if not any(sym == p or sym.startswith(p + "_") for p in prefixes):
                faults.append("%s: exports %s, which does not start with %s"
                              % (os.path.relpath(path, ROOT), sym,
                                 " or ".join(sorted(p + "_" for p in prefixes))))


def main(argv):
    global ROOT, SRC
    objdir = None
    args = argv[1:]
    while args:
        if len(args) >= 2 and args[0] == "--objects":
            objdir = args[1]
        elif len(args) >= 2 and args[0] == "--root":
            ROOT = os.path.abspath(args[1])
            SRC = os.path.join(ROOT, "src")
        else:
            print("usage: python3 scripts/check_structure.py [--root DIR] [--objects DIR]",
                  file=sys.stderr)
            return 2
        args = args[2:]
    faults = []
    graph = check_sources(faults)
    for cycle in find_cycles(graph):
        faults.append("include circle: %s" % " -> ".join(cycle))
    if objdir is not None:
        if not os.path.isdir(objdir):
            print("check_structure: no object directory %s (build first)" % objdir,
                  file=sys.stderr)
            return 2
        check_symbols(objdir, faults)
    for f in faults:
        print("check_structure: " + f)
    modules = len({module_of(p) for _, p in src_files()})
    edges = sum(len(v) for v in graph.values())
    print("check_structure: %d modules in %d layers, %d include arrows, %d faults"
          % (modules, len(set(LAYERS.values())), edges, len(faults)))
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
