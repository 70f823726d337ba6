package benchmarks

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// KStreamsPeer is the Kafka Streams 4.1 peer (benchmarks/kstreams of the
// repository at root): `java -jar benchmarks/kstreams/target/eddy-kstreams-wa1.jar`,
// built with `mvn -q -B package -DskipTests` if the jar is missing. It
// writes final results (suppress until window close) in FormatWindowed,
// and runs with the run's guarantee (--guarantee: processing.guarantee
// exactly_once_v2 or at_least_once).
func KStreamsPeer(root string) Peer {
	dir := filepath.Join(root, "benchmarks", "kstreams")
	jar := filepath.Join(dir, "target", "eddy-kstreams-wa1.jar")
	return Peer{
		Name: "kstreams", Format: FormatWindowed, Emits: []WA1Emit{EmitClose},
		Prepare: func(ctx context.Context, logf func(string, ...any)) error {
			if _, err := os.Stat(jar); err == nil {
				return nil
			}
			logf("kstreams: %s is missing: building it with `mvn -q -B package -DskipTests` in %s", jar, dir)
			cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "package", "-DskipTests")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("mvn package in %s: %v\n%s", dir, err, tail(out))
			}
			if _, err := os.Stat(jar); err != nil {
				return fmt.Errorf("mvn package in %s did not make %s", dir, jar)
			}
			return nil
		},
		Command: func(a PeerArgs) *exec.Cmd {
			return exec.Command("java", "-jar", jar, "--brokers", strings.Join(a.Brokers, ","),
				"--input", a.Input, "--output", a.Output, "--app-id", a.AppID,
				"--state-dir", a.StateDir, "--threads", strconv.Itoa(a.Threads), "--guarantee", cmp.Or(a.Guarantee, ExactlyOnce))
		},
	}
}

// GokaPeer is the goka v1.1.14 peer (benchmarks/goka of the repository at
// root, its own module), built with `go build` into binDir. Its results
// are the running counts of its group table "<group>-table"
// (FormatGoka); its first processor's group "<group>-rekey" reads the
// input. goka has no transactions: it is at least once whatever the run's
// guarantee, and its results say so.
func GokaPeer(root, binDir string) Peer {
	dir := filepath.Join(root, "benchmarks", "goka")
	bin := filepath.Join(binDir, "eddy-goka-wa1")
	return Peer{
		Name: "goka", Format: FormatGoka, Emits: []WA1Emit{EmitClose, EmitUpdate}, Guarantee: AtLeastOnce,
		Prepare: func(ctx context.Context, logf func(string, ...any)) error {
			logf("goka: building it with `go build -o %s .` in %s", bin, dir)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go build in %s: %v\n%s", dir, err, tail(out))
			}
			return nil
		},
		Command: func(a PeerArgs) *exec.Cmd {
			return exec.Command(bin, "--brokers", strings.Join(a.Brokers, ","), "--input", a.Input,
				"--group", a.Group, "--state-dir", a.StateDir, "--threads", strconv.Itoa(a.Threads))
		},
		OutputTopic: func(a PeerArgs) string { return a.Group + "-table" },
		InputGroup:  func(a PeerArgs) string { return a.Group + "-rekey" },
	}
}

// tail returns the end of a command's output, for an error.
func tail(out []byte) string {
	if len(out) > 3000 {
		out = out[len(out)-3000:]
	}
	return string(out)
}
