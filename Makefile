# GuildNet — the two commands a newcomer needs are `make dev` and `make test`.
# Everything else is a narrower target for quick loops.

SHELL := /usr/bin/env bash
GO    ?= go
BIN   := _output/bin

# Integration tests start real control planes; give them time on 2 cores.
INTEGRATION_TIMEOUT ?= 40m

.PHONY: all build tools deps dev test test-unit test-integration verify verify-codegen bench \
        verify-gofmt vet verify-ui codegen bench clean help chromium code-server images node

all: build

help: ## List the targets.
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-18s %s\n", $$1, $$2}'

deps: hack/reqlite/node_modules/.package-lock.json hack/browser/node_modules/.package-lock.json ## Install npm packages (reqlite, playwright-core) from the lockfiles.

hack/reqlite/node_modules/.package-lock.json: hack/reqlite/package.json hack/reqlite/package-lock.json
	npm ci --prefix hack/reqlite --no-audit --no-fund

# playwright-core only; the browser is Debian's chromium (target chromium), never a download.
hack/browser/node_modules/.package-lock.json: hack/browser/package.json hack/browser/package-lock.json
	PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix hack/browser --no-audit --no-fund

chromium: ## Debian's Chromium for the browser tests (apt-get as root when missing).
	hack/browser/ensure-chromium.sh

code-server: ## Install code-server on its own Node 24 into the cache (minutes once, then instant).
	hack/code-server/install.sh

images: ## Build the local cluster's images (pause, code-server workspace), cached; root (debootstrap).
	$(GO) run ./cmd/guildnet-images all

# As root: the node's packages and its images, built here so their first
# build (~3.5 min) prints its own progress instead of running inside a test's
# timeout. Not root: the local cluster runs without a node and says why.
node: ## Packages (containerd, runc, CNI, debootstrap; apt-get as root) and images for the local cluster's real node.
	hack/node/ensure-packages.sh
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory images; \
	  else echo "make node: not root, skipping the node's images (the local cluster runs without a node)"; fi

tools: ## Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl v1.37.2 (cached).
	hack/build-tools.sh

build: ## Build guildnet-apiserver and guildnet-dev into _output/bin.
	$(GO) build -o $(BIN)/ ./cmd/...

dev: deps tools build node ## Run the local control plane (as root with a real node), guildnet-apiserver and the portal (already joined) in the foreground.
	$(BIN)/guildnet-dev

test: verify test-unit test-integration ## Everything CI runs: checks, unit and integration tests.

test-unit: deps ## Unit tests (no control plane; reqlite where storage needs it).
	$(GO) test -count=1 ./apis/... ./pkg/... ./cmd/... ./portal/...

test-integration: deps tools build chromium code-server node ## Integration tests against a real local control plane, and browser tests.
	PATH="$(CURDIR)/_output/tools/bin:$$PATH" $(GO) test -count=1 -p 1 -timeout $(INTEGRATION_TIMEOUT) ./test/...

verify: verify-gofmt vet verify-codegen verify-ui ## Static checks.

verify-ui: ## Fail when portal/ui/dist is not what portal/ui/build.sh makes from the sources.
	portal/ui/verify.sh

verify-gofmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^generated/')); \
	  if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

verify-codegen: ## Fail when generated code is stale.
	hack/verify-codegen.sh

codegen: ## Regenerate code from the API types.
	hack/update-codegen.sh

clean: ## Remove build output (not the cached tools).
	rm -rf _output

bench: deps tools build chromium code-server node ## Benchmarks: storage vs a CRD, tables/rows and tables/watch vs rethinkdb-go, workspaces/proxy vs direct, the workspace reconciler (p50/p99, ratios) and apply→connected workbench on the real node.
	$(GO) run ./test/bench/storage
	$(GO) run ./test/bench/rows
	PATH="$(CURDIR)/_output/tools/bin:$$PATH" $(GO) run ./test/bench/workspace
	PATH="$(CURDIR)/_output/tools/bin:$$PATH" $(GO) run ./test/bench/realnode
