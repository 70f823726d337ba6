package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The optional HTTP server (Options.HTTPAddr) lets operators look inside a
// running engine: Prometheus metrics, health and readiness probes, and the
// topology. Run owns it: it starts the server before the workers and shuts
// it down when it returns.

// httpShutdownTimeout bounds how long Run waits for requests under way
// when it stops the HTTP server.
const httpShutdownTimeout = 5 * time.Second

// serve marks the engine as running and, if Options.HTTPAddr is set,
// starts the HTTP server. Run calls stop when it returns: it shuts the
// server down and marks the engine as no longer running.
func (e *Engine) serve() (stop func(), err error) {
	o := e.obs
	o.starting.Store(int32(e.opts.Workers))
	o.run.Store(runRunning)
	stopped := func() { o.run.Store(runDone) }
	if e.opts.HTTPAddr == "" {
		return stopped, nil
	}
	ln, err := net.Listen("tcp", e.opts.HTTPAddr)
	if err != nil {
		stopped()
		return nil, fmt.Errorf("engine: HTTP server: listen on %s: %w", e.opts.HTTPAddr, err)
	}
	logger := e.opts.Logger.Named("http")
	srv := &http.Server{
		Handler:           e.httpHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	addr := ln.Addr().String()
	o.addr.Store(&addr)
	logger.Info("serving metrics, health and topology", "addr", addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server failed", "error", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
		<-done
		stopped()
	}, nil
}

// HTTPAddr returns the address the HTTP server listens on, such as
// "127.0.0.1:41234" for Options.HTTPAddr "127.0.0.1:0": empty until Run
// has started it (before its workers start), and without Options.HTTPAddr.
// After Run returned, it is the address the server had. Safe for
// concurrent use.
func (e *Engine) HTTPAddr() string {
	if p := e.obs.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// endpoint is an entry of the server's index, GET /.
type endpoint struct {
	Path        string `json:"path"`
	Description string `json:"description"`
}

var endpoints = []endpoint{
	{"/metrics", "Prometheus metrics of the engine, the Go runtime and the process"},
	{"/healthz", "200 while Run runs and no worker has failed; 503 with the error otherwise"},
	{"/readyz", "200 once every worker has its tasks created and their stores restored; 503 with the reason before"},
	{"/topology", "the topology's description; ?format=mermaid for a Mermaid flowchart"},
}

// httpHandler returns the HTTP server's routes.
func (e *Engine) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(struct {
			App       string     `json:"app"`
			Endpoints []endpoint `json:"endpoints"`
		}{e.topo.App(), slices.Concat(endpoints, storeEndpoints)})
	})
	// The runtime's and the process's metrics are the server's, not the
	// engine's (Gatherer): an application running several engines, or
	// serving its own metrics, has them once.
	proc := prometheus.NewRegistry()
	proc.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(prometheus.Gatherers{e.obs.reg, proc}, promhttp.HandlerOpts{
		ErrorLog:      promLogger{e.opts.Logger.Named("http")},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		probe(w, e.obs.health())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		probe(w, e.obs.readiness())
	})
	mux.HandleFunc("GET /topology", func(w http.ResponseWriter, r *http.Request) {
		f := r.URL.Query().Get("format")
		if f == "" {
			f = "text"
		}
		text, err := e.topo.Describe().Format(f)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, text)
	})
	e.storeRoutes(mux) // http_stores.go
	return mux
}

// probe answers a health or readiness probe: 200 "ok", or 503 and why not.
func probe(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, err)
		return
	}
	fmt.Fprintln(w, "ok")
}

// health returns nil while Run runs and no worker has failed; else the
// first failure, or that Run is not running.
func (o *observer) health() error {
	if err := o.err(); err != nil {
		return fmt.Errorf("failed: %w", err)
	}
	switch o.run.Load() {
	case runIdle:
		return errors.New("not running: Run has not started")
	case runDone:
		return errors.New("not running: Run returned")
	}
	return nil
}

// readiness returns nil once the engine is healthy, every worker has been
// through its first assignment (its tasks created and their stores
// restored) and no store is being restored. On Kafka, a worker whose first
// polls time out before its group join completes counts as through it: it
// then has no tasks to restore yet.
func (o *observer) readiness() error {
	if err := o.health(); err != nil {
		return err
	}
	if n := o.restoring.Load(); n > 0 {
		return fmt.Errorf("restoring %d stores", n)
	}
	if n := o.starting.Load(); n > 0 {
		return fmt.Errorf("starting: %d of %d workers wait for their partitions and tasks", n, o.e.opts.Workers)
	}
	return nil
}

// promLogger logs promhttp's errors to the engine's logger.
type promLogger struct{ l hclog.Logger }

// Println implements promhttp.Logger.
func (p promLogger) Println(v ...any) { p.l.Warn(fmt.Sprint(v...)) }
