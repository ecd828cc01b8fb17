# v6bridge. `make demo` plays the seed scenario on a simulated IPv6-only
# host; `make test` runs unit, kernel and end-to-end tests. Both install
# what they need (scripts/install-deps.sh) and must run as root.

GO        ?= go
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
BIN       := bin/v6bridge
PLUGIN    ?= v6bridge:latest
PLUGINDIR := plugin/build
# Host directory mounted as the plugin's state (must survive upgrades).
STATE_SOURCE ?= /var/lib/v6bridge
ENGINES   ?= legacy current current-nft

# Release: the plugin for each architecture (plugin images have no manifest
# lists: one tag per architecture, $(TAG)-amd64, $(TAG)-arm64).
ARCHES    ?= amd64 arm64
TAG       ?= $(VERSION)
RELEASEDIR := plugin/release

.PHONY: all build test test-unit test-kernel test-kernelvm test-e2e test-matrix deps plugin install demo bench clean release push

all: build

build: $(BIN) bin/echoserver bin/promcheck

bin/promcheck: test/e2e/promcheck/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./test/e2e/promcheck

bin/echoserver: test/e2e/echoserver/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./test/e2e/echoserver

$(BIN): $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./cmd/v6bridge

deps:
	bash scripts/install-deps.sh

# Unit tests run without root; kernel tests (TestPrivileged*) need root and
# run in throwaway network namespaces.
test-unit:
	V6B_E2E=0 $(GO) test -count=1 ./...

test-kernel:
	$(GO) test -count=1 -run 'Privileged' -v ./... 2>&1 | grep -E '^(=== RUN|--- |ok|FAIL|PASS)' | grep -v '=== RUN' || true
	$(GO) test -count=1 -run 'Privileged' ./...

# Kernel tests that need what this host's kernel may lack (flowtables for
# the fast path), under Debian's kernel in qemu.
# The fast path's kernel tests under Debian's kernel in qemu (this VM's
# kernel has no flowtables). Not part of make test: emulated (TCG) timing
# made them flaky on a loaded machine; run them when changing the fast path.
test-kernelvm: deps
	V6B_KERNELVM=1 bash scripts/install-deps.sh
	bash test/kernelvm/run.sh

# The Go end-to-end package (test/e2e/*_test.go): make demo's checks
# (demo.sh) and the publishing matrix of issue 9 on each engine variant,
# about 10 minutes for all three. One cell alone:
#   V6B_E2E=1 go test ./test/e2e -v -run 'TestE2E/publish/current$/compose$'
E2E_GO = V6B_E2E=1 V6B_E2E_VARIANTS="$(ENGINES)" $(GO) test -count=1 -v -timeout 40m ./test/e2e

test-matrix: deps
	$(E2E_GO)

# The shell suite (test/e2e/run.sh: plugin_test.sh on each engine, release_test.sh,
# swarm_test.sh on the engines in V6B_SWARM_ENGINES, default current; "legacy current"
# adds 20.10, "none" leaves it out) and the Go package both run; the target fails if
# either did.
test-e2e: deps build
	bash test/e2e/run.sh $(ENGINES); rc=$$?; $(E2E_GO); rc2=$$?; [ $$rc -eq 0 ] && [ $$rc2 -eq 0 ]

test: deps
	$(GO) vet ./...
	V6B_E2E=0 $(GO) test -count=1 ./...
	$(MAKE) test-e2e

# The managed plugin: a rootfs with the static binary and config.json,
# created in the engine DOCKER_HOST names (replacing an existing one).
plugin: build
	bash plugin/create.sh "$(PLUGIN)" "$(BIN)" "$(PLUGINDIR)" "$(STATE_SOURCE)"

# make release: plugin/release/<arch>/{config.json,rootfs} for every ARCHES, and the
# static CLI plugin/release/v6bridge-$(TAG)-linux-<arch> with plugin/release/SHA256SUMS.
release:
	GO=$(GO) bash plugin/release.sh build "$(TAG)" "$(RELEASEDIR)" $(ARCHES)

# make push REGISTRY=registry.example.com/you: pushes $(REGISTRY)/v6bridge:$(TAG)-<arch>
# through the engine DOCKER_HOST names.
push: release
	@test -n "$(REGISTRY)" || { echo "make push REGISTRY=host[:port][/namespace]"; exit 2; }
	bash plugin/release.sh push "$(REGISTRY)" "$(TAG)" "$(RELEASEDIR)" $(ARCHES)

install: plugin
	docker plugin enable $(PLUGIN)
	docker plugin ls

demo: deps build
	bash test/e2e/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./ipam/... ./nat/... ./ndp/...
	bash bench/bench.sh

clean:
	rm -rf bin $(PLUGINDIR) $(RELEASEDIR)
