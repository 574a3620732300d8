/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Every thread of a process stopped, invisibly to it (ptrace), while its
 * socket is captured: see freeze.c for why.  Shared by tcpcp and passd. */
#ifndef TCPCP_FREEZE_H
#define TCPCP_FREEZE_H

#include <sys/types.h>

#define FROZEN_MAX 4096

struct frozen {
	pid_t tid[FROZEN_MAX];
	int n;
};

int freeze(struct frozen *f, pid_t pid);
void thaw(struct frozen *f);

#endif
