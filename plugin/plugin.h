/* SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef TCPCP_PLUGIN_H
#define TCPCP_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Images this plugin adds to CRIU's image directory. */
#define IMG_FMT		"tcpcp-%d-%d.img"	/* NSpid, fd number */
#define IMG_FAILED	"tcpcp-FAILED"		/* a capture failed: its reason */
/* After a dump whose tasks CRIU kills, the origin keeps dropping their
 * connections' segments this long: the restore (here or elsewhere) and the
 * traffic switch must happen before, and nothing stays for good. */
#define DUMP_LINGER_S	300
/* The largest image read back: libtcpcp refuses larger ICIs anyway
 * (TCPCP_MAX_PAYLOAD inside it), this bounds the read. */
#define IMG_MAX		(1u << 30)

/* CRIU's logger (criu/log.c), exported by the criu binary to plugins.
 * criu-log.h needs headers CRIU does not install, so declare it here;
 * the levels are CRIU's LOG_ERROR..LOG_DEBUG, stable since 2013. */
extern void print_on_level(unsigned int loglevel, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
#define pr_err(fmt, ...)  print_on_level(1, "tcpcp: Error: " fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) print_on_level(2, "tcpcp: Warn: " fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) print_on_level(3, "tcpcp: " fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) print_on_level(4, "tcpcp: " fmt, ##__VA_ARGS__)

/* proc.c */
/* CLOCK_MONOTONIC in milliseconds, for the phase times in the log. */
double now_ms(void);
int proc_nspid(pid_t pid, pid_t *nspid);
int proc_tracer(pid_t pid, pid_t *tracer);
int pidfd_open_pid(pid_t pid);
int pidfd_take(int pidfd, int fd);
int above_fd_setsize(int s);
int sock_netns(int s, ino_t *ns);
int sock_netns_self(ino_t *ns);
/* @fn(@arg) in a thread that entered the netns of @nsfd; its result, or
 * -errno if the thread could not start or enter. */
int in_netns(int nsfd, int (*fn)(void *arg), void *arg);
int netns_socket(int nsfd);
int netns_socket_of(pid_t pid);
int inherited_netns(int *fds, ino_t *inos, int max);

/* flags.c */
int flags_check(size_t n);
/* Environment switch @name: unset or @off, *@on false; @on_word, true;
 * anything else one line naming both words (@what says what @on_word
 * does) and -1. */
int env_switch(const char *name, const char *on_word, const char *off_word,
	       const char *what, bool *on);
/* CRIU's opts.final_state (criu/include/cr_options.h): what CRIU does
 * with the tasks after a successful dump; -1 if it cannot be read. */
#define CRIU_TASK_ALIVE		1
#define CRIU_TASK_DEAD		2
#define CRIU_TASK_STOPPED	3
int criu_final_state(void);

/* names.c: "10.0.0.1:80 -> 10.0.0.2:4000" of a socket; an image's ends
 * (-1 and tcpcp_strerror() if it is unusable). */
void sock_name(int s, char *buf, size_t len);
struct tcpcp_ends;
int image_ends(const void *img, size_t len, struct tcpcp_ends *e);

/* ownns.c: the gates of namespaces that die with the dumped tasks open
 * (and their links go) once every task of @pids has exited, in a helper
 * process that outlives CRIU (at most @secs). */
struct tcpcp_ends;
struct ns_group {
	int s;				/* a socket in the namespace */
	const struct tcpcp_ends *e;	/* its gated connections */
	size_t n;
};
int release_after_tasks(const pid_t *pids, size_t npid, const struct ns_group *g, size_t ng,
			unsigned int secs);

/* nftlock.c: the connections @e (of the namespace of socket @s) dropped by
 * a table of that namespace's own ruleset, which CRIU dumps and restores
 * with a namespace it owns; and that table removed (0 if there was none). */
int nftlock_add(int s, const struct tcpcp_ends *e, size_t n);
int nftlock_remove(int s);

/* CRIU's view of a namespace at dump: marked external (--external
 * net[INODE]:KEY, as runtimes mark a container's named one), so that it
 * is not dumped; also true if CRIU cannot say, so that the plugin then
 * leaves the namespace as it is. */
bool criu_netns_external(ino_t ns);

/* dump.c / restore.c */
int dump_lock(void);
void dump_finish(int criu_ret);
int restore_init(void);
int restore_task(int pid);
int restore_fini(bool criu_ok);

#endif
