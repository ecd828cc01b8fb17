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

.PHONY: all build test test-unit test-kernel test-kernelvm test-e2e test-slow test-matrix deps plugin install demo bench clean release push

all: build

build: $(BIN) bin/echoserver bin/promcheck

bin/promcheck: test/e2e/promcheck/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./test/e2e/promcheck

bin/echoserver: test/e2e/echoserver/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./test/e2e/echoserver

$(BIN): $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./cmd/v6bridge

# A target that runs others (test, test-slow) installs once and tells them
# so with DEPS_DONE=1.
deps:
	@[ -n "$(DEPS_DONE)" ] || bash scripts/install-deps.sh

# The test tiers (README, Development). test-unit: every package with the race
# detector, for any user on a fresh clone; kernel tests skip unless V6B_KERNEL=1
# (whatever the uid), so it creates no namespace. test-kernel: the kernel tests
# (TestPrivileged*, in throwaway network namespaces), once, as root; it builds only
# the packages that have some.
KERNEL_PKGS = $(sort $(dir $(shell grep -rl --exclude-dir=.cache --include='*_test.go' '^func TestPrivileged' .)))

test-unit:
	V6B_KERNEL=0 V6B_E2E=0 $(GO) test -race -count=1 ./...

test-kernel:
	V6B_KERNEL=1 V6B_E2E=0 $(GO) test -count=1 -run '^TestPrivileged' $(KERNEL_PKGS)

# Kernel tests that need what this host's kernel may lack (flowtables for
# the fast path), under Debian's kernel in qemu.
# The fast path's kernel tests under Debian's kernel in qemu (this VM's
# kernel has no flowtables). Not part of make test: emulated (TCG) timing
# made them flaky on a loaded machine; run them when changing the fast path.
test-kernelvm: deps
	V6B_KERNELVM=1 bash scripts/install-deps.sh
	bash test/kernelvm/run.sh

# The end-to-end tier: one Go package (test/e2e) that owns the simulated
# VPS rig; areas per engine variant, the variants in parallel; it prints
# each area's wall time and the total. One area on one variant:
#   V6B_E2E=1 go test ./test/e2e -v -run 'TestE2E/current/lifecycle'
E2E_GO = V6B_E2E=1 V6B_E2E_VARIANTS="$(ENGINES)" $(GO) test -count=1 -v -timeout 30m ./test/e2e

test-matrix: deps
	$(E2E_GO)

test-e2e: deps
	$(E2E_GO) -run '^TestE2E$$'

# Not in make test: the swarm, the upgrade through the registry on the
# legacy engine with the full pause, the 60 s NDP soak, and the fast path's
# kernel tests under Debian's kernel in qemu.
test-slow: deps
	V6B_E2E_SLOW=1 $(E2E_GO) -timeout 60m -run '^TestE2E(Slow|Swarm)$$'
	$(MAKE) test-kernelvm DEPS_DONE=1

# vet, then every tier in turn, each one's time and the total printed; stops at
# the first tier that fails.
test: deps
	$(GO) vet ./...
	@t0=$$(date +%s); for t in test-unit test-kernel test-e2e; do s=$$(date +%s); \
		$(MAKE) --no-print-directory $$t DEPS_DONE=1 || { echo "make test: $$t FAILED after $$(($$(date +%s) - s))s"; exit 1; }; \
		echo "make test: $$t passed in $$(($$(date +%s) - s))s"; done; \
	echo "make test: the tiers passed in $$(($$(date +%s) - t0))s"

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

# The seed scenario on a simulated IPv6-only VPS with the current engine
# and the managed plugin (TestE2E/current/demo): prints its checks.
# V6B_DEMO_ENGINE=legacy make demo plays it on Docker 20.10 (current-nft: the
# current engine with its nftables firewall backend).
DEMO_ENGINE = $(or $(V6B_DEMO_ENGINE),current)
demo: deps
	$(GO) test -c -o bin/e2e.test ./test/e2e
	cd test/e2e && V6B_E2E=1 V6B_E2E_DEMO=1 V6B_E2E_VARIANTS=$(DEMO_ENGINE) V6B_E2E_PREFIX=$${V6B_E2E_PREFIX:-demo} \
		../../bin/e2e.test -test.count=1 -test.timeout 10m -test.run '^TestE2E$$/^$(DEMO_ENGINE)$$/^demo$$'

bench: deps build
	V6B_KERNEL=1 $(GO) test -run '^$$' -bench . -benchmem ./ipam/... ./nat/... ./ndp/...
	bash bench/bench.sh

clean:
	rm -rf bin $(PLUGINDIR) $(RELEASEDIR)
