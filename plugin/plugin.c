/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tcpcp as a CRIU plugin: established TCP connections survive a
 * checkpoint and a restore on another host, at another address.
 *
 *   criu dump    --tcp-established --lib DIR ...   (dump.c)
 *   criu restore --tcp-close       --lib DIR ...   (restore.c)
 *
 * Built against Debian 12's criu-plugin.h (CRIU 3.17, ten hooks): CRIU
 * 4.x accepts a plugin with fewer hooks than its own, not the reverse.
 */
#include <errno.h>

/* Everything else stays hidden, so nothing of ours can collide with (or
 * be interposed by) a symbol of the criu binary; CRIU looks this one up. */
#pragma GCC visibility push(default)
#include <criu-plugin.h>
#pragma GCC visibility pop

#include "plugin.h"

static int stage_now = -1;

static int tcpcp_plugin_init(int stage)
{
	stage_now = stage;
	if (stage == CR_PLUGIN_STAGE__RESTORE)
		return restore_init();
	return 0;
}

static void tcpcp_plugin_exit(int stage, int ret)
{
	if (stage == CR_PLUGIN_STAGE__DUMP && ret == 0) {
		if (dump_connections())
			pr_err("the dump is not restorable with this plugin: see %s in the image directory\n",
			       IMG_FAILED);
	} else if (stage == CR_PLUGIN_STAGE__RESTORE) {
		restore_fini(ret == 0);
	}
}

static int tcpcp_resume_devices_late(int pid)
{
	if (stage_now != CR_PLUGIN_STAGE__RESTORE)
		return -ENOTSUP;
	return restore_task(pid);
}

#pragma GCC visibility push(default)
CR_PLUGIN_REGISTER("tcpcp", tcpcp_plugin_init, tcpcp_plugin_exit)
CR_PLUGIN_REGISTER_HOOK(CR_PLUGIN_HOOK__RESUME_DEVICES_LATE, tcpcp_resume_devices_late)
#pragma GCC visibility pop
