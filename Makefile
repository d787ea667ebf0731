# The two set-up commands of the README: `make demo` and `make test`.
GO ?= go

.PHONY: demo test vet cross bench benchstat fuzz

# demo runs the crash-recovery demo.
demo:
	$(GO) run ./cmd/demo

# test vets the code, checks that it builds on every platform, and runs
# every test under the race detector.
test: vet cross
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# cross checks the platforms the tests do not run on: for each of PLATFORMS
# it vets every package, which type-checks the test files too, and builds
# every package and command. Test binaries are not linked: that took ten
# times as long and checks little more.
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 windows/amd64
cross:
	@for p in $(PLATFORMS); do \
		echo "cross: $$p"; \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./... && \
		GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./... || exit 1; \
	done

# bench runs the benchmark program (cmd/bench, about ten minutes with the
# scaling section at 2 to 256 workers): procpool's
# processes and goroutines against the raw pipe floor, errgroup, and Python's
# Pool and ProcessPoolExecutor when python3 is installed. It prints the table
# and target checks, and writes them, results.json and the charts to
# $(BENCH_OUT). BENCHFLAGS=-quick makes a smoke run; BENCHFLAGS=-json prints JSON.
BENCH_OUT ?= bench-results
BENCHFLAGS ?=
bench:
	$(GO) run ./cmd/bench -out $(BENCH_OUT) $(BENCHFLAGS)

# benchstat runs the go test benchmarks six times, ready for benchstat.
benchstat:
	$(GO) test -run '^$$' -bench . -count 6 -timeout 30m ./... | tee bench.out

# fuzz runs each fuzz target for FUZZTIME (default 30s).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReadFrame$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeReference$$' -fuzztime $(FUZZTIME) ./internal/wire/
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./internal/journal/
	$(GO) test -run '^$$' -fuzz '^FuzzFastDecode$$' -fuzztime $(FUZZTIME) ./internal/codec/
	$(GO) test -run '^$$' -fuzz '^FuzzFastAppend$$' -fuzztime $(FUZZTIME) ./internal/codec/
	$(GO) test -run '^$$' -fuzz '^FuzzCheckLengths$$' -fuzztime $(FUZZTIME) ./internal/codec/
