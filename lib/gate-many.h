/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_GATE_MANY_H
#define TCPCP_GATE_MANY_H

#include "internal.h"

/* gate-many.c, for @n connections of @s's netns: tcpcp_gate_linger(), and
 * closing for @secs (open again by itself then, or by tcpcp_gate_open*). */
int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs);
int tcpcp_gate_close_many_for(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs);
/* tcpcp_gate_open_many(), then @opened(@arg) as soon as the gate is open. */
int tcpcp_gate_open_many_then(int s, const struct tcpcp_tuple *t, size_t n,
			      void (*opened)(void *arg), void *arg);
/* Frees what the calls above keep for the next one: call it once the
 * time-critical part is over. */
void tcpcp_gate_many_release(void);

#endif
