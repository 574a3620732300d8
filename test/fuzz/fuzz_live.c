// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * libFuzzer target: the checkpoint's hand-written packer of the live
 * half (lib/live-pack.c) writes exactly the bytes protobuf-c writes, for
 * any values.  The input only chooses values: every field the generated
 * descriptors list (tcpcp_ici_live and the messages in it) is filled
 * through the descriptor, so a field added to images/ici.proto and not
 * to the packer makes the two differ.
 *
 *     make fuzz && build-fuzz/fuzz-live -max_total_time=60 NEW_DIR test/fuzz/corpus-live
 *
 * test/fuzz/live_random.c runs it without libFuzzer (test_checkpoint.py).
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_MESSAGES	8
#define MAX_BYTES	300

struct input {
	const uint8_t *p;
	size_t left;
	unsigned int filled;	/* fields given a value, for the driver */
};

static uint8_t take(struct input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->p++;
}

/* A value of 0 to @bits bits, each width as likely: varints of every
 * length. */
static uint64_t value(struct input *in, unsigned int bits)
{
	unsigned int width = take(in) % (bits + 1);
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < 8; i++)
		v = v << 8 | take(in);
	return width == 64 ? v : v & ((1ull << width) - 1);
}

struct pool {
	union {
		TcpcpWindow w;
		TcpcpCongestion c;
		TcpcpIciLive l;
		ProtobufCMessage m;
	} msg[MAX_MESSAGES];
	unsigned int used;
	uint8_t bytes[MAX_BYTES];
};

static void fill(const ProtobufCMessageDescriptor *d, void *m, struct input *in,
		 struct pool *pool)
{
	unsigned int i;

	if (d->sizeof_message > sizeof(pool->msg[0]))
		abort();	/* a message the pool does not know */
	protobuf_c_message_init(d, m);
	for (i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		void *member = (char *)m + f->offset;
		bool present = f->label == PROTOBUF_C_LABEL_REQUIRED || take(in) & 1;

		if (f->label == PROTOBUF_C_LABEL_REPEATED)
			abort();	/* the packer writes no repeated field */
		if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_MESSAGE)
			*(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = present;
		switch (f->type) {
		case PROTOBUF_C_TYPE_UINT32:
			*(uint32_t *)member = (uint32_t)value(in, 32);
			break;
		case PROTOBUF_C_TYPE_UINT64:
			*(uint64_t *)member = value(in, 64);
			break;
		case PROTOBUF_C_TYPE_BYTES: {
			ProtobufCBinaryData *b = member;

			b->len = value(in, 16) % (MAX_BYTES + 1);
			b->data = b->len ? pool->bytes : NULL;
			break;
		}
		case PROTOBUF_C_TYPE_MESSAGE: {
			ProtobufCMessage *sub = NULL;

			if (present) {
				if (pool->used == MAX_MESSAGES)
					abort();
				sub = &pool->msg[pool->used++].m;
				fill(f->descriptor, sub, in, pool);
			}
			*(ProtobufCMessage **)member = sub;
			break;
		}
		default:
			abort();	/* a type the packer does not write */
		}
		in->filled += present;
	}
}

/* How many fields the last input filled, for live_random.c. */
unsigned int live_fields_filled;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct pool pool;
	struct input in = { data, size, 0 };
	TcpcpIciLive *l;
	static uint8_t ours[2048], theirs[2048];
	size_t n, i;

	pool.used = 1;
	for (i = 0; i < MAX_BYTES; i++)
		pool.bytes[i] = (uint8_t)(i * 7);
	l = &pool.msg[0].l;
	fill(&tcpcp_ici_live__descriptor, l, &in, &pool);
	live_fields_filled = in.filled;
	n = tcpcp_live_pack(l, NULL);
	if (n != tcpcp_ici_live__get_packed_size(l) || n > sizeof(ours))
		abort();
	memset(ours, 0xa5, sizeof(ours));
	if (tcpcp_live_pack(l, ours) != n || tcpcp_ici_live__pack(l, theirs) != n ||
	    memcmp(ours, theirs, n) || ours[n] != 0xa5)
		abort();
	return 0;
}
