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

.PHONY: all build test test-unit test-kernel test-kernelvm test-e2e deps plugin install demo bench clean

all: build

build: $(BIN) bin/echoserver

bin/echoserver: test/e2e/echoserver/main.go
	CGO_ENABLED=0 $(GO) build -o $@ ./test/e2e/echoserver

$(BIN): $(shell find . -name '*.go' -not -path './.cache/*') go.mod go.sum
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $@ ./cmd/v6bridge

deps:
	bash scripts/install-deps.sh

# Unit tests run without root; kernel tests (TestPrivileged*) need root and
# run in throwaway network namespaces.
test-unit:
	$(GO) test -count=1 ./...

test-kernel:
	$(GO) test -count=1 -run 'Privileged' -v ./... 2>&1 | grep -E '^(=== RUN|--- |ok|FAIL|PASS)' | grep -v '=== RUN' || true
	$(GO) test -count=1 -run 'Privileged' ./...

# Kernel tests that need what this host's kernel may lack (flowtables for
# the fast path), under Debian's kernel in qemu.
test-kernelvm: deps
	bash test/kernelvm/run.sh

test-e2e: deps build
	bash test/e2e/run.sh $(ENGINES)

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	bash test/kernelvm/run.sh
	$(MAKE) build
	bash test/e2e/run.sh $(ENGINES)

# The managed plugin: a rootfs with the static binary and config.json,
# created in the engine DOCKER_HOST names (replacing an existing one).
plugin: build
	bash plugin/create.sh "$(PLUGIN)" "$(BIN)" "$(PLUGINDIR)" "$(STATE_SOURCE)"

install: plugin
	docker plugin enable $(PLUGIN)
	docker plugin ls

demo: deps build
	bash test/e2e/demo.sh

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem ./ipam/... ./nat/...
	bash bench/bench.sh

clean:
	rm -rf bin $(PLUGINDIR)
