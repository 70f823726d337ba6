package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// A child is a system under test running as a child process, measured
// from outside: CPU time from /proc/<pid>/stat while it runs and from
// its rusage once it has exited, peak RSS from /proc/<pid>/status (VmHWM)
// at the end of the measured part, or, where there is no /proc, from the
// rusage's maxrss after exit (see measured). Every system,
// eddy and the loop included, is measured this way, so that the numbers
// compare.
//
// Its stdout is read line by line: "PROGRESS n" lines update Progress,
// the others arrive on lines. Its stderr goes to a file, whose tail
// explains a failure.
type child struct {
	name     string
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	lines    chan string
	exited   chan struct{} // closed once Wait returned
	waitErr  error
	started  time.Time
	ended    time.Time
	stderr   string
	progress atomic.Int64
	// peakSeen is the largest VmHWM sampleHWM read while the child ran.
	peakSeen int64
}

// startChild starts cmd as the child called name, its stderr going to
// the file stderrPath. The child gets its own process group, so that a
// terminal's ^C reaches the harness alone, which then stops the child.
func startChild(name string, cmd *exec.Cmd, stderrPath string) (*child, error) {
	f, err := os.Create(stderrPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 256),
		exited: make(chan struct{}), stderr: stderrPath}
	c.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, cmd.Path, err)
	}
	go func() {
		s := bufio.NewScanner(out)
		s.Buffer(make([]byte, 64<<10), 16<<20)
		for s.Scan() {
			line := s.Text()
			if n, ok := strings.CutPrefix(line, "PROGRESS "); ok {
				if v, err := strconv.ParseInt(n, 10, 64); err == nil {
					c.progress.Store(v)
					continue
				}
			}
			select {
			case c.lines <- line:
			default: // nobody listens for chatter; protocol lines are awaited
			}
		}
		io.Copy(io.Discard, out)
		c.waitErr = cmd.Wait() // after the last read of stdout
		c.ended = time.Now()
		close(c.lines)
		close(c.exited)
	}()
	return c, nil
}

// await returns the rest of the first stdout line that is exactly prefix
// or starts with prefix and a space. It fails, with the tail of the
// child's stderr, if the child exits first, and when ctx is done.
func (c *child) await(ctx context.Context, prefix string) (string, error) {
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				<-c.exited
				return "", fmt.Errorf("%s exited before printing %s (%v)%s", c.name, prefix, c.waitErr, c.stderrTail())
			}
			if line == prefix {
				return "", nil
			}
			if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
				return rest, nil
			}
		case <-ctx.Done():
			return "", fmt.Errorf("%s: waiting for %s: %w", c.name, prefix, ctx.Err())
		}
	}
}

// proceed tells a child waiting at a handshake (START, DONE) to go on.
func (c *child) proceed() {
	_, _ = io.WriteString(c.stdin, "go\n")
}

// stderrTail returns the end of the child's stderr, for an error message.
func (c *child) stderrTail() string {
	b, _ := os.ReadFile(c.stderr)
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Sprintf("; its stderr (%s) ends with:\n%s", c.stderr, b)
}

// cpu returns the CPU time (user and system, all threads) the running
// child has used so far, from /proc/<pid>/stat; ok is false where there
// is no /proc.
func (c *child) cpu() (time.Duration, bool) {
	return procCPU(c.cmd.Process.Pid)
}

// sampleHWM reads the running child's peak RSS so far (VmHWM) into
// peakSeen.
func (c *child) sampleHWM() {
	if n, ok := procHWM(c.cmd.Process.Pid); ok {
		c.peakSeen = max(c.peakSeen, n)
	}
}

// terminate sends SIGTERM, as a peer's protocol wants, and waits for the
// exit; after grace it sends SIGKILL to the child's process group. It
// returns the exit error, nil for a clean exit.
func (c *child) terminate(grace time.Duration) error {
	select {
	case <-c.exited:
		return c.waitErr
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.waitErr
	case <-time.After(grace):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.exited
		return fmt.Errorf("%s did not exit within %s of SIGTERM: killed", c.name, grace)
	}
}

// kill ends the child (and its process group) at once; for failures.
func (c *child) kill() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.exited
}

// wait waits for the child to exit by itself and returns its exit error
// with the tail of its stderr.
func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.exited:
	case <-ctx.Done():
		c.kill()
		return fmt.Errorf("%s: %w", c.name, ctx.Err())
	}
	if c.waitErr != nil {
		return fmt.Errorf("%s failed: %v%s", c.name, c.waitErr, c.stderrTail())
	}
	return nil
}

// usage returns the exited child's CPU time and peak RSS (bytes) from
// its rusage.
func (c *child) usage() (cpu time.Duration, maxRSS int64) {
	st := c.cmd.ProcessState
	if st == nil {
		return 0, 0
	}
	cpu = st.UserTime() + st.SystemTime()
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		maxRSS = int64(ru.Maxrss)
		if runtime.GOOS != "darwin" { // Linux reports kilobytes, macOS bytes
			maxRSS *= 1024
		}
	}
	return cpu, maxRSS
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports (the kernel's ABI keeps it fixed
// whatever CONFIG_HZ is).
const clockTicks = 100

// procCPU reads utime+stime of pid from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	return parseProcStat(b)
}

// parseProcStat returns utime+stime from the contents of /proc/<pid>/stat:
// fields 14 and 15, counted after the command name, which is in
// parentheses and may hold spaces.
func parseProcStat(b []byte) (time.Duration, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state): utime is field 14, f[11].
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * time.Second / clockTicks, true
}

// OwnPeakRSS returns this process's peak RSS (VmHWM) in bytes; ok is false
// where there is no /proc. A benchmark child reports it itself when its
// parent cannot sample it: the rusage maxrss its parent would read counts
// the parent's memory too (see measured).
func OwnPeakRSS() (int64, bool) { return procHWM(os.Getpid()) }

// procHWM reads VmHWM of pid from /proc/<pid>/status, in bytes.
func procHWM(pid int) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	return parseVmHWM(b)
}

// parseVmHWM returns the VmHWM line of /proc/<pid>/status in bytes.
func parseVmHWM(b []byte) (int64, bool) {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n * 1024, err == nil
		}
	}
	return 0, false
}
