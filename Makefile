# eddy's everyday commands. `make test` is the test command CI runs.

GO ?= go
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: test race bench lint fmt kafka-fetch kafka-start kafka-stop kafka-status test-kafka test-crash

# All tests: unit, scenario, randomized reference checks, examples' smoke tests.
test:
	$(GO) vet ./...
	$(GO) test -count=1 ./...
	@[ -n "$$EDDY_KAFKA_BROKERS" ] || echo "note: real-broker tests skipped (EDDY_KAFKA_BROKERS unset); run make test-kafka"

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

# A real Apache Kafka broker on 127.0.0.1:9092 (KRaft, one node) for the RealKafka tests:
# jars from Maven Central (scripts/kafka/pom.xml), data and logs in scripts/kafka/_run/broker.
# Needs java >= 17 and mvn. See scripts/kafka/README.md.
KAFKA_SH := scripts/kafka/kafka.sh
KAFKA_BROKERS ?= 127.0.0.1:$(or $(EDDY_KAFKA_PORT),9092)
KAFKA_TEST_TIMEOUT ?= 20m
# The packages holding RealKafka tests; add a package here when it gets one.
KAFKA_TEST_PKGS ?= ./broker/kafka ./engine ./examples/pageviews ./examples/payments ./examples/enrichment ./examples/sessions ./benchmarks ./cmd/eddy

kafka-fetch:
	$(KAFKA_SH) fetch

kafka-start:
	$(KAFKA_SH) start

kafka-stop:
	$(KAFKA_SH) stop

kafka-status:
	$(KAFKA_SH) status

# The RealKafka tests against a running broker (make kafka-start first; other brokers:
# KAFKA_BROKERS=host:port,...). Fails if any RealKafka test fails or is skipped, or if none ran.
test-kafka: SHELL := bash
test-kafka: .SHELLFLAGS := -o pipefail -c
test-kafka:
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	echo "== RealKafka tests against EDDY_KAFKA_BROKERS=$(KAFKA_BROKERS)"; \
	rc=0; EDDY_KAFKA_BROKERS='$(KAFKA_BROKERS)' $(GO) test -count=1 -v -timeout $(KAFKA_TEST_TIMEOUT) \
		-run 'RealKafka' $(KAFKA_TEST_PKGS) 2>&1 | tee "$$out" || rc=$$?; \
	skipped=$$(grep -E -e '--- SKIP: .*RealKafka' "$$out" || true); \
	passed=$$(grep -E -c -e '--- PASS: .*RealKafka' "$$out" || true); \
	if [ "$$rc" -ne 0 ]; then echo "test-kafka: FAIL: go test exited $$rc"; exit 1; fi; \
	if [ -n "$$skipped" ]; then \
		echo "test-kafka: FAIL: RealKafka tests were skipped (is the broker at $(KAFKA_BROKERS) up? make kafka-start):"; \
		echo "$$skipped"; exit 1; fi; \
	if [ "$$passed" -eq 0 ]; then \
		echo "test-kafka: FAIL: no RealKafka test ran (no '--- PASS: ...RealKafka' line)"; exit 1; fi; \
	echo "RealKafka tests and subtests, none skipped:"; \
	echo "test-kafka: $$passed passed, 0 failed"

# The crash harness at scale (engine/crash_test.go): a pipeline process killed with SIGKILL
# CRASH_KILLS times on the embedded log, CRASH_KAFKA_KILLS times on kfake and on the real
# broker (make kafka-start first), exactly-once and (Kafka) at-least-once; each run must end
# with 0 missing, and exactly-once runs with 0 duplicates.
CRASH_KILLS ?= 200
CRASH_KAFKA_KILLS ?= 20
test-crash: SHELL := bash
test-crash: .SHELLFLAGS := -o pipefail -c
test-crash:
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	echo "== crash harness: $(CRASH_KILLS) kills embedded, $(CRASH_KAFKA_KILLS) on kfake and on the real broker $(KAFKA_BROKERS)"; \
	rc=0; EDDY_KAFKA_BROKERS='$(KAFKA_BROKERS)' EDDY_CRASH_KILLS=$(CRASH_KILLS) EDDY_CRASH_KAFKA_KILLS=$(CRASH_KAFKA_KILLS) \
		$(GO) test -count=1 -v -timeout 40m -run 'Crash' ./engine 2>&1 | grep -v -E -e '^ +crash_test.go:[0-9]+: kill [0-9]+:' | tee "$$out" || rc=$$?; \
	if [ "$$rc" -ne 0 ]; then echo "test-crash: FAIL: go test exited $$rc"; exit 1; fi; \
	if grep -q -E -e '--- SKIP' "$$out"; then echo "test-crash: FAIL: a crash test was skipped (is the broker at $(KAFKA_BROKERS) up? make kafka-start)"; exit 1; fi; \
	n=$$(grep -c -E -e '--- PASS: Test(Crash|RealKafkaCrash)' "$$out" || true); \
	if [ "$$n" -ne 5 ]; then echo "test-crash: FAIL: $$n of 5 crash tests passed"; exit 1; fi; \
	echo "test-crash: embedded, kfake and real-broker crash runs passed:"; grep -E -e 'kills [0-9]+ \(' "$$out"
