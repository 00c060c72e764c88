# Pixflare build. `make` builds build/pixflare; `make run` and `make test` are
# the two commands of README.md; `make bench` runs the benchmarks.
#
# Variables: CC (gcc or clang), BUILD (output dir), SAN=1 (ASan + UBSan),
# SAN=thread (ThreadSanitizer, clang).

CC      ?= cc
BUILD   ?= build
PKGS    := libmicrohttpd vips jansson sqlite3 libpq libcurl libcrypto libmaxminddb libxxhash libpcre2-8 libhs
# gcc's -Wformat-truncation flags every snprintf that may cut a string; we use
# snprintf precisely so that cutting is safe (names are validated before).
NO_TRUNC_WARN := $(shell $(CC) -Werror -Wno-format-truncation -E -x c /dev/null >/dev/null 2>&1 && echo -Wno-format-truncation)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -Wno-missing-field-initializers -pthread -MMD -MP $(NO_TRUNC_WARN) \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread -lm
ifeq ($(SAN),1)
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(SAN),thread)
CFLAGS  += -O1 -fsanitize=thread -fno-omit-frame-pointer
LDFLAGS += -fsanitize=thread
endif

# The layers of src/ (docs/ARCHITECTURE.md); cli/ is the program itself,
# the rest is the library the unit tests, benchmarks and fuzzers link.
SRCS    := $(wildcard src/*/*.c)
CLIOBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(wildcard src/cli/*.c))
LIBOBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(filter-out src/cli/%,$(SRCS))) \
           $(BUILD)/obj/gen/dash_assets.o $(BUILD)/obj/gen/uaclass_db.o
# The dashboard's files, embedded in the binary (src/api/dash.h).
WEB     := $(sort $(wildcard dashboard/*.html dashboard/*.js dashboard/*.css dashboard/*.svg))
UNIT    := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/*_test.c))

.PHONY: all run test unit valgrind-unit integration deps bench bench-uaclass fuzz geoip format format-check structure clean \
        install uninstall

all: $(BUILD)/pixflare

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(@D)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc -c -o $@ $<

# tools/embed is a host tool: built without the sanitizers of SAN=1.
$(BUILD)/embed: tools/embed.c | $(BUILD)/obj
	@echo "CC $<"
	@$(CC) -O2 -std=c17 -Wall -Wextra -Werror -o $@ $< -lz

# The directory too: a file removed from it must leave the binary.
$(BUILD)/gen/dash_assets.c: $(BUILD)/embed $(WEB) dashboard
	@mkdir -p $(BUILD)/gen
	@echo "EMBED $(WEB)"
	@$(BUILD)/embed $(WEB) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/gen/dash_assets.o: $(BUILD)/gen/dash_assets.c
	@mkdir -p $(@D)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc -c -o $@ $<

# The user-agent classifier's Hyperscan database, compiled at build time by
# tools/uaclass_db (built from the classifier's own objects) rather than at
# every start (src/analytics/uaclass_int.h). Where Hyperscan cannot build it
# the file is empty, and the server compiles at start.
UACLASS_DB_OBJS := $(BUILD)/obj/analytics/uaclass.o $(BUILD)/obj/analytics/uaclass_data.o \
                   $(BUILD)/obj/base/err.o
$(BUILD)/uaclass_db: tools/uaclass_db.c $(UACLASS_DB_OBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(UACLASS_DB_OBJS) $(LDLIBS)

$(BUILD)/gen/uaclass_db.c: $(BUILD)/uaclass_db
	@mkdir -p $(BUILD)/gen
	@echo "GEN $@"
	@$(BUILD)/uaclass_db > $@.tmp || echo "/* no database: compiled at start */" > $@.tmp
	@mv $@.tmp $@

$(BUILD)/obj/gen/uaclass_db.o: $(BUILD)/gen/uaclass_db.c
	@mkdir -p $(@D)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc -c -o $@ $<

# The one version number (VERSION), compiled into cli/cli.c only.
PF_VERSION := $(shell cat VERSION)
$(BUILD)/obj/cli/cli.o: CFLAGS += -DPF_VERSION='"$(PF_VERSION)"'
$(BUILD)/obj/cli/cli.o: VERSION

$(BUILD)/pixflare: $(CLIOBJS) $(LIBOBJS)
	@echo "LD $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIBOBJS) | $(BUILD)/unit
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS) -lcmocka

$(BUILD)/evlog_bench: bench/evlog_bench.c $(LIBOBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/evgen: bench/evgen.c $(LIBOBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/flush_bench: bench/flush_bench.c $(LIBOBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/siphash_bench: bench/siphash_bench.c $(LIBOBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(BUILD)/obj $(BUILD)/unit:
	mkdir -p $@

# Install the Debian packages building and running need (no-op when present);
# geoip, bench and the tests ask scripts/deps.sh for their own.
deps:
	@sh scripts/deps.sh

run: deps
	$(MAKE) all
	$(BUILD)/pixflare demo
	$(BUILD)/pixflare serve

unit: $(UNIT)
	@set -e; for t in $(UNIT); do echo "== $$t"; $$t; done

# Every unit test under Valgrind's memcheck (a gcc build of its own, no
# sanitizers: Valgrind cannot run them); VG_UNIT picks a subset.
VG_BUILD ?= build/vg
VG_UNIT  ?= $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/*_test.c))
VALGRIND := nice -n 19 valgrind -q --error-exitcode=1 --leak-check=full \
            --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            --suppressions=tests/valgrind.supp
valgrind-unit:
	@$(MAKE) -s CC=gcc SAN= BUILD=$(VG_BUILD) $(addprefix $(VG_BUILD)/unit/,$(VG_UNIT))
	@set -e; for t in $(VG_UNIT); do echo "== valgrind $$t"; s=$$(date +%s); \
	    $(VALGRIND) $(VG_BUILD)/unit/$$t; echo "== valgrind $$t: $$(( $$(date +%s) - s )) s"; done

integration: $(BUILD)/pixflare
	@sh scripts/deps.sh test
	@sh scripts/geoip.sh build/geoip/country.mmdb >/dev/null
	PIXFLARE_BIN=$(abspath $(BUILD)/pixflare) /usr/bin/python3 -m pytest -q -n $(or $(JOBS),2) tests/integration

# Everything CI checks: formatting, gcc and clang builds, unit and
# integration tests plain and under ASan+UBSan, the unit tests under TSan
# and Valgrind, and a short fuzzing run.
test:
	@sh scripts/deps.sh test
	@sh scripts/test.sh

# A GeoIP country database (.mmdb) built offline from Debian's tor-geoipdb
# (IPFire Location data, CC BY-SA 4.0); point PIXFLARE_GEOIP_DB at it.
geoip:
	@sh scripts/deps.sh geoip
	@sh scripts/geoip.sh build/geoip/country.mmdb

bench:
	@sh scripts/deps.sh bench
	@sh bench/run.sh

# uaclass_of()'s cost per call, cached and not, with Hyperscan then PCRE2
# (BENCHMARKS.md, "User-agent classification").
bench-uaclass: $(BUILD)/uaclass_bench
	@$(BUILD)/uaclass_bench
	@PIXFLARE_UACLASS_PCRE=1 $(BUILD)/uaclass_bench 1

$(BUILD)/uaclass_bench: bench/uaclass_bench.c $(LIBOBJS)
	@echo "CC $<"
	@$(CC) $(CFLAGS) -Isrc $(LDFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

fuzz:
	@sh tests/fuzz/run.sh $(or $(FUZZ_SECONDS),60)

# The architecture of docs/ARCHITECTURE.md: layers, include circles,
# exported prefixes, file sizes.
structure: all
	@/usr/bin/python3 scripts/check_structure.py --objects $(BUILD)/obj

FORMATTED := $(wildcard src/*/*.[ch] tests/unit/*.c tests/fuzz/*.c tools/*.c)

format:
	clang-format -i $(FORMATTED)

format-check:
	clang-format --dry-run --Werror $(FORMATTED)

# Installation: the binary, the man page pixflare(1), the systemd unit, its
# user (sysusers.d) and an example settings file. PREFIX (default /usr/local)
# and DESTDIR as usual; each directory may be overridden. PIXFLARE_BIN on the
# command line installs that binary instead of building $(BUILD)/pixflare
# (the test installs the binary it tests). The installed files are
# $(INSTALLED); `make uninstall` removes exactly those, and the one directory
# of our own, $(DOCDIR), when empty.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DOCDIR      ?= $(PREFIX)/share/doc/pixflare
ifneq ($(origin PIXFLARE_BIN),command line)
PIXFLARE_BIN := $(BUILD)/pixflare
endif
INSTALLED := $(BINDIR)/pixflare $(MANDIR)/man1/pixflare.1 $(UNITDIR)/pixflare.service \
             $(SYSUSERSDIR)/pixflare.conf $(DOCDIR)/pixflare.env.example

install: $(PIXFLARE_BIN) docs/pixflare.1 dist/pixflare.service.in dist/pixflare.sysusers \
         dist/pixflare.env.example VERSION
	@mkdir -p $(BUILD)/dist
	sed -e 's|@VERSION@|$(PF_VERSION)|g' docs/pixflare.1 > $(BUILD)/dist/pixflare.1
	sed -e 's|@BINDIR@|$(BINDIR)|g' dist/pixflare.service.in > $(BUILD)/dist/pixflare.service
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR) \
	        $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(PIXFLARE_BIN) $(DESTDIR)$(BINDIR)/pixflare
	install -m 0644 $(BUILD)/dist/pixflare.1 $(DESTDIR)$(MANDIR)/man1/pixflare.1
	install -m 0644 $(BUILD)/dist/pixflare.service $(DESTDIR)$(UNITDIR)/pixflare.service
	install -m 0644 dist/pixflare.sysusers $(DESTDIR)$(SYSUSERSDIR)/pixflare.conf
	install -m 0644 dist/pixflare.env.example $(DESTDIR)$(DOCDIR)/pixflare.env.example
	@[ -n "$(DESTDIR)" ] || printf '%s\n' "Installed. To run it as a service:" \
	    "  systemd-sysusers && systemctl daemon-reload" \
	    "  install -D -m 0640 -g pixflare $(DOCDIR)/pixflare.env.example /etc/pixflare/pixflare.env" \
	    "  systemctl enable --now pixflare"

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

clean:
	rm -rf build

-include $(wildcard $(BUILD)/obj/*/*.d)
