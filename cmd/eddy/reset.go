package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
)

const resetDescription = `
Reset the application APP so that its next run re-processes its input from
the earliest records, as if it had never run. It deletes:

  - the consumer group APP and its committed offsets: every source partition
    is read again from its start;
  - the internal topics, found by name: APP-*-changelog (store changelogs) and
    APP-*-repartition (repartition topics);
  - the local state of this machine, DIR/state, with --dir.

Source and sink topics are kept, as Kafka Streams' reset tool keeps them: a
rerun appends its output to the sinks (delete or recreate them for a clean
slate). Every machine that ran an instance holds local state: run eddy reset
--dir there too, or its next run stops with "is ahead of its changelog".

It is a stop-the-world reset: it refuses, deleting nothing, while an instance
runs (on the embedded log, a process holds DIR/log; on Kafka, the group has
members, and a killed instance stays a member until its session times out,
10s by default). It prints what it deletes first; --dry-run prints only.
Topics are matched by name: an application whose id starts with APP- (such as
APP-eu) has topics that match too, so check the list with --dry-run.

Without --brokers, the application runs on the embedded log in DIR/log.`

func runReset(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	flags := newFlagSet("reset", "--app APP --dir DIR [--brokers HOST:PORT,...] [--dry-run]", resetDescription,
		"eddy reset --app pageviews --dir ./eddy-data --dry-run",
		"eddy reset --app pageviews --dir ./eddy-data",
		"eddy reset --app pageviews --brokers localhost:9092 --dir /var/lib/pageviews")
	app := flags.String("app", "", "the application id: topology.New's name, also its consumer group (required)")
	dir := flags.String("dir", "", "the engine's StateDir (default of the engine: ./eddy-data); required without --brokers")
	brokers := flags.String("brokers", "", "Kafka bootstrap brokers, comma-separated; default: the embedded log in DIR/log")
	dryRun := flags.Bool("dry-run", false, "print what would be deleted, delete nothing")
	pos, err := parseArgs(flags, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return &usageError{fmt.Sprintf("reset: unexpected argument %q: name the application with --app", pos[0])}
	case *app == "":
		return &usageError{"reset: missing --app: the application id (topology.New's name), e.g. --app pageviews"}
	case *dir == "" && *brokers == "":
		return &usageError{"reset: missing --dir: the engine's StateDir, holding the embedded log (log/) and the local state (state/); with Kafka, set --brokers"}
	}
	if *dir != "" {
		if fi, err := os.Stat(*dir); err == nil && !fi.IsDir() {
			return fmt.Errorf("--dir %s is a file: --dir is the engine's StateDir, a directory", *dir)
		} else if errors.Is(err, fs.ErrNotExist) && *brokers == "" {
			return fmt.Errorf("no eddy data in %s: the directory does not exist: check --dir (the engine's StateDir, default ./eddy-data)", *dir)
		}
	}
	log, where, err := openResetLog(ctx, *dir, *brokers)
	if err != nil {
		return err
	}
	if log != nil {
		defer log.Close()
	}
	plan := engine.ResetPlan{App: *app, StateDir: *dir}
	if log != nil {
		topics, err := log.DescribeTopics(ctx)
		if err != nil {
			return err
		}
		for name := range topics {
			if isInternalTopic(*app, name) {
				plan.Topics = append(plan.Topics, name)
			}
		}
		slices.Sort(plan.Topics)
	}
	printResetPlan(stdout, plan, where, log != nil)
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: nothing deleted\n")
		return nil
	}
	if err := plan.Run(ctx, log); err != nil {
		if errors.Is(err, broker.ErrGroupActive) {
			return fmt.Errorf("%w\nstop every instance of %s and try again; a killed instance stays in the group until its session times out", err, *app)
		}
		return err
	}
	fmt.Fprintf(stdout, "reset %s: done; its next run starts from the earliest input\n", *app)
	return nil
}

// openResetLog opens the log of the application: Kafka with brokers, else
// the embedded log in dir/log; nil (and where says why) if dir has none.
func openResetLog(ctx context.Context, dir, brokers string) (broker.Log, string, error) {
	if brokers != "" {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		l, err := kafka.Open(ctx, kafka.Options{Brokers: strings.Split(brokers, ",")})
		if err != nil {
			return nil, "", fmt.Errorf("%w\ncheck --brokers", err)
		}
		return l, "Kafka at " + brokers, nil
	}
	logDir := filepath.Join(dir, "log")
	if !isLogDir(logDir) {
		if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
			return nil, "", fmt.Errorf("no eddy data in %s: neither an embedded log (log/) nor local state (state/): check --dir (the engine's StateDir), or set --brokers for Kafka", dir)
		}
		return nil, "no embedded log in " + logDir, nil
	}
	l, err := embedded.Open(embedded.Options{Dir: logDir, CleanInterval: -1})
	if err != nil {
		if errors.Is(err, embedded.ErrInUse) {
			return nil, "", fmt.Errorf("%w (or another eddy command uses its log): %w", engine.ErrRunning, err)
		}
		return nil, "", err
	}
	return l, "the embedded log in " + logDir, nil
}

// isInternalTopic reports whether topic is named like an internal topic
// of app: <app>-<name>-changelog or <app>-<name>-repartition.
func isInternalTopic(app, topic string) bool {
	rest, ok := strings.CutPrefix(topic, app+"-")
	if !ok {
		return false
	}
	for _, suffix := range []string{"-changelog", "-repartition"} {
		if name, ok := strings.CutSuffix(rest, suffix); ok && name != "" {
			return true
		}
	}
	return false
}

func printResetPlan(w io.Writer, p engine.ResetPlan, where string, hasLog bool) {
	fmt.Fprintf(w, "reset of application %s on %s:\n", p.App, where)
	if hasLog {
		fmt.Fprintf(w, "  delete consumer group %s and its committed offsets\n", p.App)
		if len(p.Topics) == 0 {
			fmt.Fprintf(w, "  no internal topics (%s-*-changelog, %s-*-repartition) to delete\n", p.App, p.App)
		}
		for _, t := range p.Topics {
			fmt.Fprintf(w, "  delete topic %s\n", t)
		}
	}
	if p.StateDir != "" {
		stateDir := filepath.Join(p.StateDir, "state")
		if _, err := os.Stat(stateDir); err == nil {
			fmt.Fprintf(w, "  delete local state %s\n", stateDir)
		} else {
			fmt.Fprintf(w, "  no local state in %s\n", stateDir)
		}
	}
	fmt.Fprintf(w, "  keep the source and sink topics\n")
}
