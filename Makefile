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

# The appliance image of one site (packaging/image/build.sh --help): as root,
#   make image DOMAIN=site.example.com [ADDRESS=192.168.100.2/24] [ROUTER=...]
#     [RANGE=START-END] [INTERFACE=...] [PFX=site.pfx PFX_PASSWORD_FILE=file]
#     [ROOT_PASSWORD_FILE=file] [DISK=1: also the bootable UEFI disk .img]
image:
	@if [ -z "$(DOMAIN)" ]; then echo "usage: make image DOMAIN=site.example.com [ADDRESS=A/N] [ROUTER=R] [RANGE=S-E] [INTERFACE=IF] [PFX=FILE PFX_PASSWORD_FILE=FILE] [ROOT_PASSWORD_FILE=FILE] [DISK=1]" >&2; exit 2; fi
	packaging/image/build.sh --domain '$(DOMAIN)' --out dist \
	  $(if $(ADDRESS),--address '$(ADDRESS)') $(if $(ROUTER),--router '$(ROUTER)') \
	  $(if $(RANGE),--range '$(RANGE)') $(if $(INTERFACE),--interface '$(INTERFACE)') \
	  $(if $(PFX),--pfx '$(PFX)' --pfx-password-file '$(PFX_PASSWORD_FILE)') \
	  $(if $(ROOT_PASSWORD_FILE),--root-password-file '$(ROOT_PASSWORD_FILE)') \
	  $(if $(DISK),--disk)

clean:
	rm -rf bin dist
