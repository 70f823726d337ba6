// Command eddy is the command line of eddy: inspect and edit the topics of
// an embedded log, and run the benchmarks (WA1 against the hand-written
// loop, goka and Kafka Streams; Nexmark).
//
//	eddy topics create --dir ./data/log --partitions 4 views
//	printf 'alice\t/home\n' | eddy topics produce --dir ./data/log views
//	eddy topics list --dir ./data/log
//	eddy topics tail --dir ./data/log --from-beginning views
//	eddy bench wa1 --backend kafka --brokers 127.0.0.1:9092
//	eddy bench nexmark --query all --events 1000000
//	eddy bench chart --in results.jsonl --out chart.svg
//
// Run `eddy help` or `eddy COMMAND -h` for the details.
//
// Commands are listed in the commands table of main.go; each is a function
// of (ctx, args, stdin, stdout, stderr) returning a *usageError (exit
// status 2), flag.ErrHelp (0) or another error (1), so tests run them
// in-process. The topics commands open the embedded log in --dir
// themselves; the embedded log is single-process, so they fail with a hint
// while another process (a running pipeline) holds the directory.
package main
