# falco-k8s build, test and benchmark entry points. Every target works on a fresh machine with
# Go 1.26; `make test` is what CI runs (via .ci/run).
GO       ?= go
BIN      := bin/falco-k8s
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
SHARED   ?= ../shared
# kube-apiserver for the kube tier (scripts/build-kube-apiserver.sh; version as in e2e/kube-apiserver/go.mod).
KUBE_ASSETS ?= $(or $(FALCO_K8S_E2E_ASSETS),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/falco-k8s/k8s-v1.31.4)

.PHONY: all build test test-allocs test-plugindiff test-short lint bench run clean fuzz e2e e2e-kube charm bench-charm

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/falco-k8s

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

test: lint
	$(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory test-allocs
	$(MAKE) --no-print-directory test-plugindiff
	$(MAKE) e2e

# End-to-end scripts against real processes (Debian's docker-registry). In CI a missing tool is
# a failure; on a developer machine the scripts are skipped with a notice.
e2e: build
	@if command -v docker-registry >/dev/null && command -v htpasswd >/dev/null && command -v curl >/dev/null; then \
	  scripts/e2e-registry.sh $(BIN); \
	elif [ "$$CI" = true ]; then echo "e2e: docker-registry/htpasswd/curl missing in CI" >&2; exit 1; \
	else echo "e2e: skipped (apt-get install -y docker-registry apache2-utils curl)"; fi
	@if [ "$$CI" = true ] || [ -x "$(KUBE_ASSETS)/kube-apiserver" ]; then \
	  $(MAKE) --no-print-directory e2e-kube; \
	else echo "e2e-kube: skipped: no kube-apiserver in $(KUBE_ASSETS) (make e2e-kube builds it once, 5-10 min)"; fi

# The kube tier: a real kube-apiserver (built from the pinned k8s.io/kubernetes by
# scripts/build-kube-apiserver.sh, cached in KUBE_ASSETS) and Debian's etcd (apt-get install -y
# etcd-server), the audit webhook posting to the agent binary; plus internal/kube's client tests
# against the same kind of control plane. Missing etcd fails in CI and skips elsewhere.
e2e-kube: build
	FALCO_K8S_E2E_ASSETS='$(KUBE_ASSETS)' scripts/build-kube-apiserver.sh >/dev/null
	FALCO_K8S_E2E=1 FALCO_K8S_E2E_ASSETS='$(KUBE_ASSETS)' FALCO_K8S_BIN='$(abspath $(BIN))' \
	  $(GO) test -race -count=1 -timeout 15m -v ./e2e/ ./internal/kube/

# The Juju charm: the same static binary as dispatch, the three yaml files, manifest.yaml,
# README.md and LICENSE (internal/charmpack; needs only Go). Deploy with
# juju deploy ./falco-k8s.charm --resource falco-image=ubuntu:24.04
# Both architectures charmcraft.yaml declares: falco-k8s_amd64.charm and falco-k8s_arm64.charm,
# and falco-k8s.charm for this machine's.
charm:
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/dispatch-$$arch ./cmd/falco-k8s && \
		$(GO) run ./internal/charmpack/cmd -dispatch bin/dispatch-$$arch -arch $$arch -o falco-k8s_$$arch.charm . || exit 1; \
	done
	cp falco-k8s_$$($(GO) env GOARCH).charm falco-k8s.charm

# Hook latency of the real charm binary against a real Pebble running the real agent.
bench-charm:
	$(GO) test -run '^$$' -bench Hook -benchtime 20x ./charm/charmtest/

# The zero-allocation tests skip under -race (the race detector allocates), so they run once more
# without it; the step fails unless the decoder's steady-state test actually passed.
test-allocs:
	@out=$$($(GO) test -count=1 -v -run 'SteadyStateAllocs|ZeroAlloc|NoAlloc' ./engine/... 2>&1); status=$$?; \
	  echo "$$out" | grep -E -- '^(--- |ok|FAIL)'; \
	  [ $$status -eq 0 ] && echo "$$out" | grep -q -- '--- PASS: TestSteadyStateAllocs' || \
	  { echo "test-allocs: the zero-allocation test failed or did not run" >&2; exit 1; }

# The plugin-fields differential, a module of its own (engine/k8saudit/plugindiff): the real
# k8saudit 0.18.0 and json 0.7.4 plugins' Go code (their SDK is cgo: gcc) extracting every
# declared field in-process next to the engine, on the seeded corpus of shared traces,
# kube-apiserver batches and hostile mutations. Without -race: the harness is sequential and
# the engine's concurrency is race-tested above; under -race it takes 5x as long.
test-plugindiff:
	cd engine/k8saudit/plugindiff && CGO_ENABLED=1 $(GO) vet ./... && CGO_ENABLED=1 $(GO) test -count=1 ./...

test-short:
	$(GO) test -short -count=1 ./...

# Benchmarks print events/s per core and allocations per event for the upstream k8s ruleset over
# a realistic audit mix, next to the decode-only encoding/json baseline.
# The agent benchmarks post 400-event batches with kube-apiserver's own webhook client over TLS
# (events/s, p50/p99 batch latency, peak RSS) and swap rulesets under load (lost events).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s -cpu 1 ./engine/
	$(GO) test -run '^$$' -bench 'WebhookThroughput|WebhookLatencyAtRate' -benchtime 200x ./agent/
	$(GO) test -run '^$$' -bench SwapUnderLoad -benchtime 1x -count 3 ./agent/
	$(GO) test -run '^$$' -bench ServeReview -benchmem -benchtime 2s -cpu 1 ./agent/admission/
	$(GO) test -run '^$$' -bench AdmissionLatency -benchtime 3000x ./agent/
	$(GO) test -run '^$$' -bench 'PushToActive|SyncToActive' -benchtime 10x ./agent/follower/
	$(GO) test -run '^$$' -bench SwapUnderLoad -benchtime 1x ./agent/follower/
	# Scale-out (issue 12): push to all units active, registry requests per interval, 1 and 3 units.
	$(GO) test -run '^$$' -bench ScaleOut -benchtime 3x ./charm/charmtest/

# Short fuzzing of every parser: every Fuzz target in the module, FUZZTIME each (discovered by
# scripts/fuzz.sh). Longer runs: FUZZTIME=10m make fuzz, or go test -fuzz=NAME ./pkg
FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

# The demo: real kube-apiserver audit batches replayed through the upstream k8s ruleset.
run: build
	./scripts/demo.sh

clean:
	rm -rf bin falco-k8s.charm falco-k8s_amd64.charm falco-k8s_arm64.charm
