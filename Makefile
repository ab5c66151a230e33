# amtd build, test and packaging. See README.md.
SHELL := /bin/bash
GO ?= go
STATICCHECK ?= $(shell command -v staticcheck || echo $(HOME)/go/bin/staticcheck)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
export CGO_ENABLED ?= 1

.PHONY: all build test demo bench fuzz lint deb image clean deps

all: build

# Debian packages and Go tools the tests and the demo need (installs what is missing).
deps:
	@scripts/deps.sh

build:
	@if [ "$$($(GO) env CGO_ENABLED)" != 1 ]; then echo "amtd needs cgo (go-sqlite3): set CGO_ENABLED=1 and install gcc" >&2; exit 1; fi
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/amtd ./cmd/amtd
	$(GO) build -trimpath -o bin/amtsim ./cmd/amtsim

test: deps build lint
	$(GO) test -race -count=1 -timeout 45m ./...

bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# A short run of every fuzz target (FUZZTIME each).
FUZZTIME ?= 10s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

demo: deps build
	@scripts/demo.sh

deb:
	packaging/deb/build.sh --out dist

image:
	@echo "make image: not yet (issue 7)"

clean:
	rm -rf bin dist
