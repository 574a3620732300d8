// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: the small text parsers that read what a user or
 * another host wrote.  The first input byte picks one, the rest is the
 * text:
 *
 *   0  a switch spec (tcpcp_switch_new: route:, flow:, arp:; exec: refused)
 *   1  a pre-shared key file (tcpcp_pass_key_load)
 *   2  /etc/tcpcp.conf (read by tcpcp_need_create_caps and
 *      tcpcp_need_carry_policy, via $TCPCP_CONFIG)
 *   3  an ADDR:PORT of tcpcp-pass and tcpcp-passd (passd/common.c)
 *
 * Each must accept or refuse with a one-line message: no crash, no leak.
 * Files are memfds, named through /proc/self/fd.
 *
 *     make fuzz && build-fuzz/fuzz-parse -max_total_time=60 NEW_DIR test/fuzz/corpus-parse
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "common.h"

const char *prog = "fuzz-parse";	/* passd/common.c logs under it */

static void check_message(void)
{
	const char *msg = tcpcp_strerror();

	if (!msg || !*msg || strchr(msg, '\n'))
		abort();
}

static void as_file(const uint8_t *data, size_t size, char path[64])
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0 || fchmod(fd, 0600) || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	snprintf(path, 64, "/proc/self/fd/%d", fd);
}

static void close_file(const char *path)
{
	close(atoi(path + strlen("/proc/self/fd/")));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[TCPCP_PASS_KEY_LEN];
	struct sockaddr_storage ss;
	struct tcpcp_switch *sw;
	char path[64], *text;
	socklen_t len;

	if (size < 1 || size > 4096)
		return 0;
	text = strndup((const char *)data + 1, size - 1);
	if (!text)
		abort();
	switch (data[0] % 4) {
	case 0:
		sw = tcpcp_switch_new(text);
		if (!sw)
			check_message();
		tcpcp_switch_free(sw);
		break;
	case 1:
		as_file(data + 1, size - 1, path);
		if (tcpcp_pass_key_load(path, key))
			check_message();
		close_file(path);
		break;
	case 2:
		as_file(data + 1, size - 1, path);
		setenv("TCPCP_CONFIG", path, 1);
		tcpcp_clear_error();
		if (tcpcp_need_create_caps())
			check_message();
		tcpcp_clear_error();
		if (tcpcp_need_carry_policy())
			check_message();
		close_file(path);
		break;
	case 3:
		parse_hostport(text, &ss, &len);
		break;
	}
	free(text);
	return 0;
}
