/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Holding a process still while its socket is taken.
 *
 * Repair mode does not stop the socket's owner: while tcpcp selects a
 * queue to read (TCP_REPAIR_QUEUE), a send() from the application is
 * *accepted* into that queue — into the receive queue, even — and a
 * send() blocked on buffer space goes on appending to the write queue.
 * Either corrupts the ICI.  So every thread of the owner is stopped with
 * PTRACE_SEIZE + PTRACE_INTERRUPT (as CRIU does): unlike SIGSTOP, the
 * application and its parent see nothing but a restarted system call.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#include "freeze.h"

#define FREEZE_PASSES 4		/* threads may appear while we stop others */

static int frozen_has(const struct frozen *f, pid_t tid)
{
	for (int i = 0; i < f->n; i++)
		if (f->tid[i] == tid)
			return 1;
	return 0;
}

static int stop_thread(struct frozen *f, pid_t tid)
{
	int status;

	if (f->n == FROZEN_MAX)
		return -E2BIG;
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL))
		return errno == ESRCH ? 0 : -errno;	/* ESRCH: it just exited */
	f->tid[f->n++] = tid;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL))
		return errno == ESRCH ? 0 : -errno;
	if (waitpid(tid, &status, __WALL) < 0)
		return -errno;
	return 0;
}

/* One pass over /proc/PID/task; *added counts threads new to us. */
static int stop_pass(struct frozen *f, pid_t pid, int *added)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int err = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -errno;
	*added = 0;
	while (!err && (d = readdir(dir))) {
		pid_t tid = (pid_t)atoi(d->d_name);

		if (tid <= 0 || frozen_has(f, tid))
			continue;
		err = stop_thread(f, tid);
		(*added)++;
	}
	closedir(dir);
	return err;
}

/* 0, or -errno with nothing left stopped; -EAGAIN: it kept making threads. */
int freeze(struct frozen *f, pid_t pid)
{
	int err = 0, added = 1;

	f->n = 0;
	for (int i = 0; i < FREEZE_PASSES && added && !err; i++)
		err = stop_pass(f, pid, &added);
	if (!err && added)
		err = -EAGAIN;
	if (err)
		thaw(f);
	return err;
}

void thaw(struct frozen *f)
{
	for (int i = 0; i < f->n; i++)
		ptrace(PTRACE_DETACH, f->tid[i], NULL, NULL);
	f->n = 0;
}
