# tcpcp: TCP connection passing.  Plain make; O= selects the build folder
# so that a sanitizer build can sit beside the normal one.
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
O       ?= build
CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
CPPFLAGS += -D_GNU_SOURCE -Iinclude -I$(O)/gen
LIB_LDLIBS = -lnftables -lcap -lprotobuf-c

SOVERSION = 1
VERSION   = 0.1.0
SONAME    = libtcpcp.so.$(SOVERSION)

LIB_SRC  = $(wildcard lib/*.c)
TOOL_SRC = $(wildcard tools/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(O)/%.o) $(O)/gen/ici.pb-c.o
TOOL_OBJ = $(TOOL_SRC:%.c=$(O)/%.o)

# The CRIU plugin builds against Debian 12's criu-plugin.h (package criu):
# CRIU 3.17 and 4.x both load a plugin built with its ten hooks.
CRIU_INCLUDE ?= /usr/include/criu
PLUGIN_SRC = $(wildcard plugin/*.c)
PLUGIN_OBJ = $(PLUGIN_SRC:%.c=$(O)/%.o)
# Alone in its folder: criu --lib DIR loads every *.so in DIR.
PLUGIN_SO  = $(O)/criu-plugin/tcpcp_plugin.so

all: $(O)/libtcpcp.so $(O)/libtcpcp.a $(O)/tcpcp $(O)/tcpcp.pc traffic $(PLUGIN_SO) zdtm

$(O)/gen/ici.pb-c.c $(O)/gen/ici.pb-c.h: images/ici.proto
	@mkdir -p $(O)/gen
	protoc-c --c_out=$(O)/gen -Iimages $<

$(O)/gen/ici.pb-c.o: $(O)/gen/ici.pb-c.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -c -o $@ $<

$(O)/lib/%.o: lib/%.c $(O)/gen/ici.pb-c.h lib/internal.h include/tcpcp.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(O)/tools/%.o: tools/%.c $(O)/gen/ici.pb-c.h include/tcpcp.h $(wildcard tools/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ilib $(WARN) $(CFLAGS) -c -o $@ $<

$(O)/libtcpcp.so: $(LIB_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) -o $(O)/$(SONAME) $^ $(LIB_LDLIBS)
	ln -sf $(SONAME) $@

$(O)/libtcpcp.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

# The CLI links the archive: it also uses the image helpers that the
# shared library keeps hidden.
$(O)/tcpcp: $(TOOL_OBJ) $(O)/libtcpcp.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(O)/libtcpcp.a $(LIB_LDLIBS)

$(O)/plugin/%.o: plugin/%.c plugin/plugin.h $(O)/gen/ici.pb-c.h lib/internal.h include/tcpcp.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Ilib -isystem $(CRIU_INCLUDE) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

# libtcpcp goes in statically: criu finds the plugin, not our library.
# print_on_level and criu_get_image_dir come from the criu binary.
$(PLUGIN_SO): $(PLUGIN_OBJ) $(O)/libtcpcp.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,--exclude-libs,ALL -o $@ $(PLUGIN_OBJ) $(O)/libtcpcp.a $(LIB_LDLIBS)

zdtm:
	$(MAKE) -C test/zdtm O=$(abspath $(O)) CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

$(O)/tcpcp.pc: tcpcp.pc.in
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

traffic:
	$(MAKE) -C test/traffic O=$(abspath $(O)) CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(O)/tcpcp $(DESTDIR)$(PREFIX)/bin/tcpcp
	install -m 755 $(O)/$(SONAME) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtcpcp.so
	install -m 644 $(O)/libtcpcp.a $(DESTDIR)$(LIBDIR)/libtcpcp.a
	install -m 644 include/tcpcp.h $(DESTDIR)$(PREFIX)/include/tcpcp.h
	install -m 644 $(O)/tcpcp.pc $(DESTDIR)$(LIBDIR)/pkgconfig/tcpcp.pc

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
asan:
	$(MAKE) O=build-asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined"

# The test command of README.md.
check: all
	TCPCP_BUILD=$(abspath $(O)) pytest-3 -q test/

check-asan: asan
	TCPCP_BUILD=$(abspath build-asan) ASAN_OPTIONS=detect_leaks=1 pytest-3 -q test/

clean:
	rm -rf build build-asan

.PHONY: all traffic zdtm install asan check check-asan clean
