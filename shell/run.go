// Package shell is the runner's shell executor: it checks out a job's
// sources with git and runs its script steps under bash, each process tree in
// its own process group so that stopping a job stops everything it started,
// with the output merged into one trace writer (see Masker for keeping
// secrets out of it).
package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ExitError is a step or command that ran and failed: the job's fault, not
// the runner's.
type ExitError struct {
	// Code is the exit status, or -1 when a signal ended the process.
	Code int
	// Signal names the signal that ended it, if one did.
	Signal string
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exit code %d", e.Code)
}

// outputGrace is how long output may still arrive after a step's process
// group is gone: only a process that left the group (setsid) and kept the
// output open delays the end that long.
const outputGrace = 2 * time.Second

// proc is one process to run.
type proc struct {
	path string
	args []string
	dir  string
	env  []string
}

// run starts p in a new process group with stdin from /dev/null and stdout
// and stderr on one pipe, so out gets them in the order they were written.
// When ctx is done, the whole group is killed at once (SIGKILL: a job that is
// canceled or out of time gets no say). When p exits, whatever it left
// running in its group is killed too, so no step outlives itself. run returns
// nil, an *ExitError, context.Cause(ctx) when ctx ended it, or an error
// saying why p could not run.
func run(ctx context.Context, p proc, out io.Writer) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("creating the output pipe: %w", err)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return fmt.Errorf("starting %s: %w", p.path, err)
	}
	pw.Close() // the children hold the write end now
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(out, pr)
	}()

	pgid := cmd.Process.Pid
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		waitExited(pgid)
	}()
	select {
	case <-ctx.Done():
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	case <-exited:
	}
	// The leader has exited but is not reaped yet, so its pid cannot be
	// reused and -pgid still names this group only.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	werr := cmd.Wait()

	t := time.NewTimer(outputGrace)
	select {
	case <-copied:
	case <-t.C:
		pr.Close() // unblocks the copy
		<-copied
	}
	t.Stop()
	pr.Close()

	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: -1, Signal: unix.SignalName(ws.Signal())}
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	if werr != nil {
		return fmt.Errorf("waiting for %s: %w", p.path, werr)
	}
	return nil
}

// waitExited returns once process pid has exited, leaving it to be reaped by
// exec.Cmd.Wait.
func waitExited(pid int) {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}
