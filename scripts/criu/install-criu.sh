#!/bin/bash
# Install a CRIU that runs on this kernel into PREFIX (default
# /opt/tcpcp-criu), once; later runs only check it and print its path.
#
#     CRIU=$(scripts/criu/install-criu.sh [PREFIX])
#
# Debian 12's criu 3.17.1 does not start on recent kernels ("vdso: Unexpected
# rt vDSO area bounds"), so this builds CRIU 4.1.1 from the upstream tarball of
# Debian's trixie source package (fetched with apt from the mirror this machine
# already uses, checked against the signed Sources index and a pinned SHA-256)
# with the patches beside this script applied, and installs the criu binary
# (plus criu-ns and the plugin headers criu-plugin.h and criu-log.h) under
# PREFIX, linked as /usr/local/sbin/criu for container runtimes, which run
# the criu in PATH (TCPCP_CRIU_LINK=0: no link).  The trixie deb-src entry lives in a private apt state in a temporary
# directory: nothing under /etc/apt or /var/lib/apt is changed.
#
# stdout: only the path of the criu binary.  Progress and warnings: stderr.
# Needs root (apt-get, and `criu check`).
set -Eeuo pipefail

CRIU_VERSION=4.1.1
CRIU_TARBALL=criu_${CRIU_VERSION}.orig.tar.xz
CRIU_SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
SRC_SUITE=trixie
BUILD_DEPS=(
	build-essential pkg-config xz-utils patch
	libnl-3-dev libnl-route-3-dev libgnutls28-dev libbsd-dev libnftables-dev
	uuid-dev libaio-dev libcap-dev libnet1-dev
	protobuf-c-compiler libprotobuf-c-dev python3-protobuf
	libprotobuf-dev		# images/google/protobuf/descriptor.proto links to its copy
)

PREFIX=${1:-/opt/tcpcp-criu}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CRIU=$PREFIX/sbin/criu
STAMP=$PREFIX/share/tcpcp-criu/stamp

step="setup"
log=""
work=""

say() { echo "install-criu: $*" >&2; }
die() {
	trap - ERR
	say "error: $*"
	exit 1
}
on_err() {
	local rc=$?
	trap - ERR
	if [[ -n $log && -s $log ]]; then
		echo "----- last lines of the log of: $step" >&2
		tail -n 40 "$log" >&2
		echo "-----" >&2
	fi
	say "error: $step failed (exit $rc)"
	exit "$rc"
}
cleanup() {
	if [[ -n $work ]]; then
		rm -rf -- "$work"
	fi
}
trap on_err ERR
trap cleanup EXIT

# run STEP CMD...: run CMD with its output in a log that is shown on failure.
run() {
	step=$1
	shift
	: >"$log"
	"$@" >>"$log" 2>&1
}

[[ $PREFIX == /* ]] || die "PREFIX must be an absolute path, not '$PREFIX'"
[[ $(id -u) == 0 ]] || die "needs root (apt-get and criu check)"

shopt -s nullglob
PATCHES=("$HERE"/[0-9][0-9][0-9][0-9]-*.patch)
shopt -u nullglob
((${#PATCHES[@]})) || die "no patches found beside $0"

# What an install made by this script must look like: version and patch set.
expected_stamp() {
	echo "criu $CRIU_VERSION"
	(cd "$HERE" && sha256sum -- "${PATCHES[@]##*/}")
}

installed_ok() {
	[[ -x $CRIU && -r $STAMP ]] || return 1
	"$CRIU" --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION" || return 1
	[[ $(cat "$STAMP") == "$(expected_stamp)" ]]
}

# One install at a time; a second caller waits, then takes the fast path.
lockdir=/run/lock
[[ -d $lockdir ]] || lockdir=/tmp
exec 9>"$lockdir/tcpcp-install-criu.lock"
flock 9

# Container runtimes run the criu they find in PATH (runc, podman's
# go-criu, crun's libcriu): /usr/local/sbin comes before Debian's
# /usr/sbin/criu (3.17, which does not start on this kernel).  An existing
# link or file of someone else's there is left alone, with a warning.
link_into_path() {
	local link=/usr/local/sbin/criu
	[[ ${TCPCP_CRIU_LINK:-1} == 1 ]] || return 0
	if [[ -L $link || ! -e $link ]]; then
		[[ $(readlink "$link" 2>/dev/null) == "$CRIU" ]] && return 0
		if [[ ! -e $link || $(readlink "$link") == "$PREFIX"/* ]]; then
			mkdir -p /usr/local/sbin
			ln -sfn "$CRIU" "$link"
			say "linked $link -> $CRIU (container runtimes run the criu in PATH)"
			return 0
		fi
	fi
	say "warning: $link is not ours: runc and podman may not run CRIU $CRIU_VERSION"
}

if installed_ok; then
	link_into_path
	echo "$CRIU"
	exit 0
fi

say "installing CRIU $CRIU_VERSION into $PREFIX (takes a few minutes)"
started=$SECONDS
work=$(mktemp -d /tmp/tcpcp-criu.XXXXXX)
chmod 755 "$work"
log=$work/step.log

# --- build dependencies (Debian 12 packages) -------------------------------
step="checking build dependencies"
missing=()
for p in "${BUILD_DEPS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	run "apt-get update" apt-get update
	run "apt-get install of the build dependencies" \
		apt-get install -y --no-install-recommends "${missing[@]}"
fi

# --- CRIU's source, from Debian trixie ---------------------------------------
# The mirror is the one of this machine's own Debian sources: the URIs (and
# Signed-By) of the stanza in debian.sources that carries the release's suite.
step="reading the Debian mirror from /etc/apt/sources.list.d/debian.sources"
sources=/etc/apt/sources.list.d/debian.sources
[[ -r $sources ]] || die "$sources not found: cannot tell which Debian mirror to fetch CRIU's source from"
# shellcheck source=/dev/null
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
read -r uri keyring < <(awk -v cn="$codename" '
	BEGIN { RS = ""; FS = "\n" }
	{
		uri = ""; key = ""; hit = 0
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); uri = a[2] }
			else if ($i ~ /^Signed-By:[ \t]*\//) { split($i, a, /[ \t]+/); key = a[2] }
			else if ($i ~ /^Suites:/) {
				n = split($i, a, /[ \t]+/)
				for (j = 2; j <= n; j++) if (a[j] == cn) hit = 1
			}
		}
		if (uri != "" && first == "") first = uri " " (key == "" ? "-" : key)
		if (hit && uri != "") { print uri, (key == "" ? "-" : key); found = 1; exit }
	}
	END { if (!found && first != "") print first }' "$sources") ||
	die "no URIs line in $sources"
[[ -n ${uri:-} ]] || die "no URIs line in $sources"

# A private apt state: a deb-src entry for trixie, its own lists, no caches.
apt_dir=$work/apt
mkdir -p "$apt_dir/parts" "$apt_dir/lists/partial" "$work/dl"
{
	echo "Types: deb-src"
	echo "URIs: $uri"
	echo "Suites: $SRC_SUITE"
	echo "Components: main"
	[[ $keyring == - ]] || echo "Signed-By: $keyring"
} >"$apt_dir/tcpcp-criu-src.sources"
APT_OPTS=(
	-o "Dir::Etc::SourceList=$apt_dir/tcpcp-criu-src.sources"
	-o "Dir::Etc::SourceParts=$apt_dir/parts"
	-o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
)
if id _apt >/dev/null 2>&1; then
	chown _apt "$apt_dir/lists/partial" "$work/dl"
else
	APT_OPTS+=(-o "APT::Sandbox::User=root")
fi
say "fetching CRIU's source from Debian $SRC_SUITE"
run "apt-get update of the $SRC_SUITE source index" apt-get "${APT_OPTS[@]}" update
# --tar-only: only the upstream tarball (the .dsc and Debian's own patches
# are not needed, and a mirror may lack them).
cd "$work/dl"
run "apt-get source of criu from $SRC_SUITE" \
	apt-get "${APT_OPTS[@]}" source --download-only --tar-only criu
cd /
tarball=$work/dl/$CRIU_TARBALL
[[ -f $tarball ]] ||
	die "Debian $SRC_SUITE's criu source is not CRIU $CRIU_VERSION (got: $(cd "$work/dl" && echo *)); update CRIU_VERSION, CRIU_SHA256 and the patches"
step="checking $CRIU_TARBALL"
echo "$CRIU_SHA256  $tarball" | sha256sum -c --quiet - >/dev/null 2>&1 ||
	die "$CRIU_TARBALL does not have the expected SHA-256 $CRIU_SHA256"

# --- unpack, patch, build, install -------------------------------------------
src=$work/criu-$CRIU_VERSION
run "unpacking $CRIU_TARBALL" tar -xf "$tarball" -C "$work"
for p in "${PATCHES[@]}"; do
	run "applying ${p##*/}" patch -d "$src" -p1 --forward --batch -i "$p"
done
MAKE_VARS=(PREFIX="$PREFIX" PLUGINDIR="$PREFIX/lib/criu")
say "building criu (make -j$(nproc) criu)"
run "make criu" make -C "$src" -j"$(nproc)" "${MAKE_VARS[@]}" criu
rm -f -- "$STAMP"
run "make install-criu" make -C "$src" "${MAKE_VARS[@]}" install-criu

# --- verify -------------------------------------------------------------------
step="$CRIU check"
"$CRIU" --version 2>/dev/null | grep -qx "Version: $CRIU_VERSION" ||
	die "$CRIU does not report version $CRIU_VERSION"
check_rc=0
check_out=$("$CRIU" check 2>&1) || check_rc=$?
if ((check_rc)) || ! grep -qx "Looks good." <<<"$check_out"; then
	echo "$check_out" >&2
	die "$CRIU check failed (exit $check_rc): this CRIU cannot run on kernel $(uname -r)"
fi
warnings=$(grep -vx "Looks good." <<<"$check_out" || true)
if [[ -n $warnings ]]; then
	say "criu check passed, with these warnings:"
	echo "$warnings" >&2
fi

mkdir -p "$(dirname "$STAMP")"
expected_stamp >"$STAMP"
say "installed CRIU $CRIU_VERSION in $((SECONDS - started)) s"
link_into_path
echo "$CRIU"
