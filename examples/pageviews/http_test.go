package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
)

// TestPageviewsHTTP runs the example as `-http` does and reads every
// region's windows through the HTTP server while it runs, as curl would:
// once the input is processed they must be the counts computed directly
// from the input. Then it stops the example, as Ctrl-C does.
func TestPageviewsHTTP(t *testing.T) {
	const seed, events = 3, 3000
	want := map[string]map[int64]int64{} // region -> window start -> views
	for _, r := range Generate(seed, events) {
		v, err := serde.JSON[PageView]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if v.Region == "" {
			continue
		}
		if want[v.Region] == nil {
			want[v.Region] = map[int64]int64{}
		}
		want[v.Region][r.Timestamp-r.Timestamp%time.Minute.Milliseconds()]++
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var served string
	queried := make(chan error, 1)
	cfg := Config{Events: events, Seed: seed, HTTPAddr: "127.0.0.1:0", Serving: func(addr string) {
		served = addr
		go func() {
			queried <- awaitCounts(ctx, addr, want)
			cancel()
		}()
	}}
	if _, _, err := Run(ctx, cfg); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if served == "" {
		t.Fatal("Run returned without calling Serving")
	}
	if err := <-queried; err != nil {
		t.Fatal(err)
	}
}

// awaitCounts asks the server at addr for every region's windows until
// they are want, and returns the last difference if they are not within
// a minute.
func awaitCounts(ctx context.Context, addr string, want map[string]map[int64]int64) error {
	deadline := time.Now().Add(time.Minute)
	for {
		got, err := fetchCounts(ctx, addr, want)
		diff := cmp.Diff(want, got)
		switch {
		case err == nil && diff == "":
			return nil
		case time.Now().After(deadline):
			if err != nil {
				return err
			}
			return fmt.Errorf("windows served over HTTP (-want +got):\n%s", diff)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// fetchCounts GETs /stores/views-per-region/windows/{region} for every
// region of want.
func fetchCounts(ctx context.Context, addr string, want map[string]map[int64]int64) (map[string]map[int64]int64, error) {
	got := map[string]map[int64]int64{}
	for region := range want {
		url := fmt.Sprintf("http://%s/stores/views-per-region/windows/%s", addr, region)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		var rows []struct {
			Key    string `json:"key"`
			Window struct {
				Start int64 `json:"start"`
			} `json:"window"`
			Value int64 `json:"value"`
		}
		if err := json.Unmarshal(body, &rows); err != nil {
			return nil, fmt.Errorf("GET %s: %w in %s", url, err, body)
		}
		for _, r := range rows {
			if r.Key != region {
				return nil, fmt.Errorf("GET %s: a row of key %q", url, r.Key)
			}
			if got[region] == nil {
				got[region] = map[int64]int64{}
			}
			got[region][r.Window.Start] = r.Value
		}
	}
	return got, nil
}
