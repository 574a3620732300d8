# tcpcp: TCP connection passing.  Plain make; O= selects the build folder
# so that a sanitizer build can sit beside the normal one.
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
O       ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -Iinclude -I$(O)/gen
LIB_LDLIBS = -lbpf -lnftnl -lmnl -lcap -lprotobuf-c
# live passing (lib/pass*.c, lib/switch*.c)
LIB_LDLIBS += -lcrypto -lnl-route-3 -lnl-3 -lnet
CPPFLAGS += -I/usr/include/libnl3

SOVERSION = 1
VERSION   = 0.1.0
SONAME    = libtcpcp.so.$(SOVERSION)

LIB_SRC  = $(wildcard lib/*.c)
TOOL_SRC = $(wildcard tools/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(O)/%.o) $(O)/gen/ici.pb-c.o $(O)/gen/pass.pb-c.o $(O)/lib/bpf-obj.o
TOOL_OBJ = $(TOOL_SRC:%.c=$(O)/%.o) $(O)/passd/pass.o $(O)/passd/passd.o $(O)/passd/common.o \
	   $(O)/passd/sessions.o $(patsubst %.c,$(O)/%.o,$(wildcard restore/*.c))

# The CRIU plugin builds against Debian 12's criu-plugin.h (package criu)
# and declares the two hooks CRIU 4.0 added itself (plugin/plugin.c).
CRIU_INCLUDE ?= /usr/include/criu
PLUGIN_SRC = $(wildcard plugin/*.c)
PLUGIN_OBJ = $(PLUGIN_SRC:%.c=$(O)/%.o)
# Alone in its folder: criu --lib DIR loads every *.so in DIR.
PLUGIN_SO  = $(O)/criu-plugin/tcpcp_plugin.so

all: $(O)/libtcpcp.so $(O)/libtcpcp.a $(O)/tcpcp $(O)/tcpcp.pc traffic pass $(PLUGIN_SO) zdtm \
	$(O)/test/live-check

$(O)/gen/ici.pb-c.c $(O)/gen/ici.pb-c.h: images/ici.proto
	@mkdir -p $(O)/gen
	protoc-c --c_out=$(O)/gen -Iimages $<

$(O)/gen/pass.pb-c.c $(O)/gen/pass.pb-c.h: images/pass.proto
	@mkdir -p $(O)/gen
	protoc-c --c_out=$(O)/gen -Iimages $<

$(O)/gen/%.pb-c.o: $(O)/gen/%.pb-c.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -c -o $@ $<

# BPF programs (lib/bpf/): clang whatever CC is, no sanitizer, and the
# object goes into the library as data (lib/bpf-obj.S).
BPF_CC      ?= clang
BPF_CFLAGS   = -O2 -g -target bpf -Wall -Werror -I/usr/include/$(shell $(CC) -print-multiarch)
$(O)/lib/bpf/%.bpf.o: lib/bpf/%.bpf.c lib/bpf/gate.h
	@mkdir -p $(dir $@)
	$(BPF_CC) $(BPF_CFLAGS) -c -o $@ $<

$(O)/lib/bpf-obj.o: lib/bpf-obj.S $(O)/lib/bpf/gate.bpf.o $(O)/lib/bpf/carry.bpf.o \
		$(O)/lib/bpf/clamp.bpf.o $(O)/lib/bpf/skip.bpf.o
	$(CC) -DBPF_OBJ='"$(O)/lib/bpf/gate.bpf.o"' -DCARRY_OBJ='"$(O)/lib/bpf/carry.bpf.o"' \
		-DCLAMP_OBJ='"$(O)/lib/bpf/clamp.bpf.o"' -DSKIP_OBJ='"$(O)/lib/bpf/skip.bpf.o"' \
		-c -o $@ $<

$(O)/lib/%.o: lib/%.c $(O)/gen/ici.pb-c.h $(O)/gen/pass.pb-c.h $(wildcard lib/*.h lib/bpf/*.h) include/tcpcp.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(O)/tools/%.o: tools/%.c $(O)/gen/ici.pb-c.h include/tcpcp.h $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ipassd -DTCPCP_VERSION='"$(VERSION)"' $(WARN) $(CFLAGS) -c -o $@ $<

$(O)/libtcpcp.so: $(LIB_OBJ) lib/libtcpcp.map
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script=lib/libtcpcp.map \
		-o $(O)/$(SONAME) $(LIB_OBJ) $(LIB_LDLIBS)
	ln -sf $(SONAME) $@

$(O)/libtcpcp.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# The CLI is a user of the shared library like any other: include/tcpcp.h
# and the schema's generated header, nothing of lib/'s.  It finds the
# library beside it (the build) or in ../lib (an install).
$(O)/tcpcp: $(TOOL_OBJ) $(O)/libtcpcp.so
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TOOL_OBJ) -L$(O) -ltcpcp \
		-Wl,-rpath,'$$ORIGIN:$$ORIGIN/../lib'


# Live passing between hosts: `tcpcp passd` and `tcpcp pass` (also under
# their own names, links to tcpcp) and the demo programs.
PASS_BINS = $(O)/tcpcp-passd $(O)/tcpcp-pass $(O)/tcpcp-standby $(O)/tcpcp-dispatcher $(O)/tcpcp-worker $(O)/tcpcp-fileserver
pass: $(PASS_BINS)

$(O)/passd/%.o $(O)/demo/%.o $(O)/restore/%.o: CPPFLAGS += -Ipassd -Itools
$(O)/passd/%.o: passd/%.c include/tcpcp.h $(wildcard passd/*.h) $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(O)/restore/%.o: restore/%.c include/tcpcp.h $(O)/gen/ici.pb-c.h $(wildcard passd/*.h) $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(O)/demo/%.o: demo/%.c include/tcpcp.h passd/common.h $(wildcard demo/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -c -o $@ $<

$(O)/tcpcp-passd $(O)/tcpcp-pass $(O)/tcpcp-standby: $(O)/tcpcp
	ln -sf tcpcp $@

$(O)/tcpcp-%: $(O)/demo/%.o $(O)/demo/demo-lib.o $(O)/passd/common.o $(O)/libtcpcp.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIB_LDLIBS)

# Objects made through the pattern above are intermediate: keep them.
.SECONDARY: $(patsubst demo/%.c,$(O)/demo/%.o,$(wildcard demo/*.c))

$(O)/plugin/%.o: plugin/%.c plugin/plugin.h $(O)/gen/ici.pb-c.h include/tcpcp.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -isystem $(CRIU_INCLUDE) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

# libtcpcp goes in statically: criu finds the plugin, not our library.
# print_on_level and criu_get_image_dir come from the criu binary.
$(PLUGIN_SO): $(PLUGIN_OBJ) $(O)/libtcpcp.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,--exclude-libs,ALL -o $@ $(PLUGIN_OBJ) $(O)/libtcpcp.a $(LIB_LDLIBS) -lnftables

# The checkpoint's live-half packer against protobuf-c's (test/fuzz/
# fuzz_live.c), run by test_checkpoint.py; built on lib's internals.
$(O)/test/live-check: test/fuzz/fuzz_live.c test/fuzz/live_random.c $(O)/libtcpcp.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ilib $(WARN) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^) \
		$(O)/libtcpcp.a $(LIB_LDLIBS)

zdtm:
	$(MAKE) -C test/zdtm O=$(abspath $(O)) CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

$(O)/tcpcp.pc: tcpcp.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

traffic:
	$(MAKE) -C test/traffic O=$(abspath $(O)) CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

# The CRIU plugin goes where CRIU loads plugins without --lib, so that
# runc and podman get it: the plugin directory the criu at hand was built
# with (its --help names it; the project's CRIU: /opt/tcpcp-criu/lib/criu),
# else Debian's /usr/lib/criu.
CRIU           ?= $(or $(TCPCP_CRIU),$(wildcard /opt/tcpcp-criu/sbin/criu),criu)
CRIU_PLUGINDIR ?= $(or $(shell $(CRIU) --help 2>/dev/null | \
	sed -n 's/.*plugin directory (by default \(.*\))/\1/p'),/usr/lib/criu)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -d $(DESTDIR)$(CRIU_PLUGINDIR)
	install -m 755 $(PLUGIN_SO) $(DESTDIR)$(CRIU_PLUGINDIR)/tcpcp_plugin.so
	install -m 755 $(O)/tcpcp $(DESTDIR)$(PREFIX)/bin/tcpcp
	ln -sf tcpcp $(DESTDIR)$(PREFIX)/bin/tcpcp-passd
	ln -sf tcpcp $(DESTDIR)$(PREFIX)/bin/tcpcp-pass
	ln -sf tcpcp $(DESTDIR)$(PREFIX)/bin/tcpcp-standby
	install -m 755 $(O)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtcpcp.so
	install -m 644 $(O)/libtcpcp.a $(DESTDIR)$(LIBDIR)/libtcpcp.a
	install -m 644 include/tcpcp.h $(DESTDIR)$(PREFIX)/include/tcpcp.h
	install -d $(DESTDIR)$(PREFIX)/share/tcpcp
	install -m 644 images/ici.proto $(DESTDIR)$(PREFIX)/share/tcpcp/ici.proto
	install -m 644 plugin/criu.conf $(DESTDIR)$(PREFIX)/share/tcpcp/criu.conf
	install -m 644 $(O)/tcpcp.pc $(DESTDIR)$(LIBDIR)/pkgconfig/tcpcp.pc

# CRIU's options for runc (and podman running runc), which read
# /etc/criu/runc.conf at checkpoint and at restore: an existing file is
# left alone (docs/containers.md says what it needs).
install-runc-conf:
	@if [ -e $(DESTDIR)/etc/criu/runc.conf ]; then \
		echo "$(DESTDIR)/etc/criu/runc.conf exists: left alone; plugin/criu.conf has the lines it needs"; \
	else \
		install -D -m 644 plugin/criu.conf $(DESTDIR)/etc/criu/runc.conf; \
	fi

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
# The plugin is built here too, for its compiler checks, but criu (not
# sanitized) cannot load it: test_criu.py skips on this build, saying so.
asan:
	$(MAKE) O=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined"

# Benchmarks print tables; they are never run as timed tests.
$(O)/bench/%: bench/%.c bench/netns.h $(O)/libtcpcp.so
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< -L$(O) -ltcpcp

$(O)/bench/switch_cost: bench/switch_cost.c $(O)/libtcpcp.so
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -o $@ $< -L$(O) -ltcpcp -lnftables

bench: all $(O)/bench/op_cost $(O)/bench/switch_cost $(O)/bench/ckpt_cost $(O)/bench/resurrect_cost
	bench/op_cost.sh 1 10 100 1000 9000
	LD_LIBRARY_PATH=$(O) $(O)/bench/ckpt_cost 2 5 0 100 10 1
	LD_LIBRARY_PATH=$(O) $(O)/bench/ckpt_cost --receive 2 3 0 100 10 1
	LD_LIBRARY_PATH=$(O) $(O)/bench/resurrect_cost 5 1 10 100 1000
	TCPCP_BUILD=$(abspath $(O)) bench/switch_cost.sh 100 500
	TCPCP_BUILD=$(abspath $(O)) bench/cli_pass_latency.py --passes 20 \
		--csv $(O)/bench/cli_pass_latency.csv --png $(O)/bench/cli_pass_latency.png
	TCPCP_BUILD=$(abspath $(O)) bench/pass_latency.py -n 50
	TCPCP_BUILD=$(abspath $(O)) bench/throughput_recovery.py --runs 3 \
		--csv $(O)/bench/throughput_recovery.csv --png $(O)/bench/throughput_recovery.png
	TCPCP_BUILD=$(abspath $(O)) bench/failover.py --runs 5
	TCPCP_BUILD=$(abspath $(O)) bench/criu_scaling.py \
		--csv $(O)/bench/criu_scaling.csv --png $(O)/bench/criu_scaling.png

# The kernel-patch/ series: a patched 6.12 built (cached in
# /var/cache/tcpcp-kernel), booted under qemu, its tests run inside.
kernel-test: all
	$(MAKE) -C kernel-patch test TCPCP_BUILD=$(abspath $(O))

# The acknowledgment clamp with TCP_ACK_HOLD and with BPF, in the guest.
kernel-bench: all
	$(MAKE) -C kernel-patch bench TCPCP_BUILD=$(abspath $(O))

# libFuzzer targets (clang; see test/fuzz/): ICI decoding and validation,
# pass-protocol frames, and the small text parsers.
FUZZ_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined,fuzzer-no-link
FUZZ_CC    = clang $(CPPFLAGS:$(O)/gen=build-fuzz/gen) -Ilib $(WARN) $(FUZZ_FLAGS) -fsanitize=fuzzer
fuzz:
	$(MAKE) O=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS)" build-fuzz/libtcpcp.a
	$(FUZZ_CC) -o build-fuzz/fuzz-ici test/fuzz/fuzz_ici.c build-fuzz/libtcpcp.a $(LIB_LDLIBS)
	$(FUZZ_CC) -o build-fuzz/fuzz-frame test/fuzz/fuzz_frame.c build-fuzz/libtcpcp.a $(LIB_LDLIBS)
	$(FUZZ_CC) -Ipassd -Itools -o build-fuzz/fuzz-parse test/fuzz/fuzz_parse.c passd/common.c \
		build-fuzz/libtcpcp.a $(LIB_LDLIBS)
	$(FUZZ_CC) -o build-fuzz/fuzz-answer test/fuzz/fuzz_answer.c build-fuzz/libtcpcp.a $(LIB_LDLIBS)
	$(FUZZ_CC) -o build-fuzz/fuzz-live test/fuzz/fuzz_live.c build-fuzz/libtcpcp.a $(LIB_LDLIBS)

# The long run: each fuzzer for FUZZ_LONG seconds (an hour in all by
# default), new inputs kept in build-fuzz/found-*; CI runs slices of them.
FUZZ_LONG ?= 720
fuzz-long: fuzz
	for t in ici frame parse answer live; do \
		c=test/fuzz/corpus; [ $$t = ici ] || c=test/fuzz/corpus-$$t; \
		mkdir -p build-fuzz/found-$$t; \
		build-fuzz/fuzz-$$t -max_total_time=$(FUZZ_LONG) -max_len=8192 \
			-artifact_prefix=build-fuzz/ build-fuzz/found-$$t $$c || exit 1; \
	done

# Soak (test/soak.py): 1,000 passes back and forth under 5 % loss and
# 1,000 short connections passed once each, each part bounded by
# SOAK_MINUTES; prints the numbers.
SOAK_MINUTES ?= 20
soak: all
	TCPCP_BUILD=$(abspath $(O)) test/soak.py --minutes $(SOAK_MINUTES)

# The test command of README.md.
check: all
	TCPCP_BUILD=$(abspath $(O)) pytest-3 -q test/

check-asan: asan
	TCPCP_BUILD=$(abspath build-asan) ASAN_OPTIONS=detect_leaks=1 pytest-3 -q test/

clean:
	rm -rf build build-asan build-fuzz

.PHONY: kernel-test kernel-bench install-runc-conf all traffic pass zdtm install asan fuzz fuzz-long soak bench check check-asan clean
