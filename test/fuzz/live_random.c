// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * fuzz_live.c without libFuzzer, for the test suite (test_checkpoint.py)
 * and the ASan build: COUNT inputs from a generator with a fixed seed.
 * Aborts where the two packers differ; prints how many fields the
 * fullest input filled, so that the test can tell that all were.
 *
 *     build/test/live-check [COUNT]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern unsigned int live_fields_filled;

/* xorshift64 */
static uint64_t next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

int main(int argc, char **argv)
{
	unsigned long count = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000, i;
	uint64_t x = 0x9e3779b97f4a7c15ull;
	unsigned int most = 0;
	uint8_t buf[512];
	size_t len, j;

	for (i = 0; i < count; i++) {
		len = next(&x) % sizeof(buf);
		for (j = 0; j < len; j++)
			buf[j] = (uint8_t)(next(&x) >> 32);
		LLVMFuzzerTestOneInput(buf, len);
		if (live_fields_filled > most)
			most = live_fields_filled;
	}
	printf("%lu inputs, both packers agree, at most %u fields filled\n", count, most);
	return 0;
}
