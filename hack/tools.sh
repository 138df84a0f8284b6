#!/usr/bin/env bash
# Installs what the project needs from outside: Debian packages, and the pinned
# daemons built from source into a cache folder outside the repository.
#
#   hack/tools.sh            build what `make test` and `make demo` need
#   hack/tools.sh all        also containerd 2.0 and 2.2, dockerd, crictl and the nginx
#                            packages of `make walkthrough`
#   hack/tools.sh bench      also the release-style runc shim `make bench` compares against
#   hack/tools.sh cgroup2    what `make test-cgroup2` packs into its guest: containerd, runc,
#                            crictl, and QEMU and Debian's cloud kernel to boot it
#   hack/tools.sh conformance  containerd's own integration suite, runc-fp, the registry
#                            and the Debian packages `make conformance` builds its images
#                            from (`all` includes it: `make test` runs the suite)
#   hack/tools.sh dir NAME   print the folder holding NAME's binaries
#
# Each tool gets its own folder, named with its version, so changing a pin in
# tools/versions.env builds the new version next to the old one. A folder is
# complete only when its .done marker exists: an interrupted build is redone.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../tools/versions.env
. "$repo/tools/versions.env"
tools_dir=${TEACH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/containerd-shim-teach-v2/tools}

tool_dir() {
	case "$1" in
	containerd) echo "$tools_dir/containerd-$CONTAINERD_VERSION" ;;
	containerd17) echo "$tools_dir/containerd-$CONTAINERD17_VERSION" ;;
	containerd20) echo "$tools_dir/containerd-$CONTAINERD20_VERSION" ;;
	containerd22) echo "$tools_dir/containerd-$CONTAINERD22_VERSION" ;;
	runc) echo "$tools_dir/runc-$RUNC_VERSION" ;;
	dockerd) echo "$tools_dir/dockerd-$DOCKERD_VERSION" ;;
	crictl) echo "$tools_dir/crictl-$CRITOOLS_VERSION" ;;
	runc-shim-release) echo "$tools_dir/runc-shim-release-$CONTAINERD_VERSION" ;;
	nginx-debs) echo "$tools_dir/nginx-debs" ;;
	guest-kernel) echo "$tools_dir/guest-kernel-$GUEST_KERNEL_VERSION" ;;
	registry) echo "$tools_dir/registry-$REGISTRY_VERSION" ;;
	conformance) echo "$tools_dir/conformance-$CONTAINERD_VERSION" ;;
	conformance-debs) echo "$tools_dir/conformance-debs" ;;
	*) echo "unknown tool $1" >&2; return 1 ;;
	esac
}

say() { printf '==> %s\n' "$*" >&2; }

# apt_install [APT-FLAG...] -- PACKAGE...: installs those of the packages
# that are missing.
apt_install() {
	local flags=() missing=()
	while [ "$1" != "--" ]; do flags+=("$1"); shift; done
	shift
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${flags[@]}" "${missing[@]}" >/dev/null
}

install_debian_packages() {
	apt_install -- busybox-static libseccomp-dev pkg-config criu
}

# QEMU without what it recommends (a GUI, UEFI firmware, disk tools): the
# guest of `make test-cgroup2` is a kernel and an initramfs, booted headless.
# cpio packs the initramfs.
install_vm_packages() {
	apt_install --no-install-recommends -- qemu-system-x86 cpio
}

# build NAME CGO TAGS PACKAGE@VERSION...: go install into NAME's folder.
build() {
	local name=$1 cgo=$2 tags=$3
	shift 3
	local dir
	dir=$(tool_dir "$name")
	[ -f "$dir/.done" ] && return 0
	say "building $name into $dir"
	mkdir -p "$dir"
	GOBIN="$dir" CGO_ENABLED="$cgo" GOFLAGS=-buildvcs=false go install -tags "$tags" "$@"
	touch "$dir/.done"
}

# The go.mod of containerd 1.7 and 2.0 has exclude directives, which
# `go install pkg@version` refuses, so each is built with `go build` inside
# tools/NAME, a module that requires it.
# build_in_module NAME MODULE VERSION: containerd, ctr and the runc shim.
build_in_module() {
	local name=$1 module=$2 version=$3 dir
	dir=$(tool_dir "$name")
	[ -f "$dir/.done" ] && return 0
	say "building containerd $version into $dir"
	mkdir -p "$dir"
	(
		cd "$repo/tools/$name"
		grep -q "$module $version" go.mod ||
			{ echo "tools/$name/go.mod does not require $module $version: run 'go get $module@$version && go mod tidy' there" >&2; exit 1; }
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -o "$dir/" \
			"$module/cmd/containerd" \
			"$module/cmd/ctr" \
			"$module/cmd/containerd-shim-runc-v2"
	)
	touch "$dir/.done"
}

# build_containerd2 NAME VERSION: containerd, ctr and the stock runc shim of
# one 2.x release.
build_containerd2() {
	local name=$1 version=$2
	build "$name" 0 "" \
		"github.com/containerd/containerd/v2/cmd/containerd@$version" \
		"github.com/containerd/containerd/v2/cmd/ctr@$version" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$version"
}

# The pinned containerd 2.x with its ctr and stock shim, and runc.
build_containerd_and_runc() {
	build_containerd2 containerd "$CONTAINERD_VERSION"
	build runc 1 seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
}

build_crictl() {
	build crictl 0 "" "sigs.k8s.io/cri-tools/cmd/crictl@$CRITOOLS_VERSION"
}

build_for_tests() {
	install_debian_packages
	build_containerd_and_runc
	build_in_module containerd17 github.com/containerd/containerd "$CONTAINERD17_VERSION"
}

# build_runc_shim_release builds containerd-shim-runc-v2 of the pinned
# containerd the way containerd's release does: static, without cgo, paths
# trimmed and symbols stripped. The copy in the containerd folder is a plain
# `go install` for the tests; a benchmark against it would flatter us (an
# unstripped binary maps more memory), so it gets a folder of its own.
build_runc_shim_release() {
	local dir
	dir=$(tool_dir runc-shim-release)
	[ -f "$dir/.done" ] && return 0
	say "building the release-style containerd-shim-runc-v2 $CONTAINERD_VERSION into $dir"
	mkdir -p "$dir"
	GOBIN="$dir" CGO_ENABLED=0 GOFLAGS=-buildvcs=false go install -trimpath -ldflags "-s -w -extldflags -static" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
	touch "$dir/.done"
}

# fetch_nginx_debs downloads, without installing them, the Debian packages
# the walkthrough's nginx image is unpacked from (integration/image/nginx.go):
# nginx, its configuration, the libraries it links, and base-files for
# /etc/os-release. Their versions are those of the machine's apt sources.
fetch_nginx_debs() {
	local dir
	dir=$(tool_dir nginx-debs)
	[ -f "$dir/.done" ] && return 0
	say "apt-get download nginx and the libraries it links into $dir"
	rm -rf "$dir" && mkdir -p "$dir"
	apt_download "$dir" nginx nginx-common libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g base-files
	touch "$dir/.done"
}

# apt_download DIR PACKAGE...: download the packages into DIR, without
# installing them. The package lists may be older than what is asked for: a
# failed download is tried once more after apt-get update.
apt_download() {
	local dir=$1
	shift
	(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null) && return 0
	apt-get update -qq
	(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null)
}

# fetch_guest_kernel unpacks the pinned Debian cloud kernel, without
# installing it, for the guest of `make test-cgroup2`: vmlinuz, and the
# modules the guest loads (overlay, for containerd's snapshots). Its package
# is the cloud flavour because it boots fast on QEMU's virtual hardware.
fetch_guest_kernel() {
	local dir
	dir=$(tool_dir guest-kernel)
	[ -f "$dir/.done" ] && return 0
	say "apt-get download $GUEST_KERNEL_PACKAGE=$GUEST_KERNEL_VERSION into $dir"
	rm -rf "$dir" && mkdir -p "$dir/deb"
	apt_download "$dir/deb" "$GUEST_KERNEL_PACKAGE=$GUEST_KERNEL_VERSION" ||
		{ echo "$GUEST_KERNEL_PACKAGE $GUEST_KERNEL_VERSION is not in the apt sources (Debian drops old kernel ABIs): pin a current one in tools/versions.env" >&2; exit 1; }
	dpkg-deb -x "$dir"/deb/*.deb "$dir/unpacked"
	cp "$dir"/unpacked/boot/vmlinuz-* "$dir/vmlinuz"
	mkdir -p "$dir/modules"
	cp "$(find "$dir/unpacked/lib/modules" -name overlay.ko)" "$dir/modules/"
	rm -rf "$dir/deb" "$dir/unpacked"
	touch "$dir/.done"
}

# fetch_debs NAME PACKAGE...: apt-get download the packages, without
# installing them, into NAME's folder. Their versions are those of the
# machine's apt sources.
fetch_debs() {
	local name=$1 dir
	shift
	dir=$(tool_dir "$name")
	[ -f "$dir/.done" ] && return 0
	say "apt-get download $* into $dir"
	rm -rf "$dir" && mkdir -p "$dir"
	apt_download "$dir" "$@"
	touch "$dir/.done"
}

# build_conformance builds containerd's own integration suite (the
# integration/client package of the pinned release) into a test binary,
# client.test, and runc-fp, the runc wrapper its regression tests inject
# failures with. The source is the release's module in the Go module cache,
# built with the release's go.mod: the suite is a package of the containerd
# module, and this repository's go.mod plays no part in it.
build_conformance() {
	local dir src module
	dir=$(tool_dir conformance)
	[ -f "$dir/.done" ] && return 0
	say "building containerd $CONTAINERD_VERSION's integration/client suite and runc-fp into $dir"
	src=$(go mod download -json "github.com/containerd/containerd/v2@$CONTAINERD_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -d "$src/integration/client" ] || { echo "no integration/client in containerd $CONTAINERD_VERSION ($src)" >&2; exit 1; }
	# Should the suite become a module of its own, it is built with its go.mod.
	module=$src
	[ -f "$src/integration/client/go.mod" ] && module=$src/integration/client
	mkdir -p "$dir"
	(
		cd "$module"
		export GOWORK=off GOFLAGS=-buildvcs=false CGO_ENABLED=0
		go test -c -o "$dir/client.test" "$src/integration/client"
		cd "$src"
		go build -o "$dir/runc-fp" ./integration/failpoint/cmd/runc-fp
	)
	touch "$dir/.done"
}

# `make conformance` builds the suite's images from these
# (integration/cmd/conformance): busybox-static and base-passwd for busybox,
# bash with the libraries it links and passwd (a setuid /usr/bin/passwd)
# for the user namespace image.
fetch_conformance_debs() {
	fetch_debs conformance-debs busybox-static base-passwd bash libc6 libtinfo6 passwd
}

build_conformance_tools() {
	build_for_tests
	# mkfs.xfs: the suite's TestMountAtRuntime formats a loop device with it.
	apt_install -- xfsprogs
	build registry 0 "" "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
	build_conformance
	fetch_conformance_debs
}

build_for_cgroup2() {
	install_debian_packages
	install_vm_packages
	build_containerd_and_runc
	build_crictl
	fetch_guest_kernel
}

build_all() {
	build_for_tests
	build_in_module containerd20 github.com/containerd/containerd/v2 "$CONTAINERD20_VERSION"
	build_containerd2 containerd22 "$CONTAINERD22_VERSION"
	build dockerd 0 "" "github.com/moby/moby/v2/cmd/dockerd@$DOCKERD_VERSION"
	build_crictl
	fetch_nginx_debs
	build_conformance_tools
}

case "${1:-}" in
"") build_for_tests ;;
all) build_all ;;
bench)
	build_for_tests
	build_runc_shim_release
	;;
cgroup2) build_for_cgroup2 ;;
conformance) build_conformance_tools ;;
dir) tool_dir "$2" ;;
*) echo "usage: $0 [all | bench | cgroup2 | conformance | dir NAME]" >&2; exit 2 ;;
esac
