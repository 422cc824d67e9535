# Build, test and run the hardened AlloyCI runner distribution.
# `make run` starts a secured demo; `make test` runs every test with -race;
# `make unit` runs every test but e2e/, in well under a minute.

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

.PHONY: all build test unit lint fuzz bench run install clean

all: build

# A secured demo: runner on loopback, metrics-proxy with TLS and basic auth.
run: build
	./scripts/demo.sh

# The two binaries; cmd/runner is built as alloy-runner.
build:
	@mkdir -p $(BINDIR)
	@echo "go build -o $(BINDIR)/alloy-runner ./cmd/runner"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/alloy-runner ./cmd/runner
	@echo "go build -o $(BINDIR)/metrics-proxy ./cmd/metrics-proxy"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINDIR)/metrics-proxy ./cmd/metrics-proxy

# The end-to-end tests run the binaries in bin/ (ALLOY_BIN_DIR), built with the
# same flags a user gets. Fuzz seed corpora run as ordinary tests.
test: build
	./scripts/test-deps.sh
	ALLOY_BIN_DIR=$(CURDIR)/$(BINDIR) $(GO) test -race -count=1 -timeout 15m ./...

# Every package but e2e/: the quick loop while editing. Needs no test tools
# and no binaries (systemd's install test uses bin/ when it is there).
unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

lint:
	@command -v $(STATICCHECK) >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
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

# metrics-proxy against a plain TLS proxy and exporter-toolkit, side by side,
# then the runner's /metrics render time (bench/README.md). Figures and ratios,
# never pass/fail on time. A quick run: make bench BENCHFLAGS='-rate.duration 3s -flood.duration 5s -attack.duration 5s'
bench: build
	$(GO) run ./bench $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench BenchmarkRender100Builds -benchtime 2000x ./runnermetrics/

# `make install`: binaries, systemd units, sysusers.d/tmpfiles.d entries and
# docs under PREFIX; the example configs under SYSCONFDIR, only where no config
# exists yet (an existing one is never overwritten). DESTDIR stages the whole
# tree elsewhere, for packaging; without DESTDIR, as root, it also creates the
# users (systemd-sysusers) and /run/alloy-runner (systemd-tmpfiles).
# The units name the binaries by INSTALL_BINDIR, filled in here (@BINDIR@).
INSTALL        ?= install
INSTALL_BINDIR ?= $(PREFIX)/bin
UNITDIR        ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR    ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR    ?= $(PREFIX)/lib/tmpfiles.d
DOCDIR         ?= $(PREFIX)/share/doc/alloy-runner
SYSCONFDIR     ?= /etc
UNIT_SUBST      = sed -e 's|@BINDIR@|$(INSTALL_BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'

install: build
	$(INSTALL) -d $(DESTDIR)$(INSTALL_BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(DOCDIR)/examples
	$(INSTALL) -m 0755 $(BINDIR)/alloy-runner $(BINDIR)/metrics-proxy $(DESTDIR)$(INSTALL_BINDIR)/
	@set -e; for u in alloy-runner.service metrics-proxy.service metrics-proxy.socket; do \
	  echo "install systemd/$$u -> $(DESTDIR)$(UNITDIR)/$$u"; \
	  $(UNIT_SUBST) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp; \
	  chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp; mv -f $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u; \
	done
	$(INSTALL) -m 0644 systemd/alloy-runner.sysusers $(DESTDIR)$(SYSUSERSDIR)/alloy-runner.conf
	$(INSTALL) -m 0644 systemd/alloy-runner.tmpfiles $(DESTDIR)$(TMPFILESDIR)/alloy-runner.conf
	@set -e; for f in systemd/*.d/*.example; do \
	  d=$(DESTDIR)$(DOCDIR)/examples/$${f#systemd/}; $(INSTALL) -d $$(dirname $$d); \
	  $(UNIT_SUBST) $$f > $$d; chmod 0644 $$d; \
	done
	$(INSTALL) -m 0644 systemd/README.md $(DESTDIR)$(DOCDIR)/README.md
	$(INSTALL) -m 0644 examples/config.toml examples/nftables-metrics-proxy.nft web-config.yml.example \
	  $(DESTDIR)$(DOCDIR)/examples/
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then \
	  echo "systemd-sysusers $(SYSUSERSDIR)/alloy-runner.conf"; systemd-sysusers $(SYSUSERSDIR)/alloy-runner.conf; \
	  echo "systemd-tmpfiles --create $(TMPFILESDIR)/alloy-runner.conf"; systemd-tmpfiles --create $(TMPFILESDIR)/alloy-runner.conf; \
	fi
	@set -e; \
	config() { \
	  src=$$1 dst=$(DESTDIR)$(SYSCONFDIR)/$$2 group=$$3 dirmode=$$4; dir=$$(dirname $$dst); \
	  if [ -e "$$dst" ] || [ -L "$$dst" ]; then echo "kept existing $$dst (not overwritten)"; return 0; fi; \
	  new_dir=; if [ ! -d "$$dir" ]; then $(INSTALL) -d -m $$dirmode "$$dir"; new_dir=$$dir; fi; \
	  $(INSTALL) -m 0640 "$$src" "$$dst"; echo "install $$src -> $$dst"; \
	  if [ -z "$(DESTDIR)" ] && getent group $$group >/dev/null; then chgrp $$group "$$dst" $$new_dir; \
	  else echo "  make it readable by its service: chgrp $$group $(SYSCONFDIR)/$$2$${new_dir:+ $$(dirname $(SYSCONFDIR)/$$2)}"; fi; \
	}; \
	config examples/config.toml alloy-runner/config.toml alloy-runner 0755; \
	config web-config.yml.example metrics-proxy/web-config.yml metrics-proxy 0750
	@if [ -z "$(DESTDIR)" ]; then \
	  echo "next: edit $(SYSCONFDIR)/alloy-runner/config.toml and $(SYSCONFDIR)/metrics-proxy/web-config.yml, then"; \
	  echo "  systemctl daemon-reload && systemctl enable --now alloy-runner.service metrics-proxy.service"; \
	  echo "  (see $(DOCDIR)/README.md)"; \
	fi

clean:
	rm -rf $(BINDIR)

# `make deb`: dist/alloy-runner_VERSION_ARCH.deb and dist/metrics-proxy_…,
# built with nfpm at a pinned version from static binaries and the units as
# make install renders them for /usr (packaging/README.md). DEB_VERSION comes
# from VERSION (packaging/deb-version.sh); the date in the packages from the
# last commit (SOURCE_DATE_EPOCH).
NFPM              ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEBDIR            ?= dist
DEB_BUILD         := $(DEBDIR)/deb
DEB_VERSION       ?= $(shell packaging/deb-version.sh '$(VERSION)' "$$(git rev-list --count HEAD 2>/dev/null || echo 0)")
DEB_ARCH          ?= $(shell $(GO) env GOARCH)
DEB_MAINTAINER    ?= AlloyCI hardened runner maintainers <alloy-runner@alloyci.invalid>
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
DEB_ENV            = DEB_VERSION='$(DEB_VERSION)' DEB_ARCH='$(DEB_ARCH)' DEB_MAINTAINER='$(DEB_MAINTAINER)' \
	SOURCE_DATE_EPOCH='$(SOURCE_DATE_EPOCH)' DEB_STAGE='$(DEB_BUILD)/stage' DEB_BIN='$(DEB_BUILD)/bin'

.PHONY: deb test-system
deb:
	@test -n "$(DEB_VERSION)" || { echo "make deb: no Debian version from VERSION=$(VERSION) (packaging/deb-version.sh)" >&2; exit 1; }
	@mkdir -p $(DEB_BUILD)/bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_BUILD)/bin/alloy-runner ./cmd/runner
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_BUILD)/bin/metrics-proxy ./cmd/metrics-proxy
	$(DEB_ENV) ./packaging/stage.sh $(DEB_BUILD)/stage
	@rm -f $(DEBDIR)/alloy-runner_*.deb $(DEBDIR)/metrics-proxy_*.deb
	@set -e; for p in alloy-runner metrics-proxy; do \
	  echo "nfpm package --config packaging/$$p.yaml --packager deb --target $(DEBDIR)/"; \
	  $(DEB_ENV) $(NFPM) package --config packaging/$$p.yaml --packager deb --target $(DEBDIR)/; \
	done

# `make test-system`: the packages under a real systemd. A Debian 12 root made
# with mmdebstrap (cached in SYSTEM_TEST_CACHE), booted with systemd-nspawn
# on a private network; the .debs installed, configured and scraped through the
# proxy with every drop-in, reloaded, stopped, scored, removed and purged; and
# lintian on both (packaging/README.md). Root only; installs its tools with
# apt-get. A few minutes, so not part of make test.
SYSTEM_TEST_CACHE ?= /var/cache/alloy-runner-system-test
test-system: deb
	./packaging/system-test-deps.sh
	ALLOY_SYSTEM_TEST_DEBS=$(CURDIR)/$(DEBDIR) ALLOY_SYSTEM_TEST_CACHE=$(SYSTEM_TEST_CACHE) \
	  $(GO) test -count=1 -v -timeout 20m -run '^(TestLintian|TestSystem)$$' ./packaging/

# The monitoring mixin (mixin/README.md): promtool checks the rule files and
# runs their unit tests (make test does too, in e2e/mixin_test.go).
.PHONY: mixin
mixin:
	promtool check rules mixin/alerts.yml mixin/rules.yml
	promtool test rules mixin/tests.yml
