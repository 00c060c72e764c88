"""`make install` and `make uninstall` into a temporary root, and what they
install: the binary (the one PIXFLARE_BIN names, not rebuilt), the manual
page pixflare(1), the systemd unit, its sysusers.d user and the example
settings file.

- The unit passes `systemd-analyze verify` (which also checks that
  ExecStart's binary exists in the root and, with MANPATH, that
  Documentation=man:pixflare(1) resolves) with nothing on stderr, and
  `systemd-analyze security --offline` under a threshold. Verify needs the
  distribution's own units (sysinit.target ...): they are copied from
  /usr/lib/systemd/system into a copy of the root.
- The manual page: `groff -man -ww -z` says nothing, `man -l` renders it,
  its version is VERSION's, and it is complete: every command of
  `pixflare help` and every flag of their usage lines, every setting of
  src/config/config.c's key_names with the default of its defaults table.
- MemoryDenyWriteExecute=: the server, under the seccomp rules systemd 252
  installs for it (seccomp-util.c: mmap with PROT_WRITE|PROT_EXEC, mprotect
  and pkey_mprotect with PROT_EXEC, shmat with SHM_EXEC refused with EPERM),
  makes every variant of the demo's JPEG, PNG, WebP and GIF.
- `make uninstall` leaves no file, only the standard directories that
  `install -d` made (bin, share/man/man1, lib/systemd/system, lib/sysusers.d).

Needs make, systemd (systemd-analyze, systemd-sysusers), groff-base and
man-db: sh scripts/deps.sh test."""
import ctypes
import errno
import http.client
import os
import re
import shutil
import subprocess
import sys

import pytest

from pftest import BIN, clean_env, free_port, run

pytestmark = pytest.mark.no_db

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
PREFIX = "/usr/local"
FILES = {  # installed path under DESTDIR -> mode
    "usr/local/bin/pixflare": 0o755,
    "usr/local/share/man/man1/pixflare.1": 0o644,
    "usr/local/lib/systemd/system/pixflare.service": 0o644,
    "usr/local/lib/sysusers.d/pixflare.conf": 0o644,
    "usr/local/share/doc/pixflare/pixflare.env.example": 0o644,
}
UNIT = "usr/local/lib/systemd/system/pixflare.service"
MAN = "usr/local/share/man/man1/pixflare.1"


def version():
    with open(os.path.join(REPO, "VERSION")) as f:
        return f.read().strip()


def need(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail("test_install needs %s: run `sh scripts/deps.sh test`" % ", ".join(missing))


def make(target, root, build):
    """make TARGET into DESTDIR=root, installing BIN; make's own output
    goes to build/ (never the shared build/)."""
    p = subprocess.run(["make", "-C", REPO, target, "DESTDIR=" + str(root), "PREFIX=" + PREFIX,
                        "BUILD=" + str(build), "PIXFLARE_BIN=" + os.path.abspath(BIN)],
                       capture_output=True, text=True, timeout=120,
                       env=clean_env())
    assert p.returncode == 0, (target, p.stdout, p.stderr)
    return p


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        for n in names:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    need("make")
    base = tmp_path_factory.mktemp("install")
    root, build = base / "root", base / "build"
    p = make("install", root, build)
    assert "CC " not in p.stdout and "LD " not in p.stdout, "install rebuilt: " + p.stdout
    return root, build


def render(root, width=250):
    """The installed page as plain text: no hyphenation, lines `width` wide
    (so that a name is never split)."""
    p = subprocess.run(["groff", "-man", "-Tutf8", "-rHY=0", "-rLL=%dn" % width, "-P-cbou",
                        str(root / MAN)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return p.stdout


def section(text, name):
    m = re.search(r"^%s\n(.*?)(?=^[A-Z][A-Z ]+\n|\Z)" % re.escape(name), text, re.M | re.S)
    assert m, "no %s section" % name
    return m.group(1)


def entries(sec):
    """A section's tagged paragraphs (.TP): tag -> body (one line)."""
    out, tag = {}, None
    for line in sec.splitlines():
        m = re.match(r"^ {7}(\S.*?)(?: {2,}(\S.*))?$", line)
        if m:  # a tag shorter than the indent has its body on its line
            tag = m.group(1)
            out[tag] = " " + m.group(2) if m.group(2) else ""
        elif tag is not None and line.strip():
            out[tag] += " " + line.strip()
    return out


def test_installs_the_files_with_their_modes(installed):
    root, _ = installed
    assert files_under(root) == set(FILES), files_under(root)
    for rel, mode in FILES.items():
        assert os.stat(root / rel).st_mode & 0o7777 == mode, rel
    with open(root / "usr/local/bin/pixflare", "rb") as a, open(BIN, "rb") as b:
        assert a.read() == b.read(), "not the binary PIXFLARE_BIN names"
    p = subprocess.run([str(root / "usr/local/bin/pixflare"), "--version"], capture_output=True,
                       text=True, env=clean_env(), timeout=30)
    assert p.returncode == 0 and p.stdout == "pixflare %s\n" % version(), (p.stdout, p.stderr)
    unit = (root / UNIT).read_text()
    assert "@" not in unit.replace("@system-service", "").replace("@privileged", ""), unit
    assert "\nExecStart=%s/bin/pixflare serve\n" % PREFIX in unit
    assert "\nExecStartPost=%s/bin/pixflare health --wait-ms 30000\n" % PREFIX in unit
    with open(os.path.join(REPO, "dist/pixflare.env.example")) as f:
        assert (root / "usr/local/share/doc/pixflare/pixflare.env.example").read_text() == f.read()


def test_unit_verifies(installed, tmp_path):
    need("systemd-analyze")
    root, _ = installed
    vroot = tmp_path / "verify"
    shutil.copytree(root, vroot, symlinks=True)
    os.makedirs(vroot / "usr/lib/systemd")
    shutil.copytree("/usr/lib/systemd/system", vroot / "usr/lib/systemd/system", symlinks=True)
    unit = str(vroot / UNIT)
    env = dict(clean_env(), MANPATH=str(vroot / "usr/local/share/man"))
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + str(vroot), unit],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and p.stderr == "" and p.stdout == "", (p.stdout, p.stderr)

    # The unit's promises, as systemd reads them.
    p = subprocess.run(["systemd-analyze", "security", "--offline=true", "--threshold=20",
                        "--root=" + str(vroot), unit],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, (p.stdout, p.stderr)
    m = re.search(r"Overall exposure level for pixflare.service: ([0-9.]+)", p.stdout)
    assert m and float(m.group(1)) <= 2.0, p.stdout
    text = (vroot / UNIT).read_text()
    for line in ("User=pixflare", "StateDirectory=pixflare",
                 "Environment=PIXFLARE_DATA_DIR=/var/lib/pixflare",
                 "EnvironmentFile=-/etc/pixflare/pixflare.env", "ProtectSystem=strict",
                 "ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                 "MemoryDenyWriteExecute=yes", "CapabilityBoundingSet=",
                 "SystemCallFilter=@system-service", "KillSignal=SIGTERM", "Restart=on-failure"):
        assert "\n%s\n" % line in text, line

    # The verify above checks ExecStart's binary in the root: without it, it fails.
    os.unlink(vroot / "usr/local/bin/pixflare")
    p = subprocess.run(["systemd-analyze", "verify", "--root=" + str(vroot), unit],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode != 0 and "/usr/local/bin/pixflare" in p.stderr, (p.stdout, p.stderr)


def test_sysusers_makes_the_user(installed):
    need("systemd-sysusers")
    root, _ = installed
    p = subprocess.run(["systemd-sysusers", "--root=" + str(root), "--dry-run",
                        str(root / "usr/local/lib/sysusers.d/pixflare.conf")],
                       capture_output=True, text=True, timeout=60)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "Creating user 'pixflare'" in out, out
    assert not os.path.exists(root / "etc"), "a dry run wrote into the root"


def test_man_page_renders_without_warnings(installed):
    need("groff")
    root, _ = installed
    page = str(root / MAN)
    p = subprocess.run(["groff", "-man", "-ww", "-z", page], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    with open(page) as f:
        th = next(line for line in f if line.startswith(".TH "))
    assert '"pixflare %s"' % version() in th, th
    text = render(root)
    for name in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "ENVIRONMENT", "FILES",
                 "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
        section(text, name)
    if shutil.which("man"):
        p = subprocess.run(["man", "-l", page], capture_output=True, text=True, timeout=60,
                           env=dict(clean_env(), MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert p.stdout.startswith("PIXFLARE(1)") and "pixflare %s" % version() in p.stdout


def help_commands():
    """The commands `pixflare help` lists, and the flags of their usage lines."""
    p = run(["help"], clean_env(), check=0)
    names = re.findall(r"^  (\S+) +\S", p.stdout.split("commands:", 1)[1], re.M)
    assert len(names) >= 12, p.stdout
    flags = {}
    for name in names:
        h = run(["help", name], clean_env(), check=0).stdout
        usage = h.split("\n\n", 1)[0]
        flags[name] = sorted(set(re.findall(r"--[a-z][a-z-]*", usage)))
    return names, flags


def config_settings():
    """key_names and the defaults table of src/config/config.c: name -> default or None."""
    with open(os.path.join(REPO, "src/config/config.c")) as f:
        src = f.read()
    enum = re.findall(r"\b(K_[A-Z_]+),", re.search(r"enum key_id \{(.*?)\};", src, re.S).group(1))
    names = re.findall(r'"([A-Z_]+)"',
                       re.search(r"key_names\[K_COUNT\] = \{(.*?)\};", src, re.S).group(1))
    assert len(names) == len(enum) and len(names) >= 27, (enum, names)
    table = re.search(r"defaults\[K_COUNT\] = \{(.*?)\};", src, re.S).group(1)
    defaults = dict(re.findall(r'\[(K_[A-Z_]+)\] = "([^"]*)"', table))
    assert len(defaults) >= 15, table
    return {name: defaults.get(k) for k, name in zip(enum, names)}


def test_man_page_is_complete(installed):
    need("groff")
    root, _ = installed
    text = render(root)
    commands = entries(section(text, "COMMANDS"))
    names, flags = help_commands()
    missing = []
    for name in names:
        tags = [t for t in commands if re.match(r"pixflare %s(\s|$)" % re.escape(name), t)]
        if not tags:
            missing.append("command " + name)
            continue
        for flag in flags[name]:
            if not any(flag in t for t in tags):
                missing.append("flag %s of %s" % (flag, name))
    for opt in ("--config", "--version", "--help"):
        if opt not in section(text, "OPTIONS"):
            missing.append("option " + opt)
    env = entries(section(text, "ENVIRONMENT"))
    for name, default in config_settings().items():
        body = env.get(name)
        if body is None:
            missing.append("setting " + name)
        elif default is not None and not re.search(r"Default: %s(\.| \()" % re.escape(default),
                                                    body):
            missing.append("default %s=%s (found:%s)" % (name, default, body))
        elif "Default:" not in body:
            missing.append("default of " + name)
    files = section(text, "FILES")
    for path in ("pixflare.db", "secret", "node-id", "events/", "images/",
                 "/etc/pixflare/pixflare.env"):
        if path not in files:
            missing.append("file " + path)
    status = entries(section(text, "EXIT STATUS"))
    missing += ["exit status " + s for s in ("0", "1", "2") if s not in status]
    assert not missing, "pixflare(1) lacks: " + "; ".join(missing)


# ---- MemoryDenyWriteExecute= ----

SECCOMP_WRAPPER = r"""
import ctypes, os, sys
lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]

class Cmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(Cmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]
ALLOW, EPERM, MASKED_EQ = 0x7fff0000, 0x00050000 | 1, 7
PROT_WRITE, PROT_EXEC, SHM_EXEC = 2, 4, 0o100000
ctx = lib.seccomp_init(ALLOW)
assert ctx
# systemd 252, seccomp_memory_deny_write_execute(): the same four rules.
for name, mask in ((b"mmap", PROT_WRITE | PROT_EXEC), (b"mprotect", PROT_EXEC),
                   (b"pkey_mprotect", PROT_EXEC), (b"shmat", SHM_EXEC)):
    nr = lib.seccomp_syscall_resolve_name(name)
    assert nr >= 0, name
    cmp = Cmp(2, MASKED_EQ, mask, mask)
    assert lib.seccomp_rule_add_array(ctx, EPERM, nr, 1, ctypes.byref(cmp)) == 0, name
assert lib.seccomp_load(ctx) == 0
os.execv(sys.argv[1], sys.argv[1:])
"""


def under_mdwe(args):
    """args run under the MemoryDenyWriteExecute= rules."""
    return [sys.executable, "-c", SECCOMP_WRAPPER] + list(args)


def test_variants_under_memory_deny_write_execute(tmp_path):
    try:
        ctypes.CDLL("libseccomp.so.2")
    except OSError:
        pytest.fail("needs libseccomp2 (a dependency of systemd): sh scripts/deps.sh test")
    # The filter bites: writable-and-executable memory is refused.
    probe = ("import mmap\ntry:\n    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE"
             " | mmap.PROT_EXEC)\nexcept OSError as e:\n    print(e.errno)\n")
    p = subprocess.run(under_mdwe([sys.executable, "-c", probe]), capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == str(errno.EPERM), (p.stdout, p.stderr)

    data = tmp_path / "data"
    port = free_port()
    env = clean_env({"PIXFLARE_DATA_DIR": str(data), "PIXFLARE_LISTEN": "127.0.0.1:%d" % port})
    p = subprocess.run(under_mdwe([BIN, "demo"]), env=env, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    images = [line.split("\t")[1] for line in p.stdout.splitlines()]
    kinds = {os.path.splitext(i)[1] for i in images}
    assert {".jpg", ".png", ".webp", ".gif"} <= kinds, images
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        srv = subprocess.Popen(under_mdwe([BIN, "serve"]), env=env, stdout=subprocess.DEVNULL,
                               stderr=err)
    try:
        p = subprocess.run([BIN, "health", "--wait-ms", "30000"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert p.returncode == 0, (p.stdout, log.read_text())
        for image in images:
            for variant in ("w128", "w256", "w512", "w1024", "w1536", "w2048", "thumb",
                            "og-image"):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                c.request("GET", "/%s/%s" % (image.replace(" ", "%20"), variant))
                r = c.getresponse()
                body = r.read()
                c.close()
                assert r.status == 200 and body, (image, variant, r.status, body[:200])
    finally:
        srv.terminate()
        rc = srv.wait(timeout=60)
    assert rc == 0, log.read_text()
    assert "error" not in log.read_text().lower(), log.read_text()


def test_uninstall_removes_what_install_put(tmp_path):
    need("make")
    root, build = tmp_path / "root", tmp_path / "build"
    make("install", root, build)
    assert files_under(root) == set(FILES)
    make("uninstall", root, build)
    assert files_under(root) == set(), files_under(root)
    dirs = {os.path.relpath(d, root) for d, _, _ in os.walk(root)} - {"."}
    # What is left: the standard directories install -d made (shared with
    # other programs, so kept); not share/doc/pixflare, which is ours.
    assert dirs == {"usr", "usr/local", "usr/local/bin", "usr/local/share",
                    "usr/local/share/man", "usr/local/share/man/man1", "usr/local/share/doc",
                    "usr/local/lib", "usr/local/lib/systemd", "usr/local/lib/systemd/system",
                    "usr/local/lib/sysusers.d"}, dirs
    # Uninstalling twice is harmless.
    make("uninstall", root, build)
