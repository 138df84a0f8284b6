#!/bin/busybox sh
# /init of the guest `make test-cgroup2` boots (hack/test-cgroup2.sh packs it
# into the initramfs with everything else the guest needs). It runs twice, as
# PID 1 both times:
#
#   1. in the initramfs: it copies the initramfs into a tmpfs and switches
#      root to it. runc cannot run a container from an initramfs: it
#      pivot_roots into the container's root, and the kernel refuses
#      pivot_root(2) while the old root is the initramfs, which is no mount
#      that can be moved.
#   2. in the tmpfs ("$1" = tmpfs): it mounts what a container host has, with
#      cgroup v2 alone (the kernel was booted with cgroup_no_v1=all) and every
#      controller handed down, runs the integration tests and writes their
#      `go test -v` output to the second serial port, which the host reads
#      from a file. The last line says how go test ended; without it, the host
#      knows the guest did not finish.
#
# Its stdout is the first serial port (console=ttyS0): the host keeps it as
# the guest's console log.

results=/dev/ttyS1

say() { echo "cgroup2 guest: $*"; }

# halt powers the guest off, which ends QEMU (-no-reboot).
halt() {
	sync
	poweroff -f
}

copy_into_tmpfs() {
	mkdir -p /newroot
	mount -t tmpfs -o mode=0755 guestroot /newroot
	for entry in /*; do
		case "$entry" in
		/newroot | /proc | /sys | /dev) ;;
		*) cp -a "$entry" /newroot/ ;;
		esac
	done
	mkdir -p /newroot/proc /newroot/sys /newroot/dev
	# switch_root empties the initramfs (freeing its memory), moves the
	# tmpfs to / and runs this script again there.
	exec switch_root /newroot /init tmpfs
}

mount_host_filesystems() {
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm /run /tmp
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
	mount -t tmpfs -o mode=1777 shm /dev/shm
	chmod 1777 /tmp
	mount -t cgroup2 cgroup2 /sys/fs/cgroup
}

# enable_controllers hands every controller the kernel has down from the root
# cgroup, so that the cgroups runc makes below it can use them (a v2 cgroup
# has only the controllers its parent's cgroup.subtree_control names). One
# at a time: a controller the kernel refuses must not keep the others out.
enable_controllers() {
	for controller in $(cat /sys/fs/cgroup/cgroup.controllers); do
		echo "+$controller" >/sys/fs/cgroup/cgroup.subtree_control ||
			say "controller $controller could not be enabled"
	done
	say "cgroup v2 controllers: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
}

run_tests() {
	# shellcheck source=/dev/null
	. /lane.env
	stty -F "$results" raw -echo 115200
	cd /repo/integration || halt
	say "running go test -run '$LANE_TESTS'"
	TEACH_TOOLS_DIR=/tools TEACH_SHIM_BIN=/usr/local/bin/containerd-shim-teach-v2 \
		TEACH_PAUSE_BIN=/usr/local/bin/pause TEACH_CONTAINERD_VERSIONS="$LANE_CONTAINERD" \
		/repo/integration.test -test.v -test.count=1 -test.timeout "$LANE_TIMEOUT" -test.run "$LANE_TESTS" >"$results" 2>&1
	status=$?
	# A redirection of its own: the close waits until the serial port has
	# sent every byte, so the line is out before the power goes.
	echo "$LANE_END_MARKER $status" >"$results"
	say "go test exited with status $status"
}

if [ "$1" != tmpfs ]; then
	say "booted kernel $(uname -r); copying the initramfs into a tmpfs"
	copy_into_tmpfs
fi

mount_host_filesystems
enable_controllers
insmod /lib/modules/overlay.ko || say "no overlay module: containerd's overlayfs snapshotter will fail"
ip link set lo up
hostname cgroup2-guest
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root TMPDIR=/tmp
run_tests
halt
