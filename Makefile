# eddy's everyday commands. `make test` is the test command CI runs.

GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test race bench lint fmt

# All tests: unit, scenario, randomized reference checks, examples' smoke tests.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...

# The same tests under the race detector.
race:
	$(GO) test -count=1 -race ./...

# Benchmarks: WA1 windowed count on the embedded log (see benchmarks/doc.go).
# Pass flags with BENCHFLAGS, e.g. BENCHFLAGS='-wa1.events=10000000'.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 1x ./benchmarks/ $(BENCHFLAGS)

# gofmt, go vet and staticcheck (fetched from the Go module proxy).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

fmt:
	gofmt -w .
