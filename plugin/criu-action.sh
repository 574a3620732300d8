#!/bin/sh
# criu --action-script for dumps with tcpcp.so: the plugin's exit hook
# cannot fail a dump, so it leaves tcpcp-failed in the image directory;
# failing post-dump here makes criu roll back (unlock the network, take
# the connections out of repair mode, let the tasks run on).
[ "$CRTOOLS_SCRIPT_ACTION" = post-dump ] || exit 0
marker=${CRTOOLS_IMAGE_DIR:-.}/tcpcp-failed
[ -e "$marker" ] || exit 0
cat "$marker" >&2
exit 1
