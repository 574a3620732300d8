/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tcpcp as a CRIU plugin: established TCP connections survive a
 * checkpoint and a restore on another host, at another address.
 *
 *   criu dump    --tcp-established --network-lock skip --lib DIR ...  (dump.c)
 *   criu dump    --tcp-close                        --lib DIR ...     (the same)
 *   criu restore --tcp-close                           --lib DIR ...  (restore.c)
 * or, installed in CRIU's plugin directory, with no --lib at all, as
 * runc and podman run CRIU (criu.conf: their configuration file).
 *
 * Built against Debian 12's criu-plugin.h (CRIU 3.17, ten hooks), which
 * lacks the hook the dump needs: CHECKPOINT_DEVICES, called once the tree
 * is frozen and before CRIU touches a socket, exists since CRIU 4.0.  So
 * the descriptor is declared here with CRIU 4.x's twelve hook slots, with
 * the numbers of CRIU 4.1.1's criu-plugin.h.  CRIU 4.x loads a plugin with
 * up to its own number of slots and chains every non-NULL one
 * (criu/plugin.c: verify_plugin, cr_lib_load); 3.17 to 3.19 refuse it
 * ("Corrupted plugin"), and could not serve the dump anyway.
 */
#include <errno.h>
#include <stddef.h>

/* Everything else stays hidden, so nothing of ours can collide with (or
 * be interposed by) a symbol of the criu binary; CRIU looks this one up.
 * The header's own declaration of it (the 3.17 layout) is renamed away. */
#define CR_PLUGIN_DESC tcpcp_criu_3_17_desc_unused
#include <criu-plugin.h>
#undef CR_PLUGIN_DESC

#include "plugin.h"

/* criu/include/criu-plugin.h of CRIU 4.1.1 (and 4.0): */
#define HOOK_RESUME_DEVICES_LATE	9	/* as in 3.17 */
#define HOOK_PAUSE_DEVICES		10	/* per task, before it is seized */
#define HOOK_CHECKPOINT_DEVICES		11	/* per task, the tree is frozen */
#define HOOKS_4_0			12

_Static_assert(CR_PLUGIN_HOOK__RESUME_DEVICES_LATE == HOOK_RESUME_DEVICES_LATE,
	       "criu-plugin.h numbers the hooks as CRIU 4.x does");

/* cr_plugin_desc_t with CRIU 4.x's hook slots. */
struct tcpcp_plugin_desc {
	const char *name;
	int (*init)(int stage);
	void (*exit)(int stage, int ret);
	unsigned int version;
	unsigned int max_hooks;
	void *hooks[HOOKS_4_0];
};

_Static_assert(offsetof(struct tcpcp_plugin_desc, hooks) == offsetof(cr_plugin_desc_t, hooks),
	       "the descriptor keeps CRIU's layout");

static int stage_now = -1;
static bool locked;

static int tcpcp_plugin_init(int stage)
{
	stage_now = stage;
	locked = false;
	if (stage == CR_PLUGIN_STAGE__RESTORE)
		return restore_init();
	return 0;
}

static void tcpcp_plugin_exit(int stage, int ret)
{
	if (stage == CR_PLUGIN_STAGE__DUMP)
		dump_finish(ret);
	else if (stage == CR_PLUGIN_STAGE__RESTORE)
		restore_fini(ret == 0);
}

/* Called for each task of the frozen tree: the first call serves them
 * all, in one batch. */
static int tcpcp_checkpoint_devices(int pid)
{
	(void)pid;
	if (stage_now != CR_PLUGIN_STAGE__DUMP)
		return -ENOTSUP;
	if (locked)
		return 0;
	locked = true;
	return dump_lock() ? -EINVAL : 0;
}

static int tcpcp_resume_devices_late(int pid)
{
	if (stage_now != CR_PLUGIN_STAGE__RESTORE)
		return -ENOTSUP;
	return restore_task(pid);
}

#pragma GCC visibility push(default)
struct tcpcp_plugin_desc CR_PLUGIN_DESC = {
	.name = "tcpcp",
	.init = tcpcp_plugin_init,
	.exit = tcpcp_plugin_exit,
	.version = CRIU_PLUGIN_VERSION,
	.max_hooks = HOOKS_4_0,
	.hooks = {
		[HOOK_RESUME_DEVICES_LATE] = (void *)tcpcp_resume_devices_late,
		[HOOK_CHECKPOINT_DEVICES] = (void *)tcpcp_checkpoint_devices,
	},
};
#pragma GCC visibility pop
