# acmediag — two commands do all the set-up on a fresh machine:
#   make demo   the main job on the embedded universe (no cluster, no internet)
#   make test   the whole suite
# Both install what they need: Go modules, tools built from Go modules into
# .cache/tools, and Debian packages (unbound, nftables) via apt-get when root.

SHELL      := /bin/bash
GO         ?= go
CACHE      := $(CURDIR)/.cache
TOOLS      := $(CACHE)/tools
BIN        := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
export GOFLAGS ?= -mod=mod

.PHONY: all build test test-short demo lint bench fuzz deps tools clean

all: build

build:
	$(GO) build -o $(BIN)/acmediag ./cmd/acmediag

# deps installs the Debian packages the hermetic universe runs (when root),
# or says exactly what is missing.
deps:
	@bash scripts/deps.sh

# tools builds every server and utility the universe runs (Pebble, etcd,
# kube-apiserver, helm, promtool, Prometheus) from its module pinned under
# testenv/tools into the tools cache, ${ACMEDIAG_TOOLS_CACHE:-~/.cache/acmediag/tools}
# (linked from .cache/tools). Cold: about 30 minutes on 2 cores; warm: a second.
# Tests build what they lack on demand too, but a cold Prometheus build does
# not fit in one test binary's -timeout, so test builds them first.
tools:
	$(GO) run ./testenv/toolbuild/cmd/toolbuild

test: deps build lint tools
	@bash scripts/test.sh

# test-short skips the integration tier (no Unbound needed).
test-short:
	$(GO) test -short ./...

# demo runs the universe and the daemon (three vantages, canary orders at
# Pebble) for DEMO_SECONDS, printing the page and metrics URLs, progress
# every 10 s and every name's report at the end. CLUSTER=1 adds the real
# API server (etcd and kube-apiserver, built into the tools cache first:
# about 6 minutes cold on 2 cores, a second warm) with three cert-manager
# Certificates renewing, and prints the daemon's Events and timelines.
DEMO_SECONDS ?= 60
CLUSTER ?=
demo: deps build
ifneq ($(filter-out 0,$(CLUSTER)),)
	$(GO) run ./testenv/toolbuild/cmd/toolbuild etcd kube-apiserver
	$(BIN)/acmediag testenv demo --seconds $(DEMO_SECONDS) --cluster
else
	$(BIN)/acmediag testenv demo --seconds $(DEMO_SECONDS)
endif

lint: $(TOOLS)/staticcheck
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...

$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

bench: deps build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 20x ./...

# fuzz runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 1m
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

clean:
	rm -rf $(BIN) $(CACHE)
