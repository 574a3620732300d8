// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: whatever bytes arrive as an ICI, decoding and
 * validating them must neither crash nor leak, a rejection must come with
 * a one-line message, and an accepted image must survive re-encoding
 * unchanged — so a hostile image can only ever be refused, never reach
 * the kernel half-checked.
 *
 *     make fuzz && build-fuzz/fuzz-ici -max_total_time=60 NEW_DIR test/fuzz/corpus
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void check_message(void)
{
	const char *msg = tcpcp_strerror();

	if (!msg || !*msg || strchr(msg, '\n'))
		abort();
}

static void check_roundtrip(const TcpcpIci *ici)
{
	size_t len1, len2;
	void *img1 = tcpcp_image_encode(ici, &len1);
	TcpcpIci *again;
	void *img2;

	if (!img1)
		abort();
	again = tcpcp_image_decode(img1, len1);
	if (!again)
		abort();	/* we wrote an image we refuse to read */
	img2 = tcpcp_image_encode(again, &len2);
	if (!img2 || len1 != len2 || memcmp(img1, img2, len1))
		abort();
	tcpcp_ici__free_unpacked(again, NULL);
	free(img1);
	free(img2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	TcpcpIci *ici = tcpcp_image_decode(data, size);

	if (!ici) {
		check_message();
		return 0;
	}
	if (tcpcp_validate(data, size))
		abort();	/* the two entry points disagree */
	check_roundtrip(ici);
	tcpcp_ici__free_unpacked(ici, NULL);
	return 0;
}
