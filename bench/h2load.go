package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// wrong-password-h2's and wrong-token-h2's flood is nghttp2's h2load when it can be had: a
// client written for HTTP/2 load, unlike ours. findH2load looks for it and,
// when it is missing and the bench runs as root with apt-get, installs
// nghttp2-client as scripts/test-deps.sh does for the test tools. It returns
// h2load's path, or "" and why the Go client floods instead.
func findH2load(ctx context.Context, stderr io.Writer) (string, string) {
	if p, err := exec.LookPath("h2load"); err == nil {
		return p, ""
	}
	apt, err := exec.LookPath("apt-get")
	if os.Geteuid() != 0 || err != nil {
		return "", "h2load not found (Debian: apt-get install nghttp2-client), and the bench is not root with apt-get: the Go HTTP/2 client floods instead"
	}
	progress(stderr, "h2load not found: installing nghttp2-client with apt-get")
	install := func(args ...string) error {
		cmd := exec.CommandContext(ctx, apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %v: %s", strings.Join(args, " "), err, lastLine(string(out)))
		}
		return nil
	}
	pkg := []string{"install", "-y", "-qq", "--no-install-recommends", "nghttp2-client"}
	if err := install(pkg...); err != nil {
		if err = install("update", "-qq"); err == nil {
			err = install(pkg...)
		}
		if err != nil {
			return "", fmt.Sprintf("h2load not found and installing nghttp2-client failed (%v): the Go HTTP/2 client floods instead", err)
		}
	}
	if p, err := exec.LookPath("h2load"); err == nil {
		return p, ""
	}
	return "", "nghttp2-client installed but no h2load on PATH: the Go HTTP/2 client floods instead"
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// h2loadArgs are h2load's arguments for def's flood against url: the wrong
// password, or for wrong-token-h2 the wrong bearer token.
func h2loadArgs(s *setup, o options, def attackDef, url string) []string {
	secs := max(1, int(math.Ceil(o.attackDur.Seconds())))
	authz := basicAuth(s.user, s.wrongPassword)
	if def.token {
		authz = "Bearer " + s.wrongToken
	}
	return []string{"-t", "1", "-c", strconv.Itoa(o.h2Conns), "-m", strconv.Itoa(o.h2Streams), "-D", strconv.Itoa(secs),
		"-H", "authorization: " + authz, url}
}

// startH2load starts h2load (s.h2load) now.
func startH2load(s *setup, o options, def attackDef, logPath, url string) (*proc, error) {
	return startProc("h2load", logPath, s.h2load, h2loadArgs(s, o, def, url)...)
}

var (
	h2loadRequests = regexp.MustCompile(`^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2loadStatus   = regexp.MustCompile(`^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
)

// parseH2load reads h2load's summary from its log: the counts, and the lines
// worth printing.
func parseH2load(log string) (attackCounts, []string) {
	ac := attackCounts{Status: map[string]int{}, Errs: map[string]int{}, AllOpenAt: -1}
	var keep []string
	others := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "finished in"):
			keep = append(keep, line)
		case h2loadRequests.MatchString(line):
			keep = append(keep, line)
			m := h2loadRequests.FindStringSubmatch(line)
			ac.Requests, _ = strconv.Atoi(m[2])
			errored, _ := strconv.Atoi(m[6])
			timeout, _ := strconv.Atoi(m[7])
			if errored > 0 {
				ac.Errs["errored"] = errored
			}
			if timeout > 0 {
				ac.Errs["timeout"] = timeout
			}
		case h2loadStatus.MatchString(line):
			keep = append(keep, line)
			m := h2loadStatus.FindStringSubmatch(line)
			for i, k := range []string{"2xx", "3xx", "4xx", "5xx"} {
				if n, _ := strconv.Atoi(m[i+1]); n > 0 {
					ac.Status[k] = n
				}
			}
		case strings.HasPrefix(line, "time for request:"), strings.HasPrefix(line, "time for connect:"):
			keep = append(keep, line)
		case line != "" && len(others) < 3 && (strings.Contains(line, "rror") || strings.Contains(line, "could not")):
			if !others[line] {
				others[line] = true
				keep = append(keep, line)
			}
		}
	}
	return ac, keep
}

// readLog is a process's whole log.
func readLog(p *proc) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	return string(b)
}
