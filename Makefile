# containerd-shim-teach-v2
#
#   make demo      build, fetch the pinned daemons, run a container through the shim
#   make test      every test: unit (with -race), fuzz seeds, integration against real daemons
#   make install   put containerd-shim-teach-v2 where containerd finds it (PREFIX, DESTDIR)
#   make bench     measure it against containerd-shim-runc-v2, write docs/benchmarks.md

PREFIX  ?= /usr/local
DESTDIR ?=
BINARY  := containerd-shim-teach-v2
BIN     := bin/$(BINARY)

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG      := github.com/teach/containerd-shim-teach-v2
LDFLAGS  := -s -w -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Revision=$(REVISION)

# The shim is built static, without cgo: it must run whatever libc the host has.
GOBUILD := CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "$(LDFLAGS)"

UNIT_PACKAGES = $(shell go list ./... | grep -v /integration)
INTEGRATION_TIMEOUT ?= 25m

.PHONY: all build tools demo test unit fuzz-seeds integration bench install uninstall clean

all: build

build:
	$(GOBUILD) -o $(BIN) ./cmd/$(BINARY)

tools:
	hack/tools.sh

demo: tools build
	hack/demo.sh

test: tools build unit integration

unit:
	go vet ./...
	go test -race -count=1 $(UNIT_PACKAGES)

# Integration tests start real daemons (containerd, runc) as root; the harness
# builds nothing itself when TEACH_SHIM_BIN names the shim to test.
integration:
	TEACH_SHIM_BIN=$(CURDIR)/$(BIN) go test -count=1 -timeout $(INTEGRATION_TIMEOUT) -v ./integration/...

# The benchmark runs our shim as `make install` builds it against the stock
# runc shim as containerd releases it (hack/tools.sh bench builds that), under
# one private containerd. BENCH_FLAGS adds flags, e.g. for a quick look:
#   make bench BENCH_FLAGS="-iterations 20 -stdio-mib 64 -fleet 10 -doc ''"
bench: build
	hack/tools.sh bench
	go run ./bench -shim $(CURDIR)/$(BIN) $(BENCH_FLAGS)

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(BINARY)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/$(BINARY)

clean:
	rm -rf bin
