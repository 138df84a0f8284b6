# containerd-shim-teach-v2
#
#   make demo      build, fetch the pinned daemons, run a container through the shim
#   make test      every test: unit (with -race), fuzz seeds, integration against real daemons
#   make test-cgroup2  the cgroup tests again, in a QEMU guest with cgroup v2 alone (CGROUP2_TESTS=regexp)
#   make soak      the long reliability scenarios; rewrites docs/reliability.md from their figures
#   make fuzz      run every fuzz target for FUZZTIME each
#   make install   put containerd-shim-teach-v2 where containerd finds it (PREFIX, DESTDIR)
#   make bench     measure it against containerd-shim-runc-v2, write docs/benchmarks.md
#   make docs      run a container and paste inspect/trace output into docs/
#   make walkthrough  replay "Docker containers don't exist" with nginx, each claim checked
#   make conformance  containerd's own integration suite, with our shim and with the stock one

PREFIX  ?= /usr/local
DESTDIR ?=
BINARY  := containerd-shim-teach-v2
BIN     := bin/$(BINARY)

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG      := github.com/teach/containerd-shim-teach-v2
LDFLAGS  := -s -w -X $(PKG)/version.Version=$(VERSION) -X $(PKG)/version.Revision=$(REVISION)

# The shim is built static, without cgo: it must run whatever libc the host has.
# It is built with Go's earlier collector: Go 1.26's default ("Green Tea")
# writes its mark bits into every span's first page when the span is made,
# which keeps an idle shim's half-used spans resident (docs/benchmarks.md,
# "The collector before Green Tea"). integration/harness/shim.go builds the
# same way.
SHIM_GOEXPERIMENT := nogreenteagc
GOBUILD := CGO_ENABLED=0 GOEXPERIMENT=$(SHIM_GOEXPERIMENT) GOFLAGS=-buildvcs=false go build -trimpath -ldflags "$(LDFLAGS)"

UNIT_PACKAGES = $(shell go list ./... | grep -v /integration)
# go test's own timeout is a last resort against a hung test, not a speed
# limit: an idle machine runs the integration tests in about 8 minutes, a
# busy one in 20 or more, and CI allows 90 for everything.
INTEGRATION_TIMEOUT ?= 45m
SOAK_TIMEOUT        ?= 2h
FUZZTIME            ?= 10s

# The reliability tests append one JSON line per row they run to this file
# (TEACH_RELIABILITY_REPORT); integration/cmd/reliability-report turns the
# lines of a soak run into docs/reliability.md.
RELIABILITY_RECORDS := bin/reliability.jsonl

.PHONY: all build tools tools-core demo test test-cgroup2 unit fuzz-seeds integration conformance soak fuzz bench walkthrough docs install uninstall clean

all: build

build:
	$(GOBUILD) -o $(BIN) ./cmd/$(BINARY)

# The integration tests drive dockerd and crictl too, so `make test` builds
# every pinned tool; `make demo` needs only containerd and runc.
tools:
	hack/tools.sh all

tools-core:
	hack/tools.sh

demo: tools-core build
	hack/demo.sh

test: tools build unit integration conformance

unit:
	go vet ./...
	go test -race -count=1 $(UNIT_PACKAGES)

# Integration tests start real daemons (containerd, runc) as root; the harness
# builds nothing itself when TEACH_SHIM_BIN names the shim to test.
# The short reliability rows go to bin/reliability-short.jsonl, and from there
# into bin/reliability-short.md (not committed: docs/reliability.md holds the
# soak's figures).
integration:
	mkdir -p bin && rm -f bin/reliability-short.jsonl
	status=0; rev=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	TEACH_SHIM_BIN=$(CURDIR)/$(BIN) TEACH_RELIABILITY_REPORT=$(CURDIR)/bin/reliability-short.jsonl \
		go test -count=1 -timeout $(INTEGRATION_TIMEOUT) -v ./integration/... || status=$$?; \
	go run ./integration/cmd/reliability-report -in bin/reliability-short.jsonl -out bin/reliability-short.md \
		-command "make test" -revision "$$rev" && \
	exit $$status

# The integration tests that touch cgroups, on a kernel with cgroup v2 alone:
# hack/test-cgroup2.sh boots Debian's cloud kernel under QEMU (KVM when it
# works here, else the emulator) with the shim, the test binary and the
# pinned tools in its initramfs, and brings back the `go test -v` output.
# CGROUP2_TESTS (a -run pattern) and CGROUP2_TIMEOUT (minutes) change the run.
test-cgroup2: build
	hack/test-cgroup2.sh

# containerd's own integration suite (integration/client of the pinned
# release, built by hack/tools.sh conformance) against a private containerd,
# once with TEST_RUNTIME=io.containerd.teach.v2 and once with the stock
# io.containerd.runc.v2 as the reference; it fails if our shim fails a test
# the stock shim passes. Offline: the suite's images are built from Debian's
# packages and served by a registry inside each run's network namespace.
# CONFORMANCE_FLAGS adds flags, e.g. -runtimes teach or -run 'TestIssue10589'.
conformance: build
	hack/tools.sh conformance
	go run ./integration/cmd/conformance -shim $(CURDIR)/$(BIN) -logs $(CURDIR)/bin/conformance $(CONFORMANCE_FLAGS)

# The long versions of the reliability scenarios (TEACH_SOAK=1: 1000 early
# exits, 2000 cycles, 1 GiB of output...). The document is written even when
# a test failed, so that it shows the failure; make still fails then. The
# commit named in it is the one the tests started on.
soak: tools build
	mkdir -p bin docs && rm -f $(RELIABILITY_RECORDS)
	status=0; rev=$$(git describe --always --dirty 2>/dev/null || echo unknown); \
	TEACH_SHIM_BIN=$(CURDIR)/$(BIN) TEACH_SOAK=1 TEACH_RELIABILITY_REPORT=$(CURDIR)/$(RELIABILITY_RECORDS) \
		go test -count=1 -timeout $(SOAK_TIMEOUT) -v -run '^TestReliability' ./integration/ || status=$$?; \
	go run ./integration/cmd/reliability-report -in $(RELIABILITY_RECORDS) -out docs/reliability.md -command "make soak" \
		-revision "$$rev" && \
	exit $$status

# Each fuzz target on its own (go test -fuzz takes one at a time); the seed
# corpora in testdata/fuzz run with every `make unit` already.
fuzz:
	@for pkg in $(UNIT_PACKAGES) ./integration/harness; do \
		for target in $$(go test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target"; \
			go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

# The benchmark runs our shim as `make install` builds it against the stock
# runc shim as containerd releases it (hack/tools.sh bench builds that), under
# one private containerd. BENCH_FLAGS adds flags, e.g. for a quick look:
#   make bench BENCH_FLAGS="-iterations 20 -stdio-mib 64 -fleet 10 -parallel-rounds 5 -doc ''"
bench: build
	hack/tools.sh bench
	go run ./bench -shim $(CURDIR)/$(BIN) $(BENCH_FLAGS)

# The walkthrough is the integration test TestWalkthrough, run from the
# compiled test binary so that its story reaches the terminal as it goes:
# each claim with PASS or FAIL and its evidence. It fails if a claim does.
walkthrough: tools build
	go test -c -o bin/integration.test ./integration
	TEACH_SHIM_BIN=$(CURDIR)/$(BIN) bin/integration.test -test.run '^TestWalkthrough$$' -test.timeout 10m -walkthrough

# The documents' captured output (inspect, trace) comes from a real run:
# TestDocsCapture lives one container's life and, with -docs, pastes what
# the commands printed into docs/ between its markers.
docs: tools-core build
	go test -c -o bin/integration.test ./integration
	TEACH_SHIM_BIN=$(CURDIR)/$(BIN) bin/integration.test -test.run '^TestDocsCapture$$' -test.timeout 10m -docs $(CURDIR)/docs

install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/$(BINARY)

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/$(BINARY)

clean:
	rm -rf bin
