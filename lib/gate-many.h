/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_GATE_MANY_H
#define TCPCP_GATE_MANY_H

#include "internal.h"

/* gate-many.c: tcpcp_gate_linger() for @n connections of one netns. */
int tcpcp_gate_linger_many(int s, const struct tcpcp_tuple *t, size_t n, unsigned int secs);

#endif
