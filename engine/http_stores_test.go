package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// storesTopology counts clicks per user into "per-user" and per user and
// minute into "per-minute".
func storesTopology() *topology.Builder {
	b := topology.New("st")
	in := topology.StreamFrom(b, "clicks", serde.String(), serde.String())
	in.GroupByKey().Count(topology.Named("per-user"))
	topology.CountWindows(in.GroupByKey().WindowedBy(window.Tumbling(time.Minute).Grace(time.Hour)), topology.Named("per-minute"))
	return b
}

// get returns the status and body of GET url, without following redirects.
func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestHTTPStores reads the stores of a running engine over HTTP and
// checks the answers against the input.
func TestHTTPStores(t *testing.T) {
	eng, err := engine.Open(storesTopology(), engine.Options{InMemory: true, HTTPAddr: "127.0.0.1:0", CommitInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "clicks", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	var recs []broker.Record
	want := map[string]int{}
	for i := range 40 {
		u := fmt.Sprint("u", i%4)
		want[u]++
		recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.AnyPartition, Key: []byte(u), Value: []byte("/"), Timestamp: int64(i) * 10_000})
	}
	if err := eng.Log().Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	await(t, "the HTTP server", 10*time.Second, func() string {
		if eng.HTTPAddr() == "" {
			return "no address yet"
		}
		return ""
	})
	base := "http://" + eng.HTTPAddr()
	await(t, "the counts", 30*time.Second, func() string {
		code, body, _ := get(t, base+"/stores/per-user/keys/u3")
		if code != 200 || !strings.Contains(body, `"value":10`) {
			return fmt.Sprintf("%d %s", code, body)
		}
		return ""
	})
	var row struct {
		Key   string `json:"key"`
		Value int64  `json:"value"`
		Time  int64  `json:"timestamp"`
	}
	_, body, _ := get(t, base+"/stores/per-user/keys/u1")
	if err := json.Unmarshal([]byte(body), &row); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if diff := cmp.Diff(struct {
		Key   string `json:"key"`
		Value int64  `json:"value"`
		Time  int64  `json:"timestamp"`
	}{"u1", 10, 370_000}, row); diff != "" {
		t.Errorf("GET /stores/per-user/keys/u1 (-want +got):\n%s", diff)
	}

	var rows []struct {
		Key   string `json:"key"`
		Value int64  `json:"value"`
	}
	_, body, _ = get(t, base+"/stores/per-user/rows")
	if err := json.Unmarshal([]byte(body), &rows); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	got := map[string]int{}
	for _, r := range rows {
		got[r.Key] = int(r.Value)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /stores/per-user/rows (-want +got):\n%s", diff)
	}

	// u0 clicked at 0, 40 s, 80 s, ...: per minute, [0, 60 s) holds 0 and 40 s.
	var wins []struct {
		Window struct{ Start, End int64 } `json:"window"`
		Value  int64                      `json:"value"`
	}
	_, body, _ = get(t, base+"/stores/per-minute/windows/u0?from=0&to=119999")
	if err := json.Unmarshal([]byte(body), &wins); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if len(wins) != 2 || wins[0].Window.Start != 0 || wins[0].Window.End != 60_000 || wins[0].Value != 2 || wins[1].Value != 1 {
		t.Errorf("GET /stores/per-minute/windows/u0 = %s", body)
	}

	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/stores/per-user/keys/nobody", 404, "not found"},
		{"/stores/nope/keys/x", 404, "GET /stores lists them"},
		{"/stores/per-user/rows?limit=x", 400, "limit"},
		{"/stores/per-minute/windows/u0?from=yesterday", 400, "milliseconds"},
		{"/stores/per-minute/keys/u0", 400, "ask for a key's windows"},
		{"/stores/per-user/windows/u0", 400, "has no windows"},
		{"/stores", 200, `"name":"per-minute","kind":"window","partitions":3,"local":[0,1,2]`},
		{"/", 200, "/stores/{store}/keys/{key}"},
	} {
		code, body, _ := get(t, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s = %d %q, want %d and %q", tc.path, code, body, tc.code, tc.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestHTTPStoresRedirect runs two instances on kfake: a key whose
// partition the other instance holds is redirected there, and answered.
func TestHTTPStoresRedirect(t *testing.T) {
	brokers := newKfake(t)
	log := openKafka(t, brokers)
	ctx := context.Background()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "clicks", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	var recs []broker.Record
	for i := range 80 {
		recs = append(recs, broker.Record{Topic: "clicks", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "u%d", i%8), Value: []byte("/"), Timestamp: int64(i)})
	}
	if err := log.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	var engines []*engine.Engine
	for _, name := range []string{"a", "b"} {
		eng, err := engine.Open(storesTopology(), engine.Options{
			StateDir: t.TempDir(), Log: openKafka(t, brokers), InstanceID: name, HTTPAddr: "127.0.0.1:0",
			CommitInterval: 20 * time.Millisecond, Workers: 1,
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- eng.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done; eng.Close() })
		engines = append(engines, eng)
	}
	a, b := engines[0], engines[1]
	// Wait until both hold partitions and every key reads 10 through a.
	redirected := 0
	await(t, "every key through instance a", instancesTimeout, func() string {
		redirected = 0
		for u := range 8 {
			path := fmt.Sprintf("/stores/per-user/keys/u%d", u)
			code, body, h := get(t, "http://"+a.HTTPAddr()+path)
			if code == http.StatusTemporaryRedirect {
				if loc := h.Get("Location"); loc != "http://"+b.HTTPAddr()+path {
					return fmt.Sprintf("u%d redirected to %q, want instance b at %s", u, loc, b.HTTPAddr())
				}
				redirected++
				code, body, _ = get(t, h.Get("Location"))
			}
			if code != 200 || !strings.Contains(body, `"value":10`) {
				return fmt.Sprintf("u%d: %d %s", u, code, body)
			}
		}
		if redirected == 0 || redirected == 8 {
			return fmt.Sprintf("%d of 8 keys redirected: the instances do not share the partitions yet", redirected)
		}
		return ""
	})
}
