# Mana personas backend. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
TOOLS       := $(CURDIR)/.tools
GOLANGCI    := $(TOOLS)/golangci-lint
GOLANGCI_VERSION := v2.15.0
PACKAGES    := github.com/mana/personas/...
PROGRAMS    := personas-internal personas-admin personasctl mana-auth-dev
UI_DIR      := services/personas-admin/ui
# Finds, starts or installs PostgreSQL and prints its URL (honours DATABASE_URL).
DB_URL       = $(shell deploy/scripts/db.sh)

FUZZTIME    ?= 10s

.PHONY: help ui build test test-browser fuzz lint fmt bench bench-big bench-prune migrate dev db images clean tools

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

# npm ci only when node_modules is missing or older than the lockfile (npm ci
# writes node_modules/.package-lock.json), so repeated builds stay fast.
ui: ## build the admin dashboard into services/personas-admin/ui/dist (embedded by personas-admin)
	@command -v npm >/dev/null || { echo "make ui: npm is missing (Node 20+ with npm: apt-get install -y nodejs npm)" >&2; exit 1; }
	@cd $(UI_DIR) && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then \
	  npm ci --no-audit --no-fund; fi && npm run --silent build

build: ui ## build every program into bin/ (the dashboard first: personas-admin embeds it)
	@mkdir -p bin
	@for p in $(PROGRAMS); do \
	  if [ -d services/$$p ]; then $(GO) build -trimpath -o bin/$$p ./services/$$p || exit 1; fi; \
	done
	@ls bin

test: ui ## run every test, the dashboard's browser tests included (PostgreSQL and nginx are found, started or installed first)
	@deploy/scripts/deps.sh
	@url="$$(deploy/scripts/db.sh)"; \
	DATABASE_URL="$$url" $(GO) test -count=1 -timeout 20m $(PACKAGES)

fuzz: ## run every Go fuzz target (func Fuzz* in *_test.go) for FUZZTIME each (default 10s)
	@# go test -fuzz takes one package and one target per run.
	@dirs="$$(grep -rl --include='*_test.go' '^func Fuzz' pkg services deploy | xargs -n1 dirname | sort -u)"; \
	for d in $$dirs; do \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$d/*_test.go | sed 's/^func //' | sort -u); do \
	    echo "fuzz ./$$d $$t for $(FUZZTIME)"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$d || exit 1; \
	  done; \
	done

test-browser: ui ## only the dashboard's browser tests (Chromium); screenshots in .dev/dashboard-shots/
	@deploy/scripts/deps.sh
	@url="$$(deploy/scripts/db.sh)"; \
	DATABASE_URL="$$url" $(GO) test -count=1 -timeout 15m -run TestDashboard -v github.com/mana/personas/deploy/e2e

lint: $(GOLANGCI) ## gofmt, go vet, golangci-lint
	@out="$$(gofmt -l pkg services deploy)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PACKAGES)
	$(GOLANGCI) run $$($(GO) list -m -f '{{.Dir}}/...' | sed "s|^$(CURDIR)/|./|")

fmt: ## gofmt every Go file
	gofmt -w pkg services deploy

tools: $(GOLANGCI) ## install pinned tools into .tools/

$(GOLANGCI):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

db: ## find/start/install PostgreSQL and print DATABASE_URL
	@deploy/scripts/db.sh

migrate: build ## apply migrations to $$DATABASE_URL (or the local server)
	@url="$$(deploy/scripts/db.sh)"; DATABASE_URL="$$url" bin/personas-internal migrate

# BENCH_DB names the bench's own database (dropped and rebuilt); BENCH_FLAGS
# adds personas-bench flags (e.g. -duration 1s -rounds 1 -ports 21500).
BENCH_DB     ?= personas_bench
BENCH_BIG_DB ?= personas_bench_big

bench: build ## seed issue 13's data (10k personas, 1M actions, 100k ratings), load both services vs raw PostgreSQL, run the Go benchmarks; rewrites BENCHMARKS.md (keeps sections it does not produce)
	@url="$$(deploy/scripts/db.sh)"; export DATABASE_URL="$$url"; \
	$(GO) run ./services/personas-bench -db $(BENCH_DB) -out BENCHMARKS.md $(BENCH_FLAGS) && deploy/scripts/gobench.sh BENCHMARKS.md && \
	$(GO) run ./services/personas-internal/rss -out BENCHMARKS.md

bench-big: build ## issue 11's flatness run: the insight endpoints at 10M actions / 1M ratings; replaces its own section of BENCHMARKS.md, keeps the rest
	@url="$$(deploy/scripts/db.sh)"; export DATABASE_URL="$$url"; \
	$(GO) run ./services/personas-bench -big -db $(BENCH_BIG_DB) -out BENCHMARKS.md $(BENCH_FLAGS)

# PRUNE_ROWS old actions for bench-prune (issue 13 A asks for 1,000,000).
PRUNE_ROWS ?= 1000000
# More of TestPruneUnderIngest's flags, e.g. PRUNE_FLAGS='-prune.duty 1' (back to back, no pacing).
PRUNE_FLAGS ?=

bench-prune: ## issue 13 A: ingest while prune deletes PRUNE_ROWS old actions (a minute or two); replaces its own section of BENCHMARKS.md, keeps the rest
	@url="$$(deploy/scripts/db.sh)"; export DATABASE_URL="$$url"; md="$$(mktemp)"; trap 'rm -f "$$md"' EXIT; \
	$(GO) test -count=1 -timeout 60m -run TestPruneUnderIngest -v ./pkg/personas -prune.rows $(PRUNE_ROWS) $(PRUNE_FLAGS) -prune.md "$$md" && \
	$(GO) run ./services/personas-bench -section "$$md" -out BENCHMARKS.md

dev: build ## bring the whole system up locally (Ctrl-C stops it)
	@deploy/scripts/dev.sh

images: ## build container images (needs a Docker engine)
	@deploy/scripts/images.sh

clean: ## remove build output
	rm -rf bin
