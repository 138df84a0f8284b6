#!/usr/bin/env bash
# `make test-cgroup2`: the integration tests that touch cgroups, run where the
# shim's users run it, on a kernel with cgroup v2 alone.
#
# The machine's own kernel may mount cgroup v1 (or both), so the lane boots
# a kernel of its own: Debian's cloud kernel under QEMU, with cgroup_no_v1=all.
# The guest shares nothing with the host (the cloud kernel has no 9p): all it
# needs is packed into its initramfs, and the `go test -v` output comes back
# over its second serial port, into a file.
#
#   1. hack/tools.sh cgroup2: QEMU, cpio, the pinned kernel, containerd, runc, crictl
#   2. the test binary (go test -c) and the pause program, static
#   3. the initramfs: busybox, hack/cgroup2-init.sh as /init, the binaries,
#      runc's shared libraries, the overlay module, tools/versions.env
#   4. KVM if it boots an ordinary guest here, else QEMU's emulator (TCG)
#   5. boot; the guest runs the tests and powers off; the output is checked
#
# It fails when a test fails, and when the guest did not finish (the last
# line the guest writes, the end marker, is missing).
#
# Environment:
#   CGROUP2_TESTS    go test -run pattern (default: the lane's tests, below)
#   CGROUP2_TIMEOUT  go test -timeout inside the guest, in minutes (default 30)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=../tools/versions.env
. tools/versions.env

# The lane's tests, against containerd $CONTAINERD_VERSION with both shims:
# each touches the container's cgroup, or is the lifecycle every other
# assumes. README.md ("Tests") lists them with what each checks on v2.
lane_tests=(
	TestExitCode                        # lifecycle through the Go client
	TestLifecycleEvents                 # every event, in order
	TestShimIsParentOfContainerInit     # the process tree
	TestExecOutputAndExitCode           # exec: runc exec joins the container's cgroup
	TestExecsDieWithTheContainer        # execs end with their container's init
	TestKillSignals                     # signals, to one process and to all (runc kill --all)
	TestHostPidContainerEndsWithItsInit # the cgroup's last processes are killed with the init
	TestMetricsOfARunningContainer      # Stats: the v2 metrics type, its fields, ctr task metrics
	TestUpdateResources                 # Update: memory, cpu, pids, read back from the cgroup's files
	TestPauseAndResume                  # cgroup.freeze, and the frozen line of cgroup.events
	TestTraceShowsTheFreeze             # the journal notes what cgroup.events said
	TestOOMKillIsReportedBeforeTheExit  # TaskOOM before TaskExit, exit 137, oom_kill in memory.events
	TestShimWatchesMemoryEvents         # the OOM watch is an inotify watch on memory.events
	TestTraceNamesTheOOMKiller          # the journal names memory.events as the OOM kill's counter
	TestShimCgroupOption                # the shim moves itself into a v2 cgroup
	TestInspect                         # inspect shows the v2 cgroup and its limits
	TestDeleteLeavesNoTraces            # the container's cgroup goes with it
	TestKubernetesPod                   # a CRI pod with crictl: cgroups under the pod's parent, its cgroup namespace, stats
	TestReliabilityDaemonOutage         # containerd stopped and killed, then started again
	TestReliabilityShimKilled           # containerd cleans up after a killed shim
)
tests=${CGROUP2_TESTS:-^($(IFS='|'; echo "${lane_tests[*]}"))\$}
timeout_minutes=${CGROUP2_TIMEOUT:-30}

out=$repo/bin/cgroup2
rootfs=$out/rootfs
end_marker="=== cgroup2 lane: go test exit status"

say() { printf '==> %s\n' "$*" >&2; }
started=$SECONDS
phase_started=$SECONDS
phase_done() {
	say "$1 took $((SECONDS - phase_started)) s"
	phase_started=$SECONDS
}

tool_dir() { hack/tools.sh dir "$1"; }

build_guest_programs() {
	[ -x bin/containerd-shim-teach-v2 ] || { echo "bin/containerd-shim-teach-v2 is missing: run make build (make test-cgroup2 does)" >&2; exit 1; }
	mkdir -p "$out"
	# Static, without cgo: the guest has no libc but the one runc needs.
	CGO_ENABLED=0 GOFLAGS=-buildvcs=false go test -c -trimpath -o "$out/integration.test" ./integration/
	CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o "$out/pause" ./integration/cmd/pause
}

# install_file SRC DEST: copy SRC to DEST inside the guest's root.
install_file() {
	mkdir -p "$rootfs$(dirname "$2")"
	cp -L "$1" "$rootfs$2"
}

pack_rootfs() {
	rm -rf "$rootfs"
	mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,dev,proc,sys,run,tmp,repo/integration}
	# busybox is the guest's shell and tools, and the test image is built
	# from /bin/busybox inside the guest, as on the host.
	install_file /bin/busybox /bin/busybox
	busybox --list-full | while read -r applet; do
		[ -e "$rootfs/$applet" ] || ln -s /bin/busybox "$rootfs/$applet"
	done
	install_file hack/cgroup2-init.sh /init
	chmod 0755 "$rootfs/init"
	cat >"$rootfs/lane.env" <<-EOF
		LANE_TESTS='$tests'
		LANE_TIMEOUT=${timeout_minutes}m
		LANE_CONTAINERD=$CONTAINERD_VERSION
		LANE_END_MARKER='$end_marker'
	EOF

	# The harness finds the repository by tools/versions.env above its
	# working directory, and the pinned tools under TEACH_TOOLS_DIR in
	# folders named as hack/tools.sh names them.
	install_file tools/versions.env /repo/tools/versions.env
	install_file "$out/integration.test" /repo/integration.test
	install_file bin/containerd-shim-teach-v2 /usr/local/bin/containerd-shim-teach-v2
	install_file "$out/pause" /usr/local/bin/pause
	local containerd runc crictl
	containerd=$(tool_dir containerd) runc=$(tool_dir runc) crictl=$(tool_dir crictl)
	for binary in containerd ctr containerd-shim-runc-v2; do
		install_file "$containerd/$binary" "/tools/$(basename "$containerd")/$binary"
	done
	install_file "$runc/runc" "/tools/$(basename "$runc")/runc"
	install_file "$crictl/crictl" "/tools/$(basename "$crictl")/crictl"
	# runc is the one binary built with cgo (libseccomp): its libraries go
	# where its loader looks for them.
	for library in $(ldd "$runc/runc" | awk '$2 == "=>" { print $3 } $1 ~ /^\/.*ld-linux/ { print $1 }'); do
		install_file "$library" "$library"
	done
	install_file "$(tool_dir guest-kernel)/modules/overlay.ko" /lib/modules/overlay.ko

	echo "root:x:0:0:root:/root:/bin/sh" >"$rootfs/etc/passwd"
	echo "root:x:0:" >"$rootfs/etc/group"
	echo "127.0.0.1 localhost" >"$rootfs/etc/hosts"
	# The CRI plugin copies the host's resolv.conf into a host-network pod.
	: >"$rootfs/etc/resolv.conf"
	# The kernel opens /dev/console as /init's stdin, stdout and stderr
	# before any devtmpfs is mounted.
	mknod "$rootfs/dev/console" c 5 1
}

# pack_initramfs writes an uncompressed cpio: gzip would be unpacked by the
# guest's kernel, emulated instruction by instruction under TCG, while QEMU
# reads the larger file at the host's speed.
pack_initramfs() {
	(cd "$rootfs" && find . -print0 | cpio --null --create --format=newc --quiet) >"$out/initramfs.cpio"
	rm -rf "$rootfs"
	say "initramfs: $(du -m "$out/initramfs.cpio" | cut -f1) MiB"
}

qemu_common=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot)
kernel_options="console=ttyS0 quiet panic=-1"

# kvm_boots says whether KVM runs an ordinary guest here. /dev/kvm alone does
# not tell: a host may serve it with a hypervisor that boots only kernels
# built for it (kvm_pvm), where QEMU aborts on -cpu host or hangs after the
# kernel's real-mode setup. Without the processor's virtualization (the vmx
# or svm flag) no KVM runs an ordinary guest, so there is nothing to try.
# Otherwise a tiny initramfs (busybox and a three-line /init) is booted with
# KVM and must print its line; `timeout` ends the hanging case, and the lane
# then runs on the emulator.
kvm_boots() {
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		kvm_verdict="no /dev/kvm this user can open"
		return 1
	fi
	if ! grep -qw -e vmx -e svm /proc/cpuinfo; then
		kvm_verdict="/dev/kvm is there, but the processor shows no vmx or svm flag: its KVM ($(ls /sys/module | grep '^kvm' | tr '\n' ' ' | sed 's/ $//')) is no hardware virtualization and boots no ordinary guest"
		return 1
	fi
	local probe=$out/kvm-probe
	rm -rf "$probe" && mkdir -p "$probe/root/bin" "$probe/root/dev"
	cp /bin/busybox "$probe/root/bin/busybox"
	printf '#!/bin/busybox sh\n/bin/busybox echo kvm-probe-booted\n/bin/busybox poweroff -f\n' >"$probe/root/init"
	chmod 0755 "$probe/root/init"
	mknod "$probe/root/dev/console" c 5 1
	(cd "$probe/root" && find . | cpio --create --format=newc --quiet) >"$probe/initramfs.cpio"
	timeout -k 5 60 "${qemu_common[@]}" -accel kvm -cpu host -m 256 \
		-kernel "$(tool_dir guest-kernel)/vmlinuz" -initrd "$probe/initramfs.cpio" \
		-append "$kernel_options" -serial "file:$probe/console.log" >"$probe/qemu.log" 2>&1 || true
	if grep -q kvm-probe-booted "$probe/console.log" 2>/dev/null; then
		rm -rf "$probe"
		return 0
	fi
	kvm_verdict="a KVM guest did not boot: $(tail -n 1 "$probe/qemu.log" 2>/dev/null | cut -c1-160)"
	rm -rf "$probe"
	return 1
}

choose_accelerator() {
	if kvm_boots; then
		accelerator=KVM
		accel_flags=(-accel kvm -cpu host)
	else
		accelerator=TCG
		accel_flags=(-accel tcg,thread=multi -cpu max)
		say "${kvm_verdict:-KVM unusable}"
	fi
	say "accelerator: $accelerator"
}

# boot runs the guest. Its console goes to console.log, the tests' output to
# results.log, which is shown as it grows. The guest's own go test -timeout
# ends a hung test; the outer bound is for a guest that hangs itself.
boot() {
	local console=$out/console.log results=$out/results.log
	rm -f "$console" "$results"
	: >"$results"
	timeout -k 10 $(((timeout_minutes + 10) * 60)) "${qemu_common[@]}" "${accel_flags[@]}" -smp 2 -m 3072 \
		-kernel "$(tool_dir guest-kernel)/vmlinuz" -initrd "$out/initramfs.cpio" \
		-append "$kernel_options cgroup_no_v1=all" \
		-serial "file:$console" -serial "file:$results" &
	local qemu=$!
	# timeout runs in a process group of its own, out of reach of a ^C
	# to make: the guest is ended with the script, by its pid.
	trap 'kill "$qemu" 2>/dev/null || true' EXIT
	tail -n +1 -f --pid="$qemu" "$results"
	qemu_status=0
	wait "$qemu" || qemu_status=$?
	trap - EXIT
	rm -f "$out/initramfs.cpio"
}

report() {
	local results=$out/results.log status
	status=$(sed -n "s/^$end_marker //p" "$results" | tail -n 1)
	local passed failed
	passed=$(grep -c -- '--- PASS' "$results" || true)
	failed=$(grep -c -- '--- FAIL' "$results" || true)
	say "cgroup v2 lane on $accelerator, containerd $CONTAINERD_VERSION, kernel $GUEST_KERNEL_PACKAGE: $passed passed, $failed failed; $((SECONDS - started)) s in all"
	if [ -z "$status" ]; then
		echo "the guest did not finish (QEMU exit status $qemu_status, no end marker in $results); its console:" >&2
		tail -n 30 "$out/console.log" >&2 || true
		exit 1
	fi
	if [ "$status" != 0 ]; then
		echo "go test in the guest exited with status $status" >&2
		exit 1
	fi
	# A pattern that matches no test is a lane that checks nothing.
	if [ "$passed" -eq 0 ]; then
		echo "no test passed in the guest: does the pattern '$tests' name any?" >&2
		exit 1
	fi
}

hack/tools.sh cgroup2
phase_done "tools"
build_guest_programs
phase_done "building the test binary"
pack_rootfs
pack_initramfs
phase_done "packing the initramfs"
choose_accelerator
phase_done "choosing the accelerator"
boot
phase_done "the guest ($accelerator)"
report
