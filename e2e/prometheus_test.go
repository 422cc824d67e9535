package e2e

// The real Prometheus (Debian's prometheus package) scrapes the runner through
// metrics-proxy with its ordinary scheme: https, tls_config and basic_auth.

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alloyci/hardened-runner/auth"
)

// promProc is a running Prometheus whose output is captured; it is stopped
// when the test ends.
type promProc struct {
	*proc
	URL string // http://127.0.0.1:PORT
}

// startPrometheus starts prometheus with the config on a free loopback port,
// retrying with another port if the one picked was taken in the meantime, and
// waits until it serves its API.
func startPrometheus(t *testing.T, bin, config string) *promProc {
	t.Helper()
	for attempt := 1; ; attempt++ {
		addr := freeAddr(t)
		p := &promProc{URL: "http://" + addr, proc: startCmd(t, exec.Command(bin,
			"--config.file="+config,
			"--storage.tsdb.path="+t.TempDir(),
			"--web.listen-address="+addr,
			"--log.level=info"))}
		if p.waitReady() {
			return p
		}
		if attempt < 3 && strings.Contains(p.Logs(), "address already in use") {
			continue
		}
		t.Fatalf("prometheus did not become ready; log:\n%s", p.Logs())
	}
}

// waitReady polls /-/ready for at most 60 s; false if prometheus exited or
// never became ready.
func (p *promProc) waitReady() bool {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return false
		default:
		}
		if resp, err := c.Get(p.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// api fetches one Prometheus API path and decodes its data into v.
func (p *promProc) api(path string, v any) error {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(p.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return fmt.Errorf("GET %s: %d, undecodable: %v", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("GET %s: %s: %s", path, env.Status, env.Error)
	}
	return json.Unmarshal(env.Data, v)
}

// promVector is the data of an instant query returning a vector.
type promVector struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	} `json:"result"`
}

// query runs an instant query and returns its series.
func (p *promProc) query(q string) (promVector, error) {
	var v promVector
	err := p.api("/api/v1/query?query="+url.QueryEscape(q), &v)
	return v, err
}

// promTargets is the data of /api/v1/targets.
type promTargets struct {
	ActiveTargets []struct {
		ScrapePool string            `json:"scrapePool"`
		ScrapeURL  string            `json:"scrapeUrl"`
		Labels     map[string]string `json:"labels"`
		Health     string            `json:"health"`
		LastError  string            `json:"lastError"`
	} `json:"activeTargets"`
}

// The real Prometheus scrapes the runner through the proxy with https,
// tls_config and basic_auth (and a target with the wrong password is down
// with a 401); the runner listens on loopback only, its metrics pass
// promtool, and promtool and check-config accept the shipped example web
// config once it has a real hash and certificate.
func TestPrometheusScrapesThroughProxy(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not in PATH (Debian: apt-get install prometheus; .ci/run installs it): " + err.Error())
	}
	s := startStack(t, proxyOptions{})
	proxyAddr := s.Addr

	dir := t.TempDir()
	goodPW, badPW := filepath.Join(dir, "good.pw"), filepath.Join(dir, "bad.pw")
	writeFile(t, goodPW, s.Password)
	writeFile(t, badPW, "not the password")
	job := func(name, pwFile string) string {
		return fmt.Sprintf(`  - job_name: %s
    scheme: https
    tls_config:
      ca_file: %s
    basic_auth:
      username: %s
      password_file: %s
    static_configs:
      - targets: ['%s']
`, name, s.PKI.CAFile, s.User, pwFile, proxyAddr)
	}
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promCfg, "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"+
		job("alloy-runner", goodPW)+job("alloy-runner-wrong-password", badPW))
	if promtool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(promtool, "check", "config", promCfg).CombinedOutput(); err != nil {
			t.Fatalf("promtool check config: %v\n%s", err, out)
		}
	}

	p := startPrometheus(t, promBin, promCfg)

	var (
		up, version  string
		wrongHealth  string
		wrongError   string
		lastProblems []string
	)
	deadline := time.Now().Add(60 * time.Second)
	for {
		lastProblems = lastProblems[:0]
		if v, err := p.query(`up{job="alloy-runner"}`); err != nil {
			lastProblems = append(lastProblems, err.Error())
		} else if len(v.Result) == 1 {
			up, _ = v.Result[0].Value[1].(string)
		}
		if v, err := p.query(`ci_runner_version_info{job="alloy-runner",name="alloy-runner"}`); err != nil {
			lastProblems = append(lastProblems, err.Error())
		} else if len(v.Result) == 1 {
			version, _ = v.Result[0].Value[1].(string)
		}
		var tg promTargets
		if err := p.api("/api/v1/targets?state=active", &tg); err != nil {
			lastProblems = append(lastProblems, err.Error())
		}
		for _, at := range tg.ActiveTargets {
			if at.Labels["job"] == "alloy-runner-wrong-password" {
				wrongHealth, wrongError = at.Health, at.LastError
			}
		}
		if up == "1" && version == "1" && wrongHealth == "down" && strings.Contains(wrongError, "401") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf(`after 60 s: up{job="alloy-runner"} = %q (want "1"), ci_runner_version_info{name="alloy-runner"} = %q (want "1"), `+
				`wrong-password target health %q (want "down"), lastError %q (want it to contain 401); API problems: %v`,
				up, version, wrongHealth, wrongError, lastProblems)
		}
		time.Sleep(500 * time.Millisecond)
	}

	t.Run("runner listens on loopback only", func(t *testing.T) {
		_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(s.RunnerURL, "http://"))
		port, _ := strconv.Atoi(portStr)
		addrs := promListeners(t, port)
		t.Logf("LISTEN sockets on the runner's port %d: %v", port, addrs)
		if len(addrs) == 0 {
			t.Fatalf("no LISTEN socket on port %d in /proc/net/tcp or tcp6", port)
		}
		for _, a := range addrs {
			if !a.IsLoopback() {
				t.Errorf("the runner's metrics port %d listens on %s, which is not loopback", port, a)
			}
		}
		// The parser's own check: a listener of ours on ::1 is read back as ::1.
		if l, err := net.Listen("tcp6", "[::1]:0"); err == nil {
			defer l.Close()
			own := promListeners(t, l.Addr().(*net.TCPAddr).Port)
			if len(own) != 1 || !own[0].Equal(net.IPv6loopback) {
				t.Errorf("/proc/net/tcp6 parsing: our [::1] listener reads as %v", own)
			}
		}
	})

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool := promLookPromtool(t)
		code, body := httpGet(t, http.DefaultClient, s.RunnerURL+"/metrics", nil)
		if code != 200 {
			t.Fatalf("runner /metrics: %d", code)
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("promtool check web-config on the shipped example", func(t *testing.T) {
		promtool := promLookPromtool(t)
		b, err := os.ReadFile("../web-config.yml.example")
		if os.IsNotExist(err) {
			t.Skip("web-config.yml.example does not exist yet")
		} else if err != nil {
			t.Fatal(err)
		}
		example := string(b)
		for old, repl := range map[string]string{
			auth.ExampleHash:                    defaultHash(t),
			"/etc/metrics-proxy/tls/server.crt": s.PKI.CertFile,
			"/etc/metrics-proxy/tls/server.key": s.PKI.KeyFile,
		} {
			if !strings.Contains(example, old) {
				t.Fatalf("web-config.yml.example no longer contains %q; update this test", old)
			}
			example = strings.ReplaceAll(example, old, repl)
		}
		f := filepath.Join(t.TempDir(), "web-config.yml")
		writeFile(t, f, example)
		if out, err := exec.Command(promtool, "check", "web-config", f).CombinedOutput(); err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Fatalf("promtool check web-config: %v\n%s", err, out)
		}
		// And the proxy agrees.
		if code, out := run(t, 20*time.Second, "metrics-proxy", "check-config", "--web.config.file", f); code != 0 {
			t.Fatalf("metrics-proxy check-config: exit %d\n%s", code, out)
		}
	})
}

func promLookPromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not in PATH although prometheus is (both come with Debian's prometheus package): %v", err)
	}
	return p
}

// promListeners returns the local addresses of the LISTEN sockets on port,
// from /proc/net/tcp and /proc/net/tcp6.
func promListeners(t *testing.T, port int) []net.IP {
	t.Helper()
	var addrs []net.IP
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if os.IsNotExist(err) {
			continue // no IPv6 in this kernel
		}
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "0A" { // 0A is TCP_LISTEN
				continue
			}
			ip, p, err := promParseProcAddr(fields[1])
			if err != nil {
				f.Close()
				t.Fatalf("%s: %q: %v", file, fields[1], err)
			}
			if p == port {
				addrs = append(addrs, ip)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return addrs
}

// promParseProcAddr parses a /proc/net/tcp{,6} address, "0100007F:1F90": the
// IP as 32-bit words in host byte order, each printed as hex, then the port
// in hex.
func promParseProcAddr(s string) (net.IP, int, error) {
	hexIP, hexPort, ok := strings.Cut(s, ":")
	if !ok || (len(hexIP) != 8 && len(hexIP) != 32) {
		return nil, 0, fmt.Errorf("not an address")
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return nil, 0, err
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil {
		return nil, 0, err
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	return ip, int(port), nil
}
