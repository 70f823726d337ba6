package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// httpDo sends a request and returns the response's status and body.
func httpDo(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// checkGet checks the status and body of GET url.
func checkGet(t *testing.T, url string, status int, body string) {
	t.Helper()
	gotStatus, gotBody := httpDo(t, http.MethodGet, url)
	if gotStatus != status || gotBody != body {
		t.Errorf("GET %s: %d %q, want %d %q", url, gotStatus, gotBody, status, body)
	}
}

// scrape reads /metrics as metricValues does.
func scrape(t *testing.T, base, app string) map[string]float64 {
	t.Helper()
	status, body := httpDo(t, http.MethodGet, base+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	var mfs []*dto.MetricFamily
	for _, mf := range families {
		mfs = append(mfs, mf)
	}
	if families["go_goroutines"] == nil || families["process_cpu_seconds_total"] == nil {
		t.Errorf("/metrics lacks the Go runtime's or the process's metrics")
	}
	return metricValues(t, mfs, app)
}

// eventually retries f until it returns nil or 10s have passed.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: %v", what, err)
}

func httpTopology() *topology.Builder {
	b := topology.New("ht")
	topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().Count(topology.Named("counts"))
	return b
}

// TestHTTPServer runs an engine with Options.HTTPAddr whose store must
// first restore a changelog of several batches: while the restore is held
// at its first batch, /readyz says so and /metrics shows its progress;
// then the engine becomes ready, serves its topology, and its metrics
// follow new input until the lag is 0. Once Run returns, the server is
// gone.
func TestHTTPServer(t *testing.T) {
	ctx := context.Background()
	log, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	produce := func(from, n int) {
		recs := make([]broker.Record, n)
		for i := range recs {
			recs[i] = broker.Record{Topic: "in", Partition: 0, Key: fmt.Appendf(nil, "k%d", from+i), Value: []byte("v")}
		}
		if err := log.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	// A first run, without HTTP, writes one changelog record per input
	// record (distinct keys, no cache): 6000, restored in two batches.
	const n, batch = 6000, 4096
	produce(0, n)
	eng1, err := engine.Open(httpTopology(), engine.Options{InMemory: true, Log: log, Bounded: true, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng1.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := eng1.Close(); err != nil {
		t.Fatal(err)
	}
	changelog := readAll(t, log, "ht-counts-changelog")
	if len(changelog[0]) != n {
		t.Fatalf("changelog has %d records, want %d", len(changelog[0]), n)
	}

	// The second starts from an empty state DB.
	restoring, release := make(chan struct{}), make(chan struct{})
	var holdOnce, releaseOnce sync.Once
	releaseRestore := func() { releaseOnce.Do(func() { close(release) }) }
	defer releaseRestore()
	// After each commit, the lag as it reports it: the highest shows that
	// the lag is not always 0.
	var (
		eng    *engine.Engine
		lagMu  sync.Mutex
		maxLag float64
	)
	engine.SetCrashHook(func(point string) {
		switch point {
		case "restore":
			holdOnce.Do(func() { close(restoring); <-release })
		case "commit.after-state":
			mfs, err := eng.Gatherer().Gather()
			if err != nil {
				t.Error(err)
				return
			}
			for _, mf := range mfs {
				if mf.GetName() == "eddy_consumer_lag_records" {
					lagMu.Lock()
					maxLag = max(maxLag, mf.GetMetric()[0].GetGauge().GetValue())
					lagMu.Unlock()
				}
			}
		}
	})
	defer engine.SetCrashHook(nil)
	// Commits as often as it polls, 10 records at a time.
	eng, err = engine.Open(httpTopology(), engine.Options{InMemory: true, Log: log, HTTPAddr: "127.0.0.1:0",
		Workers: 1, CommitInterval: time.Nanosecond, MaxPollRecords: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(runCtx) }()
	select {
	case <-restoring:
	case err := <-runErr:
		t.Fatalf("Run returned %v before restoring", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no restore")
	}
	base := "http://" + eng.HTTPAddr()

	checkGet(t, base+"/readyz", http.StatusServiceUnavailable, "restoring 1 stores\n")
	checkGet(t, base+"/healthz", http.StatusOK, "ok\n")
	restoreMetrics := func() map[string]float64 {
		got := scrape(t, base, "ht")
		return map[string]float64{
			"restored":  got["eddy_restored_records_total"],
			"remaining": got["eddy_restore_remaining_records"],
		}
	}
	if diff := gocmp.Diff(map[string]float64{"restored": batch, "remaining": n - batch}, restoreMetrics()); diff != "" {
		t.Errorf("restore metrics at the first batch (-want +got):\n%s", diff)
	}
	releaseRestore()
	eventually(t, "ready", func() error {
		if status, body := httpDo(t, http.MethodGet, base+"/readyz"); status != http.StatusOK || body != "ok\n" {
			return fmt.Errorf("/readyz: %d %q", status, body)
		}
		return nil
	})
	if diff := gocmp.Diff(map[string]float64{"restored": n, "remaining": 0}, restoreMetrics()); diff != "" {
		t.Errorf("restore metrics once ready (-want +got):\n%s", diff)
	}
	if got := eng.Metrics().RestoredRecords; got != n {
		t.Errorf("Metrics().RestoredRecords = %d, want %d", got, n)
	}

	d := eng.Topology().Describe()
	checkGet(t, base+"/topology", http.StatusOK, d.String())
	checkGet(t, base+"/topology?format=text", http.StatusOK, d.String())
	checkGet(t, base+"/topology?format=mermaid", http.StatusOK, d.Mermaid())
	checkGet(t, base+"/topology?format=dot", http.StatusBadRequest, "unknown format \"dot\": want text or mermaid\n")
	checkGet(t, base+"/nothing", http.StatusNotFound, "404 page not found\n")
	if status, _ := httpDo(t, http.MethodPost, base+"/metrics"); status != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d, want %d", status, http.StatusMethodNotAllowed)
	}
	status, body := httpDo(t, http.MethodGet, base+"/")
	var index struct {
		App       string
		Endpoints []struct{ Path, Description string }
	}
	if err := json.Unmarshal([]byte(body), &index); status != http.StatusOK || err != nil {
		t.Fatalf("GET /: %d %v\n%s", status, err, body)
	}
	var paths []string
	for _, e := range index.Endpoints {
		paths = append(paths, e.Path)
	}
	// The store routes follow these.
	if diff := gocmp.Diff([]string{"/metrics", "/healthz", "/readyz", "/topology"}, paths[:min(4, len(paths))]); diff != "" || index.App != "ht" {
		t.Errorf("GET /: app %q, paths (-want +got):\n%s", index.App, diff)
	}

	// New input: consumed, then no lag.
	const more = 100
	produce(n, more)
	want := map[string]float64{
		`eddy_records_consumed_total{topic="in"}`:             more,
		`eddy_consumer_lag_records{partition="0",topic="in"}`: 0,
		`eddy_tasks`: 1,
	}
	eventually(t, "input consumed", func() error {
		got := scrape(t, base, "ht")
		if diff := gocmp.Diff(want, subset(want, got)); diff != "" {
			return fmt.Errorf("metrics (-want +got):\n%s", diff)
		}
		if b := got[`eddy_store_cache_bytes{partition="0",store="counts"}`]; b <= 0 {
			return fmt.Errorf("cache bytes %v, want > 0", b)
		}
		return nil
	})

	lagMu.Lock()
	// The first commit after the input arrived saw it all, or all but
	// the first poll's.
	if maxLag < more-10 || maxLag > more {
		t.Errorf("highest lag %v, want %d or %d", maxLag, more-10, more)
	}
	lagMu.Unlock()

	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("the HTTP server still answers after Run returned")
	}
}

// closeBlockingLog wraps a log so that the second session to close waits
// for release: the first is the failed worker's, so the test can look at
// the server between the failure and Run's return.
type closeBlockingLog struct {
	broker.Log
	mu      sync.Mutex
	closes  int
	release chan struct{}
}

func (l *closeBlockingLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	s, err := l.Log.NewSession(ctx, cfg)
	return &closeBlockingSession{Session: s, l: l}, err
}

type closeBlockingSession struct {
	broker.Session
	l *closeBlockingLog
}

func (s *closeBlockingSession) Close(ctx context.Context) error {
	s.l.mu.Lock()
	s.l.closes++
	wait := s.l.closes == 2
	s.l.mu.Unlock()
	if wait {
		<-s.l.release
	}
	return s.Session.Close(ctx)
}

// TestHTTPHealthFailure has a worker fail on a record that panics: until
// Run returns, /healthz and /readyz answer 503 with the error.
func TestHTTPHealthFailure(t *testing.T) {
	ctx := context.Background()
	raw, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	log := &closeBlockingLog{Log: raw, release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(log.release) }) }
	defer release()
	b := topology.New("hf")
	topology.StreamFrom(b, "in", serde.String(), serde.String()).
		Peek(func(_, v string) {
			if v == "boom" {
				panic("boom")
			}
		}).To("out")
	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, HTTPAddr: "127.0.0.1:0", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()
	var base string
	eventually(t, "serving", func() error {
		if addr := eng.HTTPAddr(); addr != "" {
			base = "http://" + addr
			return nil
		}
		return errors.New("no address")
	})
	eventually(t, "ready", func() error {
		if status, body := httpDo(t, http.MethodGet, base+"/readyz"); status != http.StatusOK {
			return fmt.Errorf("/readyz: %d %q", status, body)
		}
		return nil
	})
	checkGet(t, base+"/healthz", http.StatusOK, "ok\n")
	if err := log.Produce(ctx, broker.Record{Topic: "in", Partition: 1, Key: []byte("k"), Value: []byte("boom")}); err != nil {
		t.Fatal(err)
	}
	var health string
	eventually(t, "unhealthy", func() error {
		status, body := httpDo(t, http.MethodGet, base+"/healthz")
		if status != http.StatusServiceUnavailable {
			return fmt.Errorf("/healthz: %d %q", status, body)
		}
		health = body
		return nil
	})
	if !strings.HasPrefix(health, "failed: ") || !strings.Contains(health, `panic in operator`) || !strings.Contains(health, "boom") {
		t.Errorf("/healthz: %q, want the failure", health)
	}
	checkGet(t, base+"/readyz", http.StatusServiceUnavailable, health)
	release()
	if err := <-runErr; err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Run: %v, want the panic", err)
	}
}
