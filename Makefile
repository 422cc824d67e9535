# Build, test and run the hardened AlloyCI runner distribution.
# `make run` starts a secured demo; `make test` runs every test with -race.

GO        ?= go
PREFIX    ?= /usr/local
DESTDIR   ?=
BINDIR    := bin

# Version information injected into both binaries (see `--version`).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.0.0-dev)
REVISION   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u '+%Y-%m-%dT%H:%M:%SZ')
VPKG       := github.com/prometheus/common/version
LDFLAGS    := -s -w \
	-X $(VPKG).Version=$(VERSION) \
	-X $(VPKG).Revision=$(REVISION) \
	-X $(VPKG).Branch=$(BRANCH) \
	-X $(VPKG).BuildUser=alloy-runner-build \
	-X $(VPKG).BuildDate=$(BUILD_DATE)

STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/staticcheck)

.PHONY: all build test lint fuzz bench run install clean

# A secured demo: runner on loopback, metrics-proxy with TLS and basic auth.
run: build
	./scripts/demo.sh

all: build

# Every command under cmd/ is built; cmd/runner is installed as alloy-runner.
build:
	@mkdir -p $(BINDIR)
	@set -e; for d in cmd/*/; do \
	  ls $$d*.go >/dev/null 2>&1 || continue; \
	  name=$$(basename $$d); [ $$name = runner ] && name=alloy-runner; \
	  echo "go build -o $(BINDIR)/$$name ./$$d"; \
	  $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/$$name ./$$d; \
	done

# The end-to-end tests run the binaries in bin/ (ALLOY_BIN_DIR), built with the
# same flags a user gets. Fuzz seed corpora run as ordinary tests.
test: build
	ALLOY_BIN_DIR=$(CURDIR)/$(BINDIR) $(GO) test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

# Long fuzzing runs: FUZZTIME per target (default 10m).
FUZZTIME ?= 10m
fuzz:
	@set -e; for t in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$t/*_test.go | sed 's/func //'); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$t; \
	  done; done

clean:
	rm -rf $(BINDIR)
