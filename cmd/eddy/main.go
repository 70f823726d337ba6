package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
)

// A command is a subcommand of eddy. run gets the arguments after the
// command's name; it returns a *usageError for bad usage, flag.ErrHelp
// after printing help, or another error for a failure.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

// commands are eddy's subcommands, by name.
var commands = map[string]command{
	"bench":    {summary: "benchmark eddy against its peers (WA1, Nexmark) and chart the results", run: runBench},
	"describe": {summary: "print a topology (an example's, a program's or a running instance's) as text or Mermaid", run: runDescribe},
	"topics":   {summary: "create, list, produce to and tail topics of an embedded log", run: runTopics},
	"stores":   {summary: "list and read the stores of a stopped instance's state", run: runStores},
	"reset":    {summary: "reset an application to re-process its input from the start", run: runReset},
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// run runs the command named by args[0].
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return &usageError{"missing command"}
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			// eddy help COMMAND [SUBCOMMAND]: the same as eddy COMMAND [SUBCOMMAND] -h.
			c, ok := commands[args[1]]
			if !ok {
				usage(stderr)
				return &usageError{fmt.Sprintf("help: unknown command %q: the commands are listed above", args[1])}
			}
			return c.run(ctx, append(slices.Clone(args[2:]), "-h"), stdin, stdout, stderr)
		}
		usage(stdout)
		return nil
	}
	c, ok := commands[name]
	if !ok {
		usage(stderr)
		return &usageError{fmt.Sprintf("unknown command %q: the commands are listed above", name)}
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "eddy is the command line of the eddy stream processing engine.\n\n")
	fmt.Fprintf(w, "usage: eddy COMMAND [ARGS]\n\ncommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range commands {
			if !yield(n) {
				return
			}
		}
	}) {
		fmt.Fprintf(tw, "  %s\t%s\n", name, commands[name].summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nexamples:\n")
	for _, e := range []string{
		"eddy topics create --dir ./data/log --partitions 4 views",
		"eddy topics tail --dir ./data/log --from-beginning views",
		"eddy describe --format mermaid wordcount",
		"eddy bench wa1 --events 1000000",
		"eddy help topics tail",
	} {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "\nRun `eddy help COMMAND` or `eddy COMMAND -h` for a command's usage, flags and examples.\n")
}

// usageError is a command line that cannot be run as written; eddy exits
// with status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// exitCode reports err on stderr and returns the exit status for it: 0 for
// success or help, 2 for a usage error, 1 for any other failure.
func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "eddy: %v\n", err)
		return 2
	default:
		fmt.Fprintf(stderr, "eddy: %v\n", err)
		return 1
	}
}

// newFlagSet returns a flag set for the command "eddy name" whose help
// shows the usage line, a description and examples before the flags.
func newFlagSet(name, usageLine, description string, examples ...string) *flag.FlagSet {
	fs := flag.NewFlagSet("eddy "+name, flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: eddy %s %s\n\n%s\n", name, usageLine, strings.TrimSpace(description))
		if len(examples) > 0 {
			fmt.Fprintf(w, "\nexamples:\n")
			for _, e := range examples {
				fmt.Fprintf(w, "  %s\n", e)
			}
		}
		fmt.Fprintf(w, "\nflags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags and positional arguments in any order ("create
// views --partitions 3" as well as "create --partitions 3 views"); after
// "--" every argument is positional. Errors other than flag.ErrHelp are
// usage errors.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, error) {
	fs.SetOutput(stderr)
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// subcommands is a command with subcommands of its own, such as "eddy
// topics": their table, the order its usage lists them in, its usage line
// and what the usage says after the list.
type subcommands struct {
	name, usageLine, footer string
	commands                map[string]command
	listed                  []string
}

// usage writes the subcommands' usage to w.
func (sc *subcommands) usage(w io.Writer) {
	fmt.Fprintf(w, "usage: eddy %s %s\n\nsubcommands:\n", sc.name, sc.usageLine)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, name := range sc.listed {
		fmt.Fprintf(tw, "  %s\t%s\n", name, sc.commands[name].summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s\n", sc.footer)
}

// run runs the subcommand args[0] with the rest of args.
func (sc *subcommands) run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		sc.usage(stderr)
		return &usageError{sc.name + ": missing subcommand"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		sc.usage(stdout)
		return flag.ErrHelp
	}
	c, ok := sc.commands[args[0]]
	if !ok {
		sc.usage(stderr)
		return &usageError{fmt.Sprintf("%s: unknown subcommand %q", sc.name, args[0])}
	}
	return c.run(ctx, args[1:], stdin, stdout, stderr)
}
