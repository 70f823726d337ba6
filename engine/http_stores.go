package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"

	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/topology"
)

// The HTTP server's store routes read the engine's queryable tables at
// read-committed (see query.go), with keys given as text: a string key as
// is, any other key type as JSON. A key whose partition another instance
// holds is redirected there (307) when that instance advertises an
// endpoint (see instances.go).

var storeEndpoints = []endpoint{
	{"/stores", "the queryable stores: name, kind, partitions, the ones held here"},
	{"/stores/{store}/keys/{key}", "a key-value table's row of key as JSON; 404 if absent; 307 to the instance holding it"},
	{"/stores/{store}/rows?from=KEY&limit=N", "a store's rows held here, as JSON (key-value: by key from KEY; windowed: by window)"},
	{"/stores/{store}/windows/{key}?from=MS&to=MS", "a windowed table's windows of key overlapping [from, to] as JSON; 307 to the instance holding it"},
}

// storeRoutes adds the store routes to mux.
func (e *Engine) storeRoutes(mux *http.ServeMux) {
	queries := e.topo.Queries()
	mux.HandleFunc("GET /stores", func(w http.ResponseWriter, r *http.Request) {
		type info struct {
			Name       string  `json:"name"`
			Kind       string  `json:"kind"`
			Partitions int32   `json:"partitions"`
			Local      []int32 `json:"local"`
		}
		out := []info{}
		for _, name := range slices.Sorted(maps.Keys(queries)) {
			total, local, err := e.Stores().StorePartitions(r.Context(), name)
			if err != nil && !errors.Is(err, ErrNotRunning) {
				httpError(w, err)
				return
			}
			out = append(out, info{name, string(queries[name].Kind()), total, local})
		}
		writeJSON(w, out)
	})
	lookup := func(w http.ResponseWriter, r *http.Request) (topology.TextQuery, string, bool) {
		name := r.PathValue("store")
		q, ok := queries[name]
		if !ok {
			http.Error(w, fmt.Sprintf("no queryable store %q: GET /stores lists them", name), http.StatusNotFound)
			return nil, "", false
		}
		return q, name, true
	}
	mux.HandleFunc("GET /stores/{store}/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		q, name, ok := lookup(w, r)
		if !ok {
			return
		}
		row, found, err := q.Get(r.Context(), e.Stores(), r.PathValue("key"))
		if errors.Is(err, topology.ErrNotLocal) && e.redirect(w, r, name, q, r.PathValue("key")) {
			return
		}
		if err != nil {
			httpError(w, err)
			return
		}
		if !found {
			http.Error(w, fmt.Sprintf("key %q not found in %s", r.PathValue("key"), name), http.StatusNotFound)
			return
		}
		writeJSON(w, row)
	})
	mux.HandleFunc("GET /stores/{store}/rows", func(w http.ResponseWriter, r *http.Request) {
		q, _, ok := lookup(w, r)
		if !ok {
			return
		}
		limit := 1000
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				http.Error(w, fmt.Sprintf("limit %q: want a number >= 0 (0: all)", s), http.StatusBadRequest)
				return
			}
			limit = n
		}
		rows, err := q.Rows(r.Context(), e.Stores(), r.URL.Query().Get("from"), limit)
		if err != nil {
			httpError(w, err)
			return
		}
		if rows == nil {
			rows = []any{}
		}
		writeJSON(w, rows)
	})
	mux.HandleFunc("GET /stores/{store}/windows/{key}", func(w http.ResponseWriter, r *http.Request) {
		q, name, ok := lookup(w, r)
		if !ok {
			return
		}
		from, to := int64(math.MinInt64), int64(math.MaxInt64)
		for _, b := range []struct {
			name string
			v    *int64
		}{{"from", &from}, {"to", &to}} {
			if s := r.URL.Query().Get(b.name); s != "" {
				n, err := strconv.ParseInt(s, 10, 64)
				if err != nil {
					http.Error(w, fmt.Sprintf("%s %q: want milliseconds since the epoch", b.name, s), http.StatusBadRequest)
					return
				}
				*b.v = n
			}
		}
		key := r.PathValue("key")
		// A windowed key's partition is its grouping key's: ask the
		// instance holding it when that is not this one.
		if e.redirect(w, r, name, q, key) {
			return
		}
		rows, err := q.Windows(r.Context(), e.Stores(), key, from, to)
		if err != nil {
			httpError(w, err)
			return
		}
		if rows == nil {
			rows = []any{}
		}
		writeJSON(w, rows)
	})
}

// redirect sends the client to the instance holding key's partition of
// store, if another instance holds it and advertises an endpoint; it
// reports whether it did.
func (e *Engine) redirect(w http.ResponseWriter, r *http.Request, store string, q topology.TextQuery, key string) bool {
	kb, err := q.EncodeKey(key)
	if err != nil {
		return false
	}
	total, _, err := e.Stores().StorePartitions(r.Context(), store)
	if err != nil || total <= 0 {
		return false
	}
	p := int32(murmur2.Partition(kb, total))
	endpoint, local, err := e.InstanceFor(store, p)
	if err != nil || local || endpoint == "" {
		return false
	}
	u := url.URL{Scheme: "http", Host: endpoint, Path: r.URL.Path, RawQuery: r.URL.RawQuery}
	http.Redirect(w, r, u.String(), http.StatusTemporaryRedirect)
	return true
}

// httpError answers a failed query: 503 when the store's task does not
// run here (yet), 400 for a key that does not parse or a query the
// store's kind does not answer, else 500.
func httpError(w http.ResponseWriter, err error) {
	var ke *topology.KeyError
	switch {
	case errors.Is(err, ErrNotRunning), errors.Is(err, topology.ErrNotLocal):
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
	case errors.As(err, &ke), errors.Is(err, topology.ErrWrongKind):
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}
