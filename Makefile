# The two set-up commands of the README: `make demo` and `make test`.
GO ?= go

.PHONY: demo test vet bench fuzz

# demo runs the crash-recovery demo.
demo:
	$(GO) run ./cmd/demo

# test vets the code and runs every test under the race detector.
test: vet
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# bench runs the go test benchmarks six times, ready for benchstat.
bench:
	$(GO) test -run '^$$' -bench . -count 6 -timeout 30m ./... | tee bench.out

# fuzz runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/wire/
