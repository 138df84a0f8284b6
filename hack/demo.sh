#!/usr/bin/env bash
# make demo: a private containerd runs a busybox container through
# containerd-shim-teach-v2, and we look at the processes that make it up.
#
# Everything lives in a temporary folder: containerd's root, state and socket.
# Nothing touches the system's containerd. The script stops what it started,
# by PID, when it ends.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
containerd_dir=$("$repo/hack/tools.sh" dir containerd)
runc_dir=$("$repo/hack/tools.sh" dir runc)
shim="$repo/bin/containerd-shim-teach-v2"
[ -x "$shim" ] || { echo "build the shim first: make build" >&2; exit 1; }

work=$(mktemp -d /tmp/teach-demo.XXXXXX)
address="$work/containerd.sock"
ctr() { "$containerd_dir/ctr" --address "$address" "$@" 2> >(grep -v DEPRECATION >&2); }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

containerd_pid=""
cleanup() {
	set +e
	if [ -n "$containerd_pid" ]; then
		ctr task kill -s KILL demo >/dev/null 2>&1
		ctr task delete demo >/dev/null 2>&1
		ctr container delete demo >/dev/null 2>&1
		kill "$containerd_pid" 2>/dev/null
		wait "$containerd_pid" 2>/dev/null
	fi
	grep " $work" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount 2>/dev/null
	# The shim kept its journal under /run, in a folder of this containerd's.
	for noted in /run/containerd-shim-teach-v2/*/containerd-state; do
		[ "$(cat "$noted" 2>/dev/null)" = "$work/state" ] && rm -rf "$(dirname "$noted")"
	done
	rm -rf "$work"
}
trap cleanup EXIT

step "Start a private containerd ($("$containerd_dir/containerd" --version | awk '{print $3}')) under $work"
cat >"$work/config.toml" <<EOF
version = 3
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$address"
[ttrpc]
  address = "$address.ttrpc"
EOF
# containerd finds the shim for io.containerd.teach.v2 by name on its PATH.
PATH="$(dirname "$shim"):$runc_dir:$containerd_dir:$PATH" \
	"$containerd_dir/containerd" --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null

step "Build a busybox image offline and import it"
(cd "$repo" && go run ./integration/cmd/mkimage -o "$work/busybox.tar")
ctr images import "$work/busybox.tar" >/dev/null
ctr images ls -q

step "ctr run --runtime io.containerd.teach.v2 -d docker.io/library/busybox:teach demo sh -c '...'"
ctr run --runtime io.containerd.teach.v2 -d docker.io/library/busybox:teach demo \
	sh -c 'echo "hello from inside the container"; exec sleep 3600'
task_pid=$(ctr task ls | awk '$1 == "demo" {print $2}')
shim_pid=$(ps -o ppid= -p "$task_pid" | tr -d ' ')

step "The process tree: ps -ef --forest"
ps -ef --forest | awk -v c="$containerd_pid" -v s="$shim_pid" -v t="$task_pid" \
	'NR == 1 || $2 == c || $2 == s || $2 == t'
cat <<EOF

containerd (pid $containerd_pid) ran '$(basename "$shim") start', which launched the shim
server (pid $shim_pid) in a session of its own and exited. The shim's parent is now
pid $(ps -o ppid= -p "$shim_pid" | tr -d ' '), not containerd: it is nobody's child but init's, so it outlives
containerd. runc created the container and exited too; the container's process
(pid $task_pid) is the shim's child, and the shim holds its stdio and will reap it.
EOF

step "ctr task ps demo"
ctr task ps demo

step "The container's filesystem, seen from the host: /proc/$task_pid/root"
ls "/proc/$task_pid/root"

step "Kill containerd (SIGKILL): the shim and the container keep running"
kill -9 "$containerd_pid"
wait "$containerd_pid" 2>/dev/null || true
ps -o pid,ppid,stat,args -p "$shim_pid" -p "$task_pid"

step "Start containerd again: it reconnects to the shim"
PATH="$(dirname "$shim"):$runc_dir:$containerd_dir:$PATH" \
	"$containerd_dir/containerd" --config "$work/config.toml" >>"$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr task ls

step "Upgrade the shim in place: containerd-shim-teach-v2 upgrade demo"
"$shim" upgrade -n default --state "$work/state" demo
ps -o pid,ppid,stat,args -p "$shim_pid" -p "$task_pid"
cat <<EOF3

The shim process executed the binary again (any other build, with --binary):
same pid $shim_pid, the container still its child, containerd's connection kept,
no output lost. docs/upgrade.md tells how.
EOF3
ctr task ls

step "Kill the container through the shim (SIGKILL), then delete it"
ctr task kill -s KILL demo
ctr task delete demo
ctr container delete demo
printf 'shim pid %s still alive? ' "$shim_pid"
for _ in $(seq 50); do kill -0 "$shim_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$shim_pid" 2>/dev/null; then echo yes; else echo "no: it exited with its last container"; fi

step "What the shim did, from its journal: containerd-shim-teach-v2 trace demo"
"$shim" trace -n default --state "$work/state" demo
cat <<EOF2

Every line is a step the shim recorded as it went: containerd's requests, the
runc commands with their argv, the FIFOs and pipes, the signal, the exit it
reaped, the events. containerd's SIGKILL does not appear: the shim only saw
its requests stop and resume. 'containerd-shim-teach-v2 inspect ID' shows a
running container's anatomy the same way; docs/how-it-works.md walks through it.
EOF2
