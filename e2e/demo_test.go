package e2e

import (
	"bufio"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// make run, as a new user runs it: the printed curl command scrapes the
// runner's metrics through TLS and basic auth, and Ctrl-C stops both.
func TestDemoPrintsAWorkingCurlCommand(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("make run needs %s, which is not installed", tool)
		}
	}
	runnerAddr, proxyAddr := freeAddr(t), freeAddr(t)
	dir := filepath.Join(t.TempDir(), "demo")
	cmd := exec.Command("bash", "../scripts/demo.sh")
	cmd.Env = append(cmd.Environ(), "BINDIR="+binDir, "DEMO_DIR="+dir,
		"DEMO_RUNNER_ADDR="+runnerAddr, "DEMO_PROXY_ADDR="+proxyAddr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)

	var printed strings.Builder
	sc := bufio.NewScanner(stdout)
	ready := make(chan bool)
	go func() {
		for sc.Scan() {
			printed.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Press Ctrl-C to stop both.") {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("demo ended early; stdout:\n%s\nstderr:\n%s", printed.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo not ready; stdout:\n%s\nstderr:\n%s", printed.String(), stderr.String())
	}
	curl := regexp.MustCompile(`(?m)^\s+(curl --cacert \S+ -u .*/metrics)$`).FindStringSubmatch(printed.String())
	if curl == nil {
		t.Fatalf("no curl command printed:\n%s", printed.String())
	}
	sh := exec.Command("bash", "-c", curl[1])
	sh.Dir = ".."
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ci_runner_version_info{") {
		t.Fatalf("%s: %v\n%.300s", curl[1], err, out)
	}

	// Ctrl-C stops both processes.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop on Ctrl-C")
	}
	for _, addr := range []string{runnerAddr, proxyAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still listening after Ctrl-C", addr)
		}
	}
}
