# Mana personas backend. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

GO          ?= go
TOOLS       := $(CURDIR)/.tools
GOLANGCI    := $(TOOLS)/golangci-lint
GOLANGCI_VERSION := v2.15.0
PACKAGES    := github.com/mana/personas/...
PROGRAMS    := personas-internal personas-admin personasctl mana-auth-dev
# Finds, starts or installs PostgreSQL and prints its URL (honours DATABASE_URL).
DB_URL       = $(shell deploy/scripts/db.sh)

.PHONY: help build test lint fmt bench migrate dev db images clean tools

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build every program into bin/
	@mkdir -p bin
	@for p in $(PROGRAMS); do \
	  if [ -d services/$$p ]; then $(GO) build -trimpath -o bin/$$p ./services/$$p || exit 1; fi; \
	done
	@ls bin

test: ## run every test (PostgreSQL and nginx are found, started or installed first)
	@deploy/scripts/deps.sh
	@url="$$(deploy/scripts/db.sh)"; \
	DATABASE_URL="$$url" $(GO) test -count=1 -timeout 20m $(PACKAGES)

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

bench: build ## seed 10k personas / 200k actions, load the service vs raw PostgreSQL, run the Go benchmarks; writes BENCHMARKS.md
	@url="$$(deploy/scripts/db.sh)"; export DATABASE_URL="$$url"; \
	$(GO) run ./services/personas-bench -out BENCHMARKS.md $(BENCH_FLAGS) && deploy/scripts/gobench.sh BENCHMARKS.md

dev: build ## bring the whole system up locally (Ctrl-C stops it)
	@deploy/scripts/dev.sh

images: ## build container images (needs a Docker engine)
	@deploy/scripts/images.sh

clean: ## remove build output
	rm -rf bin
