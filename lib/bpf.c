/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one BPF loader: tcpcp's BPF objects, one set per network namespace,
 * shared by every process that uses them (CLI, CRIU plugin, passd,
 * library users) and by every feature that needs one (the gate today).
 *
 * Where they live.  BPF objects outlive the process that loads them only
 * when pinned, in tcpcp's BPF file system /run/tcpcp/bpf.  The programs
 * and the gate map (every namespace's entries, the namespace's cookie in
 * the key) are loaded once for the host and pinned at its top: loading
 * costs 20 ms (BTF parsing, verification), and attached only in tcpcp's
 * own empty namespace (the anchor, below) they hold nothing.  A namespace
 * whose gate has entries gets a folder, net-<cookie>/ (SO_NETNS_COOKIE:
 * never reused while the machine runs, unlike an inode number), with one
 * netfilter link per hook: attached in microseconds.  (A map of
 * per-namespace maps was tried first: changing one from user space waits
 * for an RCU grace period, 10-40 ms here.)
 *
 * Which bpffs.  `ip netns exec` gives its command a private mount
 * namespace with a fresh /sys, where /sys/fs/bpf is not the host's, and
 * whatever it mounts vanishes with it.  So tcpcp has a bpffs of its own
 * at /run/tcpcp/bpf (/run is the same inside and out), mounts it when
 * first used in the host's mount namespace, and refuses, saying so,
 * where a mount would be private (`tcpcp gate setup` mounts it there).
 *
 * Lifetime.  A pinned netfilter link holds a reference on its network
 * namespace: while its links are pinned the namespace cannot go away,
 * even after `ip netns del`.  So the links are removed as soon as the
 * namespace's gate is empty (isolate.c), a lingering entry that has run
 * out counts as empty, and attaching a namespace retires every other
 * whose gate is empty by now.  `tcpcp gate flush` removes one by hand,
 * `tcpcp gate unload` the host's programs once no namespace has a gate.
 * Links are detached before they are unpinned: an unpinned link is
 * released only after an RCU grace period, and a new one at the same
 * hook and priority would meanwhile fail with EBUSY.
 *
 * Locking.  An flock on the tcpcp folder serialises every loader, user
 * and remover of any namespace's objects, so a process never adds to a
 * gate that another one is removing.  Taking it costs a system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/magic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "bpf/gate.h"

/* Linux 6.4's netfilter programs, newer than Debian 12's headers and
 * libbpf 1.1 (which loads them once told their type). */
#define PROG_TYPE_NETFILTER	32
#define ATTACH_NETFILTER	45
#define NFPROTO_IPV4		2
#define NFPROTO_IPV6		10
#define NF_INET_LOCAL_IN	1
#define NF_INET_LOCAL_OUT	3
/* Before conntrack (-200), where the nftables gate sat. */
#define GATE_PRIORITY		(-300)

#define RUN_DIR		"/run/tcpcp"
#define BPFFS		RUN_DIR "/bpf"
#define GATE_PIN	"gate"
#define CARRY_PIN	"carry"
#define CARRY_OPS	"tcpcp_carry_ops"	/* the congestion control's map */
#define CLAMP_PIN	"clamp"
#define CLAMP_PROG	"tcpcp_clamp_ack"
#define SKIP_PIN	"skip"
#define SKIP_SOCKS_PIN	"skip_socks"		/* the sockhash the program is attached to */
#define SKIP_PROG	"tcpcp_skip_out"
#define LINK_TYPE_NETFILTER	10	/* enum bpf_link_type, Linux 6.4 */

/* The object file, built by clang from bpf/gate.bpf.c (bpf-obj.S). */
extern const char tcpcp_bpf_obj[], tcpcp_bpf_obj_end[];

static const struct {
	const char *prog;	/* also the link's pin name */
	unsigned int pf, hook;
} hooks[] = {
	{ "tcpcp_in4", NFPROTO_IPV4, NF_INET_LOCAL_IN },
	{ "tcpcp_out4", NFPROTO_IPV4, NF_INET_LOCAL_OUT },
	{ "tcpcp_in6", NFPROTO_IPV6, NF_INET_LOCAL_IN },
	{ "tcpcp_out6", NFPROTO_IPV6, NF_INET_LOCAL_OUT },
};
#define NHOOKS (sizeof(hooks) / sizeof(hooks[0]))

static bool is_bpffs(const char *path)
{
	struct statfs fs;

	return !statfs(path, &fs) && fs.f_type == BPF_FS_MAGIC;
}

/* `ip netns exec` runs its command in a mount namespace of its own, which
 * dies with it: a bpffs mounted there would take the gate along.  Its
 * parent, the shell, is still in the host's. */
static bool private_mount_ns(void)
{
	struct stat own, parent;
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", (int)getppid());
	if (stat("/proc/self/ns/mnt", &own) || stat(path, &parent))
		return false;	/* cannot tell: take it as the host's */
	return own.st_ino != parent.st_ino || own.st_dev != parent.st_dev;
}

/* The flock on /run/tcpcp keeps two first users from stacking two bpffs
 * instances, the upper one hiding the other's pins. */
static int ensure_bpffs(bool anywhere)
{
	int fd, err = 0;

	if (is_bpffs(BPFFS))
		return 0;
	if (!anywhere && private_mount_ns())
		return tcpcp_fail(ENOENT, "no BPF file system at " BPFFS ", and this process runs "
				  "in a private mount namespace (ip netns exec?) where one would "
				  "vanish with it: run `tcpcp gate setup` once outside");
	if ((mkdir(RUN_DIR, 0755) && errno != EEXIST) || (mkdir(BPFFS, 0700) && errno != EEXIST))
		return tcpcp_fail(errno, "cannot create " BPFFS ": %s", strerror(errno));
	fd = open(RUN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX))
		err = errno;
	else if (!is_bpffs(BPFFS) && mount("bpf", BPFFS, "bpf", 0, "mode=0700"))
		err = errno;
	if (fd >= 0)
		close(fd);
	if (err)
		return tcpcp_fail(err, "cannot mount the BPF file system at " BPFFS ": %s",
				  strerror(err));
	return 0;
}

int tcpcp_bpf_setup(void)
{
	return ensure_bpffs(true);
}

static int root_open(struct tcpcp_bpf *b)
{
	int err;

	if ((err = ensure_bpffs(false)))
		return err;
	b->lock = open(BPFFS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->lock < 0 || flock(b->lock, LOCK_EX))
		return tcpcp_fail(errno, "cannot lock %s: %s", BPFFS, strerror(errno));
	return 0;
}

static void pin_path(const char *dir, const char *name, char *buf, size_t len)
{
	/* Paths are short (a cookie under a fixed root); never truncated. */
	if ((size_t)snprintf(buf, len, "%s/%s", dir, name) >= len)
		buf[0] = '\0';
}

/* Detach, then unpin: the namespace's hooks are gone when this returns.
 * Nothing pinned there (a family the gate never had): nothing to do. */
static void unpin_link(const char *path)
{
	int fd = bpf_obj_get(path);

	if (fd < 0 && errno == ENOENT)
		return;
	if (fd >= 0) {
		bpf_link_detach(fd);
		close(fd);
	}
	unlink(path);
}

/* The pinned map must be ours, as this version builds it: a stale pin
 * from another version would be read with the wrong key layout. */
static int check_map(const char *path, int fd, __u32 type, __u32 key_size, __u32 value_size)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);

	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return tcpcp_fail(errno, "cannot inspect %s: %s", path, strerror(errno));
	if (info.type != type || info.key_size != key_size || info.value_size != value_size)
		return tcpcp_fail(EEXIST, "%s is not a map of this tcpcp (type %u, key %u, "
				  "value %u bytes): remove it with `tcpcp gate unload`",
				  path, info.type, info.key_size, info.value_size);
	return 0;
}

/* Whether the namespace's hooks for @pf are attached (NFPROTO_IPV4 or
 * _IPV6; 0: for either).  A family's two links are pinned input first,
 * and detach_dir() unpins them in reverse, so its output link stands for
 * both (an interrupted attach or detach lacks it); it must be a netfilter
 * link: anything else there would leave the gate open. */
static int attached_pf(const char *dir, unsigned int pf)
{
	struct bpf_link_info info;
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	size_t i;
	int fd, err = 0;

	if (!pf) {
		int on = attached_pf(dir, NFPROTO_IPV4);

		return on ? on : attached_pf(dir, NFPROTO_IPV6);
	}
	for (i = NHOOKS; i-- > 0;)
		if (hooks[i].pf == pf)
			break;
	pin_path(dir, hooks[i].prog, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return errno == ENOENT ? 0 : tcpcp_fail(errno, "cannot open %s: %s", path,
							strerror(errno));
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) || info.type != LINK_TYPE_NETFILTER)
		err = tcpcp_fail(EEXIST, "%s is not a netfilter link of tcpcp's: "
				 "remove it with `tcpcp gate flush`", path);
	close(fd);
	return err ? err : 1;
}

static int attached(const char *dir)
{
	return attached_pf(dir, 0);
}

/* Unpin @pf's links (0: all), output first. */
static void detach_pf(const char *dir, unsigned int pf)
{
	char path[PATH_MAX];
	size_t i;

	for (i = NHOOKS; i-- > 0;) {
		if (pf && hooks[i].pf != pf)
			continue;
		pin_path(dir, hooks[i].prog, path, sizeof(path));
		unpin_link(path);
	}
}

static void detach_dir(const char *dir)
{
	detach_pf(dir, 0);
	rmdir(dir);
}

static int link_netfilter(int prog, unsigned int pf, unsigned int hook)
{
	/* union bpf_attr's link_create with its netfilter member (6.4). */
	struct {
		__u32 prog_fd, target_fd, attach_type, flags;
		__u32 pf, hooknum;
		__s32 priority;
		__u32 nf_flags;
		__u64 pad[4];
	} attr;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = (__u32)prog;
	attr.attach_type = ATTACH_NETFILTER;
	attr.pf = pf;
	attr.hooknum = hook;
	attr.priority = GATE_PRIORITY;
	return (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
}

/* libbpf prints through a global callback; the library never prints, so
 * the last line it would have printed is kept for the error message. */
static __thread char libbpf_said[160];

static int keep_libbpf_line(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[sizeof(libbpf_said)];

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	if (*line)
		memcpy(libbpf_said, line, sizeof(line));
	return 0;
}

static int pin_fd(int fd, const char *dir, const char *name)
{
	char path[PATH_MAX];

	pin_path(dir, name, path, sizeof(path));
	if (bpf_obj_pin(fd, path))
		return tcpcp_fail(errno, "cannot pin %s: %s", path, strerror(errno));
	return 0;
}

/* A BPF object of tcpcp's, loaded once for the host and pinned at the
 * top of the folder: its programs under their names, its map under
 * @map_pin.  The map goes last (or a struct_ops map, registered, after
 * it): it is what users look for. */
struct object {
	const char *what;			/* for messages */
	const char *start, *end;		/* the object file */
	bool netfilter;				/* programs libbpf 1.1 cannot type */
	const char *progs[NHOOKS];		/* pinned under these names */
	const char *map, *map_pin;
	__u32 map_type, key_size;		/* what its map must be */
	const char *ops;			/* a struct_ops map, registered */
	/* A sockhash that progs[0] (sk_msg) is attached to, pinned here. */
	const char *socks, *socks_pin;
};

extern const char tcpcp_carry_obj[], tcpcp_carry_obj_end[];
extern const char tcpcp_clamp_obj[], tcpcp_clamp_obj_end[];
extern const char tcpcp_skip_obj[], tcpcp_skip_obj_end[];

static const struct object gate_obj = {
	"gate", tcpcp_bpf_obj, tcpcp_bpf_obj_end, true,
	{ "tcpcp_in4", "tcpcp_out4", "tcpcp_in6", "tcpcp_out6" }, "tcpcp_gate", GATE_PIN,
	BPF_MAP_TYPE_HASH, sizeof(struct tcpcp_gate_key), NULL, NULL, NULL,
};
static const struct object carry_obj = {
	"congestion carry-over", tcpcp_carry_obj, tcpcp_carry_obj_end, false,
	{ NULL }, "tcpcp_carry", CARRY_PIN,
	BPF_MAP_TYPE_SK_STORAGE, sizeof(int), CARRY_OPS, NULL, NULL,
};
static const struct object clamp_obj = {
	"acknowledgment clamp", tcpcp_clamp_obj, tcpcp_clamp_obj_end, false,
	{ CLAMP_PROG }, "tcpcp_clamp", CLAMP_PIN,
	BPF_MAP_TYPE_SK_STORAGE, sizeof(int), NULL, NULL, NULL,
};
static const struct object skip_obj = {
	"output skip", tcpcp_skip_obj, tcpcp_skip_obj_end, false,
	{ SKIP_PROG }, "tcpcp_skip", SKIP_PIN,
	BPF_MAP_TYPE_SK_STORAGE, sizeof(int), NULL, "tcpcp_skip_socks", SKIP_SOCKS_PIN,
};

/* Unregister a struct_ops map: its one element is the registration,
 * which holds the map, pinned or not, until deleted. */
static void unregister_ops(int fd)
{
	int zero = 0;

	bpf_map_delete_elem(fd, &zero);
}

static void unpin_ops(const struct object *o)
{
	char path[PATH_MAX];
	int fd;

	pin_path(BPFFS, o->ops, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd >= 0) {
		unregister_ops(fd);
		close(fd);
	}
	unlink(path);
}

static void unpin_object(const struct object *o)
{
	char path[PATH_MAX];
	size_t i;

	pin_path(BPFFS, o->map_pin, path, sizeof(path));
	unlink(path);
	if (o->ops)
		unpin_ops(o);
	if (o->socks) {		/* the attachment goes with the map */
		pin_path(BPFFS, o->socks_pin, path, sizeof(path));
		unlink(path);
	}
	for (i = 0; i < NHOOKS && o->progs[i]; i++) {
		pin_path(BPFFS, o->progs[i], path, sizeof(path));
		unlink(path);
	}
}

/* The struct_ops map named @name that some earlier load registered and
 * nobody pinned any more (its bpffs unmounted): found by walking the
 * host's maps, so that it can be unregistered; -1 if none. */
static int orphan_ops(const char *name)
{
	struct bpf_map_info info;
	__u32 id = 0, len;
	int fd;

	while (!bpf_map_get_next_id(id, &id)) {
		if ((fd = bpf_map_get_fd_by_id(id)) < 0)
			continue;
		len = sizeof(info);
		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len) &&
		    info.type == BPF_MAP_TYPE_STRUCT_OPS && !strcmp(info.name, name))
			return fd;
		close(fd);
	}
	return -1;
}

/* Register @m's struct_ops (libbpf fills in the programs) and pin the
 * map, which stays registered after the loader exits: libbpf's link
 * would unregister it when destroyed, so it is disconnected first. */
static int register_ops(const struct object *o, struct bpf_map *m)
{
	struct bpf_link *link = bpf_map__attach_struct_ops(m);
	int stale;

	if (!link && errno == EEXIST && (stale = orphan_ops(o->ops)) >= 0) {
		unregister_ops(stale);	/* a lost earlier load's: ours */
		close(stale);
		link = bpf_map__attach_struct_ops(m);
	}
	if (!link)
		return tcpcp_fail(errno, "cannot register the %s congestion control (%s): %s",
				  TCPCP_CARRY_CA, o->what,
				  *libbpf_said ? libbpf_said : strerror(errno));
	bpf_link__disconnect(link);
	bpf_link__destroy(link);
	if (pin_fd(bpf_map__fd(m), BPFFS, o->ops)) {
		unregister_ops(bpf_map__fd(m));
		return -errno;
	}
	return 0;
}

/* The sk_msg program on its sockhash, which keeps it attached for as
 * long as the map lives (pinned). */
static int attach_socks(const struct object *o, struct bpf_object *obj)
{
	int map = bpf_map__fd(bpf_object__find_map_by_name(obj, o->socks));
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, o->progs[0]));

	if (bpf_prog_attach(prog, map, BPF_SK_MSG_VERDICT, 0))
		return tcpcp_fail(errno, "cannot attach tcpcp's %s program to its sockhash: %s",
				  o->what, strerror(errno));
	return pin_fd(map, BPFFS, o->socks_pin);
}

int tcpcp_bpf_hushed(int (*fn)(void *arg), void *arg)
{
	libbpf_print_fn_t old = libbpf_set_print(keep_libbpf_line);
	int err = fn(arg);

	libbpf_set_print(old);
	return err;
}

static int load_object(const struct object *o)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = "tcpcp");
	libbpf_print_fn_t old = libbpf_set_print(keep_libbpf_line);
	struct bpf_object *obj;
	struct bpf_program *p;
	size_t i;
	int err = 0;

	unpin_object(o);
	libbpf_said[0] = '\0';
	obj = bpf_object__open_mem(o->start, (size_t)(o->end - o->start), &opts);
	if (!obj) {
		err = tcpcp_fail(errno, "cannot open tcpcp's BPF object (%s): %s", o->what,
				 libbpf_said);
		goto out;
	}
	bpf_object__for_each_program(p, obj) {
		if (!o->netfilter)
			continue;
		bpf_program__set_type(p, PROG_TYPE_NETFILTER);
		bpf_program__set_expected_attach_type(p, ATTACH_NETFILTER);
	}
	if (bpf_object__load(obj)) {
		err = tcpcp_fail(errno, "cannot load tcpcp's BPF programs (%s; Linux %s with BTF, "
				 "CAP_BPF): %s", o->what, o->netfilter ? "6.4+" : "6.0+",
				 *libbpf_said ? libbpf_said : strerror(errno));
		goto out;
	}
	for (i = 0; !err && i < NHOOKS && o->progs[i]; i++)
		err = pin_fd(bpf_program__fd(bpf_object__find_program_by_name(obj, o->progs[i])),
			     BPFFS, o->progs[i]);
	if (!err && o->socks)
		err = attach_socks(o, obj);
	if (!err)		/* the map last: with it pinned, the object is whole */
		err = pin_fd(bpf_map__fd(bpf_object__find_map_by_name(obj, o->map)), BPFFS,
			     o->map_pin);
	if (!err && o->ops)
		err = register_ops(o, bpf_object__find_map_by_name(obj, o->ops));
out:
	if (err)
		unpin_object(o);
	bpf_object__close(obj);
	libbpf_set_print(old);
	return err;
}

/* The map of object @o, loaded for the host first if @load and absent
 * (-ENOENT, no message, if absent and not @load); the caller holds the
 * root's lock. */
static int open_host(const struct object *o, __u32 value_size, bool load)
{
	char path[PATH_MAX];
	int fd, err;

	if (o->ops) {		/* pinned last: without it, nothing is */
		pin_path(BPFFS, o->ops, path, sizeof(path));
		if (access(path, F_OK) && load && (err = load_object(o)))
			return err;
	}
	pin_path(BPFFS, o->map_pin, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0 && errno == ENOENT && !load)
		return -ENOENT;
	if (fd < 0 && errno == ENOENT) {
		if ((err = load_object(o)))
			return err;
		fd = bpf_obj_get(path);
	}
	if (fd < 0)
		return tcpcp_fail(errno, "cannot open %s: %s", path, strerror(errno));
	if ((err = check_map(path, fd, o->map_type, o->key_size, value_size))) {
		close(fd);
		return err;
	}
	return fd;
}

/* Attach the host's programs for one family in the socket's network
 * namespace (a netfilter link attaches where its creator is) and pin the
 * links. */
struct where {
	const char *dir;
	unsigned int pf;
};

static int link_all(void *arg)
{
	const struct where *w = arg;
	char path[PATH_MAX];
	size_t i;
	int err = 0;

	for (i = 0; !err && i < NHOOKS; i++) {
		int prog, link;

		if (hooks[i].pf != w->pf)
			continue;
		pin_path(BPFFS, hooks[i].prog, path, sizeof(path));
		prog = bpf_obj_get(path);
		link = prog >= 0 ? link_netfilter(prog, hooks[i].pf, hooks[i].hook) : -1;
		if (link < 0)
			err = tcpcp_fail(errno, "cannot attach %s to netfilter "
					 "(BPF netfilter links need Linux 6.4 and CAP_BPF): %s",
					 hooks[i].prog, strerror(errno));
		else
			err = pin_fd(link, w->dir, hooks[i].prog);
		if (link >= 0)
			close(link);
		if (prog >= 0)
			close(prog);
	}
	return err;
}

/*
 * The anchor.  Netfilter calls a hook point's hooks only while some
 * namespace on the host has one there: the first registration anywhere
 * turns a static key on, which patches the kernel's text on every CPU,
 * and the last registration's removal turns it off again.  On a host
 * without a firewall every attach and detach of a gate did both, for
 * each of its hooks: about 300 µs of IPIs on this 2-core VM, where the
 * rest of the attach and detach is 20.  So while the host's programs are
 * loaded, the gate's four hooks also sit in a network namespace of
 * tcpcp's own, kept alive by nothing but their links pinned in anchor/:
 * without a device up it sees no packet, and the keys stay on.  Every
 * other namespace's packets then pay a look at an empty hook list at
 * these four points, as on any host with a firewall (where the keys are
 * on anyway and the anchor changes nothing).  `tcpcp gate unload` takes
 * it away with the programs.  It is only a saving: where it cannot be
 * made (no right to create a namespace), the gate works as before.
 */
#define ANCHOR_DIR	BPFFS "/anchor"

static void *anchor_links(void *arg)
{
	struct where w4 = { ANCHOR_DIR, NFPROTO_IPV4 }, w6 = { ANCHOR_DIR, NFPROTO_IPV6 };
	int *err = arg;

	/* Only this thread moves: a new namespace, unnamed, left with the
	 * thread, and held from then on by the links alone. */
	if (unshare(CLONE_NEWNET))
		*err = -errno;
	else if (!(*err = link_all(&w4)))
		*err = link_all(&w6);
	return NULL;
}

static void anchor(void)
{
	pthread_t t;
	int err = -1;

	if (attached_pf(ANCHOR_DIR, NFPROTO_IPV6) > 0)	/* pinned last: all there */
		goto out;
	if (mkdir(ANCHOR_DIR, 0700) && errno != EEXIST)
		goto out;
	detach_pf(ANCHOR_DIR, 0);	/* what an interrupted anchor left */
	if (!pthread_create(&t, NULL, anchor_links, &err))
		pthread_join(t, NULL);
	if (err)
		detach_dir(ANCHOR_DIR);
out:
	tcpcp_clear_error();
}

/* A family's hooks cost four system calls each to attach and three to
 * detach, a few microseconds apiece, so a namespace gets only those of
 * the families its gate holds. */
static int attach(int s, const char *dir, unsigned int pf)
{
	struct where w = { dir, pf };
	int err;

	if (mkdir(dir, 0700)) {
		if (errno != EEXIST)
			return tcpcp_fail(errno, "cannot create %s: %s", dir, strerror(errno));
		detach_pf(dir, pf);	/* what an interrupted attach left */
	}
	if ((err = tcpcp_netns_run(s, link_all, &w)))
		detach_pf(dir, pf);
	return err;
}

static bool cookie_of(const char *name, uint64_t *cookie)
{
	char *end;

	if (strncmp(name, "net-", 4))
		return false;
	*cookie = strtoull(name + 4, &end, 16);
	return !*end;
}

/* Detach every other namespace whose gate is empty by now: its links may
 * be all that keeps a deleted namespace alive (its linger ran out). */
static void retire_idle(struct tcpcp_bpf *b)
{
	char dir[PATH_MAX];
	DIR *d = opendir(BPFFS);
	struct dirent *e;
	uint64_t cookie;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!cookie_of(e->d_name, &cookie) || cookie == b->cookie)
			continue;
		if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", BPFFS, e->d_name) >= sizeof(dir))
			continue;
		if (tcpcp_bpf_gate_idle(b->gate, cookie))
			detach_dir(dir);
	}
	closedir(d);
	tcpcp_clear_error();
}

int tcpcp_bpf_open(int s, enum tcpcp_bpf_mode mode, struct tcpcp_bpf *b)
{
	int err;

	b->lock = b->gate = -1;
	b->dir[0] = '\0';
	if ((err = tcpcp_netns_cookie(s, &b->cookie)) || (err = root_open(b)))
		goto fail;
	snprintf(b->dir, sizeof(b->dir), "%s/net-%016llx", BPFFS, (unsigned long long)b->cookie);
	if (mode == TCPCP_BPF_LOCK)
		return 0;
	if ((b->gate = open_host(&gate_obj, sizeof(struct tcpcp_gate_val), mode == TCPCP_BPF_CREATE)) < 0) {
		err = b->gate;
		b->gate = -1;
		goto fail;
	}
	return 0;
fail:
	tcpcp_bpf_close(b);
	return err;
}

/* The hooks of @families (TCPCP_BPF_V4 | TCPCP_BPF_V6), detached while
 * the gate had no entry of theirs. */
int tcpcp_bpf_attach(struct tcpcp_bpf *b, int s, unsigned int families)
{
	static const unsigned int pf[] = { NFPROTO_IPV4, NFPROTO_IPV6 };
	bool any = false;
	size_t i;
	int on, err;

	for (i = 0; i < 2; i++) {
		if (!(families & (1u << i)))
			continue;
		if ((on = attached_pf(b->dir, pf[i])) < 0)
			return on;
		if (!on && !any)
			anchor();
		if (!on && (err = attach(s, b->dir, pf[i])))
			return err;
		any |= !on;
	}
	if (any)
		retire_idle(b);
	return 0;
}

void tcpcp_bpf_close(struct tcpcp_bpf *b)
{
	if (b->gate >= 0)
		close(b->gate);
	if (b->lock >= 0)
		close(b->lock);		/* and with it the flock */
	b->gate = b->lock = -1;
}

void tcpcp_bpf_detach(struct tcpcp_bpf *b)
{
	detach_dir(b->dir);
}

/* The host's programs go only when no namespace has its hooks. */
int tcpcp_bpf_unload(void)
{
	struct tcpcp_bpf b = { .lock = -1, .gate = -1 };
	struct dirent *e;
	uint64_t cookie;
	int err = 0;
	DIR *d;

	if ((err = root_open(&b)))
		goto out;
	d = opendir(BPFFS);
	while (d && (e = readdir(d)) && !err) {
		char dir[PATH_MAX];

		if (!cookie_of(e->d_name, &cookie) ||
		    (size_t)snprintf(dir, sizeof(dir), "%s/%s", BPFFS, e->d_name) >= sizeof(dir))
			continue;
		if (attached(dir))
			err = tcpcp_fail(EBUSY, "network namespace %s still has a gate: "
					 "flush it first", e->d_name);
		else
			detach_dir(dir);
	}
	if (d)
		closedir(d);
	if (!err) {
		detach_dir(ANCHOR_DIR);
		unpin_object(&gate_obj);
		unpin_object(&carry_obj);
		unpin_object(&clamp_obj);
		unpin_object(&skip_obj);
	}
out:
	tcpcp_bpf_close(&b);
	return err;
}

/* The map and the program (if @prog) of object @o, loaded for the host
 * first if need be; both fds the caller's. */
static int object_open(const struct object *o, __u32 value_size, int *map, int *prog)
{
	struct tcpcp_bpf b = { .lock = -1, .gate = -1 };
	char ppath[PATH_MAX];
	int err;

	*map = -1;
	if (prog)
		*prog = -1;
	if ((err = root_open(&b)))	/* one loader at a time */
		goto out;
	if ((*map = open_host(o, value_size, true)) < 0) {
		err = *map;
		*map = -1;
		goto out;
	}
	if (!prog)
		goto out;
	pin_path(BPFFS, o->progs[0], ppath, sizeof(ppath));
	*prog = bpf_obj_get(ppath);
	if (*prog < 0)
		err = tcpcp_fail(errno, "cannot open %s: %s", ppath, strerror(errno));
out:
	tcpcp_bpf_close(&b);
	if (err) {
		if (*map >= 0)
			close(*map);
		*map = -1;
		if (prog && *prog >= 0) {
			close(*prog);
			*prog = -1;
		}
	}
	return err;
}

int tcpcp_bpf_carry_open(int *map)
{
	return object_open(&carry_obj, sizeof(struct tcpcp_carry_val), map, NULL);
}

int tcpcp_bpf_clamp_open(int *map, int *prog)
{
	return object_open(&clamp_obj, sizeof(struct tcpcp_clamp_val), map, prog);
}

int tcpcp_bpf_skip_open(int *map, int *socks)
{
	char path[PATH_MAX];
	int err;

	if (socks)
		*socks = -1;
	if ((err = object_open(&skip_obj, sizeof(struct tcpcp_skip_val), map, NULL)) || !socks)
		return err;
	pin_path(BPFFS, skip_obj.socks_pin, path, sizeof(path));
	*socks = bpf_obj_get(path);
	if (*socks < 0) {
		err = tcpcp_fail(errno, "cannot open %s: %s", path, strerror(errno));
		close(*map);
		*map = -1;
	}
	return err;
}
