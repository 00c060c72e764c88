#!/usr/bin/env python3
"""Check a country .mmdb built by scripts/geoip.pl against its source files.

    python3 scripts/geoip_check.py [OUT] [IPV4_FILE] [IPV6_FILE] [--samples N] [--seed S]

For a fixed-seed random sample of data lines from each file it looks up the
first, the last and a random address of the line's range through
libmaxminddb (the library Pixflare reads the file with, via ctypes) and
compares the answer with what the files say that address should get.

"What the files say" follows the rules geoip.pl builds with (see its header):
the last line in file order that covers an address and has a real country
wins; "??" lines insert nothing; in the IPv6 blocks aliased to the IPv4 tree
(::/96, ::ffff:0:0/96, 2001::/32, 2002::/16) the answer is the IPv4 file's
for the embedded IPv4 address. When the files have no overlaps and a line is
outside those blocks, that is simply the line's own country (or not found for
"??"); the report counts the samples where it is not.

Exit status: 0 when every lookup matches, 1 on any mismatch, 2 on errors.
"""

import argparse
import bisect
import ctypes
import ctypes.util
import ipaddress
import random
import sys
import time

MMDB_MODE_MMAP = 1
MMDB_SUCCESS = 0
MMDB_DATA_TYPE_UTF8_STRING = 2


class EntryS(ctypes.Structure):
    _fields_ = [("mmdb", ctypes.c_void_p), ("offset", ctypes.c_uint32)]


class LookupResultS(ctypes.Structure):
    _fields_ = [
        ("found_entry", ctypes.c_bool),
        ("entry", EntryS),
        ("netmask", ctypes.c_uint16),
    ]


class EntryDataS(ctypes.Structure):
    # The C struct's union holds an mmdb_uint128_t, which makes it 16-byte
    # aligned on 64-bit targets: ctypes cannot express that, so the padding
    # is spelt out (48 bytes in all). Reader.value() checks the type field,
    # so a different layout fails loudly instead of returning garbage.
    _fields_ = [
        ("has_data", ctypes.c_bool),
        ("_pad", ctypes.c_ubyte * 15),
        ("pointer", ctypes.c_void_p),  # utf8_string for strings
        ("_union_rest", ctypes.c_ubyte * 8),
        ("offset", ctypes.c_uint32),
        ("offset_to_next", ctypes.c_uint32),
        ("data_size", ctypes.c_uint32),
        ("type", ctypes.c_uint32),
    ]


class Reader:
    """The few libmaxminddb calls needed to read country/iso_code."""

    def __init__(self, path):
        name = ctypes.util.find_library("maxminddb") or "libmaxminddb.so.0"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise RuntimeError(f"cannot load libmaxminddb ({e}); "
                               "apt-get install libmaxminddb0") from e
        lib.MMDB_open.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_void_p]
        lib.MMDB_open.restype = ctypes.c_int
        lib.MMDB_lookup_string.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int),
        ]
        lib.MMDB_lookup_string.restype = LookupResultS
        lib.MMDB_aget_value.argtypes = [
            ctypes.POINTER(EntryS), ctypes.POINTER(EntryDataS),
            ctypes.POINTER(ctypes.c_char_p),
        ]
        lib.MMDB_aget_value.restype = ctypes.c_int
        lib.MMDB_strerror.argtypes = [ctypes.c_int]
        lib.MMDB_strerror.restype = ctypes.c_char_p
        lib.MMDB_close.argtypes = [ctypes.c_void_p]
        self.lib = lib
        # MMDB_s is 136 bytes in libmaxminddb 1.7; be generous rather than
        # mirror a struct whose size may grow.
        self.mmdb = ctypes.create_string_buffer(4096)
        rc = lib.MMDB_open(path.encode(), MMDB_MODE_MMAP, self.mmdb)
        if rc != MMDB_SUCCESS:
            raise RuntimeError(f"cannot open {path}: {lib.MMDB_strerror(rc).decode()}")
        self.path = (ctypes.c_char_p * 3)(b"country", b"iso_code", None)

    def value(self, ip):
        """Country code for ip, or None when the database has no entry."""
        gai, err = ctypes.c_int(0), ctypes.c_int(0)
        res = self.lib.MMDB_lookup_string(self.mmdb, ip.encode(),
                                          ctypes.byref(gai), ctypes.byref(err))
        if gai.value or err.value != MMDB_SUCCESS:
            raise RuntimeError(f"lookup of {ip} failed (gai {gai.value}, "
                               f"mmdb {self.lib.MMDB_strerror(err.value).decode()})")
        if not res.found_entry:
            return None
        data = EntryDataS()
        rc = self.lib.MMDB_aget_value(ctypes.byref(res.entry), ctypes.byref(data), self.path)
        if rc != MMDB_SUCCESS:
            raise RuntimeError(f"{ip}: country/iso_code: {self.lib.MMDB_strerror(rc).decode()}")
        if not data.has_data:
            return None
        if data.type != MMDB_DATA_TYPE_UTF8_STRING or data.data_size > 64:
            raise RuntimeError(f"{ip}: unexpected entry data (type {data.type}, "
                               f"size {data.data_size}): struct layout mismatch?")
        return ctypes.string_at(data.pointer, data.data_size).decode()

    def close(self):
        self.lib.MMDB_close(self.mmdb)


def load(path, v6):
    """Data lines as (low, high, cc, line number), in file order."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            lo, hi, cc = line.split(",")
            if v6:
                lo, hi = int(ipaddress.IPv6Address(lo)), int(ipaddress.IPv6Address(hi))
            else:
                lo, hi = int(lo), int(hi)
            rows.append((lo, hi, cc, n))
    return rows


class Model:
    """What one file says an address should get, overlaps included.

    Lines with a real country are grouped into clusters of mutually
    overlapping ranges; an address in a one-line cluster gets that line's
    country, otherwise the last such line in file order that covers it.
    """

    def __init__(self, rows):
        real = sorted((r for r in rows if r[2] not in ("", "??")), key=lambda r: r[0])
        self.clusters = []  # [lo, hi, members]
        for r in real:
            if self.clusters and r[0] <= self.clusters[-1][1]:
                c = self.clusters[-1]
                c[1] = max(c[1], r[1])
                c[2].append(r)
            else:
                self.clusters.append([r[0], r[1], [r]])
        self.starts = [c[0] for c in self.clusters]
        self.overlapping = 0
        for c in self.clusters:
            if len(c[2]) > 1:
                self.overlapping += len(c[2])
                c[2].sort(key=lambda r: r[3], reverse=True)

    def country(self, addr):
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0 or addr > self.clusters[i][1]:
            return None
        for lo, hi, cc, _ in self.clusters[i][2]:
            if lo <= addr <= hi:
                return cc
        return None


# IPv6 blocks that geoip.pl's tree aliases to the IPv4 tree: (network, shift
# that brings the embedded IPv4 address to the low 32 bits).
ALIASES = [
    (ipaddress.IPv6Network("::/96"), 0),
    (ipaddress.IPv6Network("::ffff:0:0/96"), 0),
    (ipaddress.IPv6Network("2001::/32"), 64),  # Teredo: the server's address
    (ipaddress.IPv6Network("2002::/16"), 80),  # 6to4
]


def expected_v6(addr, m4, m6):
    for net, shift in ALIASES:
        if int(net.network_address) <= addr <= int(net.broadcast_address):
            return m4.country((addr >> shift) & 0xFFFFFFFF)
    return m6.country(addr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mmdb", nargs="?", default="build/geoip/country.mmdb")
    ap.add_argument("ipv4", nargs="?", default="/usr/share/tor/geoip")
    ap.add_argument("ipv6", nargs="?", default="/usr/share/tor/geoip6")
    ap.add_argument("--samples", type=int, default=2000, help="lines per file")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()

    t0 = time.monotonic()
    try:
        rows4, rows6 = load(args.ipv4, False), load(args.ipv6, True)
    except (OSError, ValueError) as e:
        print(f"geoip_check: reading input: {e}", file=sys.stderr)
        return 2
    m4, m6 = Model(rows4), Model(rows6)
    try:
        reader = Reader(args.mmdb)
    except RuntimeError as e:
        print(f"geoip_check: {e}", file=sys.stderr)
        return 2
    rng = random.Random(args.seed)

    checked = mismatches = not_own = 0
    # A few fixed probes: the address the build self-check uses, and each
    # IPv4 alias form of it.
    probes = [("fixed", a, "") for a in
              ("8.8.8.8", "::ffff:8.8.8.8", "2002:808:808::1", "2001:0:808:808::1")]
    for label, rows, v6 in (("IPv4", rows4, False), ("IPv6", rows6, True)):
        for lo, hi, cc, n in rng.sample(rows, min(args.samples, len(rows))):
            for a in {lo, hi, rng.randint(lo, hi)}:
                s = str(ipaddress.IPv6Address(a) if v6 else ipaddress.IPv4Address(a))
                probes.append((f"{label} line {n}", s, cc))

    for where, s, own in probes:
        ip = ipaddress.ip_address(s)
        if ip.version == 4:
            want = m4.country(int(ip))
        else:
            want = expected_v6(int(ip), m4, m6)
        try:
            got = reader.value(s)
        except RuntimeError as e:
            print(f"geoip_check: {e}", file=sys.stderr)
            return 2
        checked += 1
        if where == "fixed":
            # Guards against a model and a database that are both empty.
            if want is None:
                want = "a country"
        elif want != (None if own in ("", "??") else own):
            not_own += 1
        if got != want:
            mismatches += 1
            if mismatches <= 50:
                print(f"MISMATCH {where}: {s}: database {got or 'not found'}, "
                      f"expected {want or 'not found'} (line says {own or '-'})")
    reader.close()

    print(f"geoip_check: {checked} lookups from {len(rows4)} IPv4 and {len(rows6)} "
          f"IPv6 lines (up to {args.samples} sampled from each, seed {args.seed}); "
          f"overlapping lines: IPv4 {m4.overlapping}, IPv6 {m6.overlapping}; "
          f"{not_own} sampled addresses answered by another line or an IPv4 alias; "
          f"{mismatches} mismatches; {time.monotonic() - t0:.1f}s")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
