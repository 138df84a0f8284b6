#!/usr/bin/env bash
# Installs what the project needs from outside: Debian packages, and the pinned
# daemons built from source into a cache folder outside the repository.
#
#   hack/tools.sh              build containerd and runc, what `make demo` needs
#   hack/tools.sh all          also dockerd, crictl, the nginx packages of `make walkthrough`
#                              and what `make conformance` needs: all of `make test`
#   hack/tools.sh bench        also the release-style runc shim `make bench` compares against
#   hack/tools.sh conformance  also containerd's own integration suite, runc-fp, the registry
#                              and the Debian packages `make conformance` builds its images from
#   hack/tools.sh dir NAME     print the folder holding NAME's binaries
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
	runc) echo "$tools_dir/runc-$RUNC_VERSION" ;;
	dockerd) echo "$tools_dir/dockerd-$DOCKERD_VERSION" ;;
	crictl) echo "$tools_dir/crictl-$CRITOOLS_VERSION" ;;
	runc-shim-release) echo "$tools_dir/runc-shim-release-$CONTAINERD_VERSION" ;;
	nginx-debs) echo "$tools_dir/nginx-debs" ;;
	registry) echo "$tools_dir/registry-$REGISTRY_VERSION" ;;
	conformance) echo "$tools_dir/conformance-$CONTAINERD_VERSION" ;;
	conformance-debs) echo "$tools_dir/conformance-debs" ;;
	*) echo "unknown tool $1" >&2; return 1 ;;
	esac
}

say() { printf '==> %s\n' "$*" >&2; }

# install_debian_packages PACKAGE...: apt-get install those not installed yet.
install_debian_packages() {
	local missing=()
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
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

# containerd 1.7's go.mod has exclude directives, which `go install pkg@version`
# refuses, so it is built with `go build` inside tools/containerd17, a module
# that requires it.
build_containerd17() {
	local dir
	dir=$(tool_dir containerd17)
	[ -f "$dir/.done" ] && return 0
	say "building containerd $CONTAINERD17_VERSION into $dir"
	mkdir -p "$dir"
	(
		cd "$repo/tools/containerd17"
		grep -q "github.com/containerd/containerd $CONTAINERD17_VERSION" go.mod ||
			{ echo "tools/containerd17/go.mod does not require containerd $CONTAINERD17_VERSION: run 'go get github.com/containerd/containerd@$CONTAINERD17_VERSION && go mod tidy' there" >&2; exit 1; }
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -o "$dir/" \
			github.com/containerd/containerd/cmd/containerd \
			github.com/containerd/containerd/cmd/ctr \
			github.com/containerd/containerd/cmd/containerd-shim-runc-v2
	)
	touch "$dir/.done"
}

build_for_tests() {
	install_debian_packages busybox-static libseccomp-dev pkg-config criu
	build containerd 0 "" \
		"github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
	build runc 1 seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
	build_containerd17
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
	(cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$@" >/dev/null)
	touch "$dir/.done"
}

# The walkthrough's nginx image is unpacked from these
# (integration/image/nginx.go): nginx, its configuration, the libraries it
# links, and base-files for /etc/os-release.
fetch_nginx_debs() {
	fetch_debs nginx-debs nginx nginx-common libc6 libcrypt1 libpcre2-8-0 libssl3 zlib1g base-files
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
	install_debian_packages xfsprogs
	build registry 0 "" "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
	build_conformance
	fetch_conformance_debs
}

build_all() {
	build_for_tests
	build dockerd 0 "" "github.com/moby/moby/v2/cmd/dockerd@$DOCKERD_VERSION"
	build crictl 0 "" "sigs.k8s.io/cri-tools/cmd/crictl@$CRITOOLS_VERSION"
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
conformance) build_conformance_tools ;;
dir) tool_dir "$2" ;;
*) echo "usage: $0 [all | bench | conformance | dir NAME]" >&2; exit 2 ;;
esac
