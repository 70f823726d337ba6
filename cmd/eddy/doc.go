// Command eddy is the command line of eddy: it inspects and edits the
// topics of an embedded log, prints topologies, reads and resets the state
// of stopped applications, and runs the benchmarks.
//
// The commands:
//
//	bench     benchmark eddy against its peers: WA1 (against the hand-written
//	          loop, goka and Kafka Streams) and Nexmark; chart the results
//	describe  print a topology as text or as a Mermaid flowchart: an example's,
//	          a program's (through its -describe flag) or a running instance's
//	          (GET /topology of its HTTP server)
//	reset     reset an application so that it reprocesses its input from the
//	          earliest offsets; refuses while an instance is running
//	stores    read the stores of a stopped instance's state dir (get, scan)
//	topics    create, list, produce to and tail the topics of an embedded log
//	help      print the usage of eddy, of a command or of a subcommand
//
// For example:
//
//	eddy topics create --dir ./data/log --partitions 4 views
//	printf 'alice\t/home\n' | eddy topics produce --dir ./data/log views
//	eddy topics list --dir ./data/log
//	eddy topics tail --dir ./data/log --from-beginning views
//	eddy describe wordcount
//	eddy describe --format mermaid --url http://localhost:8080
//	eddy bench wa1 --backend kafka --brokers 127.0.0.1:9092
//	eddy bench nexmark --query all --events 1000000
//	eddy bench chart --in results.jsonl --out chart.svg
//
// Run `eddy help` for the list, and `eddy help COMMAND [SUBCOMMAND]` or
// `eddy COMMAND [SUBCOMMAND] -h` for a command's usage, flags and
// examples. Exit status: 0 on success (and for help), 2 for a command
// line that cannot run as written, 1 for any other failure; errors say
// what was wrong and how to fix it.
//
// Commands are listed in the commands table of main.go; each is a function
// of (ctx, args, stdin, stdout, stderr) returning a *usageError (exit
// status 2), flag.ErrHelp (0) or another error (1), so tests run them
// in-process. The topics commands open the embedded log in --dir
// themselves; the embedded log is single-process, so they fail with a hint
// while another process (a running pipeline) holds the directory.
// describe builds examples and programs with `go run PKG -describe FORMAT`,
// so it needs the go command and the module of PKG.
package main
