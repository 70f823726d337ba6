package benchmarks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// kafkaSystem is a system the harness runs on Kafka: eddy's worker or a
// peer, all following benchmarks/PEERS.md.
type kafkaSystem struct {
	name   string
	format OutputFormat
	start  func(a PeerArgs) (*child, error)
	output func(a PeerArgs) string
	group  func(a PeerArgs) string
	// guarantee is the peer's own (Peer.Guarantee), recorded in its result.
	guarantee string
}

// runKafka runs eddy and the peers one after the other against the
// brokers. In throughput mode they all read one input topic, loaded (and
// ended with the end markers) before the first starts; with a rate each
// gets its own input, appended live once it is READY.
func (h *harness) runKafka(ctx context.Context) error {
	cfg := &h.cfg
	env, err := openKafkaEnv(ctx, cfg.Brokers)
	if err != nil {
		return err
	}
	defer env.close()
	prefix := "eddybench-" + runID() + "-"
	cfg.logf("kafka %s: the topics and groups of this run start with %s (deleted at the end)", strings.Join(cfg.Brokers, ","), prefix)
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := env.deletePrefixed(dctx, prefix); err != nil {
			cfg.logf("deleting the run's topics (%s*): %v", prefix, err)
		}
	}()

	input := prefix + "input"
	var load time.Duration
	if cfg.Rate == 0 {
		if err := env.log.CreateTopics(ctx, broker.TopicConfig{Name: input, Partitions: int32(cfg.Partitions)}); err != nil {
			return err
		}
		var loaded atomic.Int64
		stop := h.watchProgress("load", int64(cfg.Events), loaded.Load)
		start := time.Now()
		_, err := produceWA1(ctx, &kgoSender{cl: env.cl}, input, int32(cfg.Partitions), cfg.Seed, cfg.Events, cfg.Keys, 0, true, nil, &loaded)
		load = time.Since(start)
		stop()
		if err != nil {
			return fmt.Errorf("load %s: %w", input, err)
		}
		cfg.logf("loaded %d events and %d end markers into %s in %s", cfg.Events, cfg.Partitions, input, load.Round(time.Millisecond))
	}

	systems := []kafkaSystem{{
		name: "eddy", format: FormatWindowed,
		start: func(a PeerArgs) (*child, error) {
			return h.startWorker("eddy", WorkerConfig{System: "eddy", Backend: "kafka", Variant: cfg.Variant, Emit: cfg.Emit,
				Guarantee: a.Guarantee, Dir: a.StateDir, Brokers: a.Brokers, App: a.AppID, Input: a.Input, Output: a.Output,
				Partitions: cfg.Partitions, Workers: a.Threads, CPUProfile: h.profile("kafka")})
		},
	}}
	for _, p := range cfg.Peers {
		switch {
		case cfg.Variant != VariantTumbling:
			cfg.logf("%s: skipped: it does tumbling windows only, not %s", p.Name, cfg.Variant)
			continue
		case !slices.Contains(p.Emits, cfg.Emit):
			cfg.logf("%s: skipped: it does not emit on %s", p.Name, cfg.Emit)
			continue
		}
		if p.Prepare != nil {
			if err := p.Prepare(ctx, cfg.logf); err != nil {
				h.errs = append(h.errs, fmt.Errorf("%s: %w", p.Name, err))
				continue
			}
		}
		p := p
		systems = append(systems, kafkaSystem{
			name: p.Name, format: p.Format, output: p.OutputTopic, group: p.InputGroup, guarantee: p.Guarantee,
			start: func(a PeerArgs) (*child, error) {
				cmd := p.Command(a)
				return startChild(p.Name, cmd, filepath.Join(h.dir, p.Name+".stderr"))
			},
		})
	}
	for _, s := range systems {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := h.runKafkaSystem(ctx, env, s, prefix, input, load); err != nil {
			h.errs = append(h.errs, err)
		}
	}
	return nil
}

// runKafkaSystem runs one system: from READY until its committed output
// is complete, then SIGTERM.
func (h *harness) runKafkaSystem(ctx context.Context, env *kafkaEnv, s kafkaSystem, prefix, input string, load time.Duration) (err error) {
	cfg := &h.cfg
	parts := int32(cfg.Partitions)
	a := PeerArgs{Brokers: cfg.Brokers, Input: input, Output: prefix + s.name + "-output", AppID: prefix + s.name,
		Group: prefix + s.name, StateDir: filepath.Join(h.dir, s.name+"-state"), Threads: cfg.Workers, Guarantee: cfg.Guarantee}
	if cfg.Rate > 0 {
		a.Input = prefix + s.name + "-input"
	}
	output, group := a.Output, a.AppID
	if s.output != nil {
		output = s.output(a)
	}
	if s.group != nil {
		group = s.group(a)
	}
	topics := []broker.TopicConfig{{Name: a.Output, Partitions: parts}}
	if cfg.Rate > 0 {
		topics = append(topics, broker.TopicConfig{Name: a.Input, Partitions: parts})
	}
	if err := env.log.CreateTopics(ctx, topics...); err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	if err := os.MkdirAll(a.StateDir, 0o755); err != nil {
		return err
	}

	emit := cfg.Emit
	if s.format == FormatGoka {
		emit = EmitUpdate // running counts
	}
	watch := newOutputWatch(s.format, cfg.Variant, emit, h.expected, cfg.Rate > 0)
	watchCtx, stopWatch := context.WithCancel(ctx)
	watchErr := make(chan error, 1)
	go func() { watchErr <- watch.run(watchCtx, cfg.Brokers, output) }()
	defer stopWatch()

	runCtx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	c, err := s.start(a)
	if err != nil {
		return err
	}
	defer c.kill() // on failure; a no-op once exited
	if _, err := c.await(runCtx, lineReady); err != nil {
		return err
	}
	start := time.Now()
	cpu0, ok0 := c.cpu()

	total := int64(cfg.Events + cfg.Partitions) // the end markers too
	var alog *appendLog
	produced := make(chan error, 1)
	if cfg.Rate > 0 {
		alog = newAppendLog(cfg.Partitions)
		go func() {
			behind, err := produceWA1(runCtx, &kgoSender{cl: env.cl}, a.Input, parts, cfg.Seed, cfg.Events, cfg.Keys, cfg.Rate, true, alog, nil)
			if behind > 0 {
				cfg.logf("%s: the producer fell %d ms behind its rate at worst", s.name, behind*10)
			}
			produced <- err
		}()
	} else {
		produced <- nil
	}
	var committed atomic.Int64
	stopProgress := h.watchProgress(s.name, total, committed.Load)
	defer stopProgress()
	poll := time.NewTicker(250 * time.Millisecond)
	defer poll.Stop()
	producing, complete, outputDone := cfg.Rate > 0, watch.complete, false
	for !outputDone || producing {
		select {
		case <-complete:
			outputDone, complete = true, nil
		case err := <-produced:
			if err != nil {
				return fmt.Errorf("%s: produce: %w", s.name, err)
			}
			producing = false
		case err := <-watchErr:
			return fmt.Errorf("%s: reading its output %s: %w", s.name, output, err)
		case <-c.exited:
			return fmt.Errorf("%s exited before its output was complete (%v)%s", s.name, c.waitErr, c.stderrTail())
		case <-runCtx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			results, satisfied := watch.status()
			what := fmt.Sprintf("%d results", results)
			if watch.expected != nil {
				what = fmt.Sprintf("%d of %d expected results (%d results in all)", satisfied, len(watch.expected), results)
			}
			return fmt.Errorf("%s: timed out after %s with %s; its group %s committed %d of %d input records%s",
				s.name, cfg.Timeout, what, group, committed.Load(), total, c.stderrTail())
		case <-poll.C:
			if n, err := env.committed(runCtx, group, a.Input); err == nil {
				committed.Store(n)
				// Without expected results (variants), the output is
				// complete once all input is committed: its output
				// was committed with it (exactly-once) or before it
				// (at-least-once).
				if watch.expected == nil && n >= total && !producing {
					outputDone = true
				}
			}
		}
	}
	elapsed := time.Since(start)
	cpu1, ok1 := c.cpu()
	c.sampleHWM()
	state := diskUsage(a.StateDir)
	stopProgress()
	stopWatch()
	<-watchErr // the watch has stopped: its results are final
	if err := c.terminate(30 * time.Second); err != nil {
		cfg.logf("%s: unclean exit after SIGTERM: %v", s.name, err)
	}

	r := h.base
	r.System, r.LoadSeconds, r.Seconds = s.name, load.Seconds(), elapsed.Seconds()
	if s.guarantee != "" {
		r.Guarantee = s.guarantee
	}
	r.StateBytes = &state
	measured(&r, c)
	if ok0 && ok1 {
		r.CPUSeconds = (cpu1 - cpu0).Seconds()
	} else {
		r.CPUSeconds = r.TotalCPUSeconds
	}
	results, outs := watch.results, watch.outs
	r.OutputRecords = results.Records
	if alog != nil {
		d, unmatched, err := alog.latencies(cfg.Variant, emit, outs)
		if err != nil {
			return err
		}
		r.Latency = latency(d, unmatched, emit)
		if r.Latency == nil {
			cfg.logf("%s: latency not computed for %s windows on update", s.name, cfg.Variant)
		}
	}
	if results.Repeats > 0 && watch.final {
		cfg.logf("%s: %d windows were written more than once", s.name, results.Repeats)
	}
	h.finish(r, results.Results())
	return nil
}
