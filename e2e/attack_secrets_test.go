package e2e

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// capture collects everything a test saw, to search it for secrets.
type capture struct {
	mu    sync.Mutex
	parts []string
}

func (c *capture) add(what, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parts = append(c.parts, "== "+what+"\n"+text)
}

// response records a whole response: status, every header, body.
func (c *capture) response(what string, r result) {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", r.Status)
	keys := make([]string, 0, len(r.Header))
	for k := range r.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(r.Header[k], ", "))
	}
	b.WriteString(r.Body)
	c.add(what, b.String())
}

// The password, its bcrypt hash, the runner token and the Authorization
// value never appear in anything either process writes or answers, through
// good and bad logins, malformed headers, broken reloads and start-up
// failures of both binaries.
func TestAttackSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const (
		password = "atk-Sekr1t-Passw0rd-XYZ"
		token    = "glrt-SECRET-TOKEN-123"
	)
	hash := hashPassword(t, password, 10)
	authValue := base64.StdEncoding.EncodeToString([]byte(defaultUser + ":" + password))
	secrets := map[string]string{
		"password":              password,
		"bcrypt hash":           hash,
		"hash salt and digest":  hash[7:],
		"runner token":          token,
		"token without prefix":  strings.TrimPrefix(token, "glrt-"),
		"Authorization value":   authValue,
		"Authorization, padded": strings.TrimRight(authValue, "="),
	}
	var seen capture

	runnerCfg := "concurrent = 1\ncheck_interval = 3\n\n[[runners]]\n  name = \"atk\"\n  url = \"http://127.0.0.1:1/\"\n" +
		"  token = \"" + token + "\"\n  executor = \"shell\"\n"
	runner, runnerAddr := startRunner(t, runnerCfg, "--metrics-server", "127.0.0.1:0")
	p := startProxy(t, proxyOptions{
		Upstream: "http://" + runnerAddr,
		Args:     []string{"--web.allowed-path=/metrics", "--web.allowed-path=/debug/pprof/"},
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, hash)
		},
	})

	// Logins, right and wrong, through every form of header.
	c := p.client("")
	good := "Basic " + authValue
	for _, path := range []string{"/metrics", "/proxy/metrics", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1", "/debug/pprof/nope"} {
		seen.response("GET "+path, do(t, c, "GET", p.URL+path, map[string]string{"Authorization": good}))
	}
	seen.response("HEAD /metrics", do(t, c, "HEAD", p.URL+"/metrics", map[string]string{"Authorization": good}))
	attempts := []map[string]string{
		{"Authorization": basic(defaultUser, password+"x")},
		{"Authorization": basic("mallory", password)},
		{"Authorization": basic(defaultUser, password+strings.Repeat("!", 80))},
		{"Authorization": good + "="},
		{"Authorization": authValue},
		{"Authorization": "Bearer " + authValue},
		{"Authorization": "Basic " + password},
		{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(password))},
		{"Authorization": good, "Cookie": "session=" + password, "Proxy-Authorization": good},
	}
	for i, hdr := range attempts {
		src := fmt.Sprintf("127.0.9.%d", i+1)
		seen.response(fmt.Sprintf("attempt %d", i), do(t, p.client(src), "GET", p.URL+"/metrics", hdr))
		seen.response(fmt.Sprintf("attempt %d, POST", i), do(t, p.client(src), "POST", p.URL+"/metrics", hdr))
		seen.response(fmt.Sprintf("attempt %d, traversal", i), do(t, p.client(src), "GET", p.URL+"/metrics/%2e%2e/debug/pprof/", hdr))
	}
	for i := range 6 { // into back-off: the sixth is a (delayed) 429
		seen.response(fmt.Sprintf("throttled %d", i), do(t, p.client("127.0.9.1"), "GET", p.URL+"/metrics",
			map[string]string{"Authorization": basic(defaultUser, fmt.Sprintf("%s-%d", password, i))}))
	}
	if throttled := strings.Join(seen.parts[len(seen.parts)-6:], ""); !strings.Contains(throttled, "\n429\n") || !strings.Contains(throttled, "\nRetry-After: ") {
		t.Errorf("the guesses never reached back-off: %q", throttled)
	}
	raw := p.raw(t, "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: "+good+"\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", 2*time.Second)
	for _, r := range raw {
		seen.response("raw two Content-Lengths", result{Status: r.Status, Header: r.Header, Body: r.Body})
	}

	// Broken reloads of the web config that carry the secrets in odd places.
	for i, broken := range []string{
		tlsBlock(p.PKI) + "basic_auth_users:\n  " + defaultUser + ": '" + hash + "\n",
		tlsBlock(p.PKI) + "basic_auth_users:\n  " + defaultUser + ": '" + password + "'\n",
		tlsBlock(p.PKI) + "basic_auth_users:\n  " + defaultUser + ": '" + hash[:50] + "'\n",
		tlsBlock(p.PKI) + "basic_auth_users:\n  '" + hash + "': '" + hash + "'\n  x:y: '" + hash + "'\n",
		tlsBlock(p.PKI) + "http_server_config:\n  '" + hash + "': true\n  headers:\n    X-Token: '" + token + "'\n",
		tlsBlock(p.PKI) + "basic_auth_users: '" + hash + "'\n",
		tlsBlock(p.PKI) + "basic_auth_users:\n  " + defaultUser + " " + password + "\n",
		tlsBlock(p.PKI) + "basic_auth_users:\n  " + defaultUser + ":\n    password: " + password + "\n",
	} {
		replaceAtomically(t, p.WebConfig, broken)
		p.waitCount(reloadFailed, i+1)
		for _, args := range [][]string{
			{"check-config", "--web.config.file", p.WebConfig},
			{"--web.listen-address", "127.0.0.1:0", "--web.config.file", p.WebConfig, "--upstream.url", "http://" + runnerAddr},
		} {
			_, out := run(t, 15*time.Second, "metrics-proxy", args...)
			seen.add(fmt.Sprintf("metrics-proxy %s on broken file %d", args[0], i), out)
		}
	}
	replaceAtomically(t, p.WebConfig, tlsBlock(p.PKI)+usersBlock(defaultUser, hash))
	p.waitCount(reloaded, 1)
	seen.response("GET /proxy/metrics after the reloads", do(t, c, "GET", p.URL+"/proxy/metrics", map[string]string{"Authorization": good}))

	// The runner: its own metrics and pprof, a broken reload, start-up
	// failures with the token in its file.
	for _, path := range []string{"/metrics", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=2", "/debug/pprof/"} {
		seen.response("runner "+path, do(t, http.DefaultClient, "GET", "http://"+runnerAddr+path, nil))
	}
	seen.response("runner foreign Host", do(t, http.DefaultClient, "GET", "http://"+runnerAddr+"/metrics", map[string]string{"Host": "attacker.example"}))
	cfgFile := runnerConfigPath(t, runner)
	for i, broken := range []string{
		runnerCfg + "  tokn = \"" + token + "\"\n  limit = \"" + token + "\"\n",
		strings.Replace(runnerCfg, "executor = \"shell\"", "executor = \"docker\"", 1) + "  tokn = \"" + token + "\"\n",
		strings.Replace(runnerCfg, `token = "`+token+`"`, `token = "`+token, 1),
		strings.Replace(runnerCfg, `token = "`+token+`"`, `token = `+token, 1),
	} {
		writeFile(t, cfgFile, broken)
		runner.cmd.Process.Signal(syscall.SIGHUP)
		runner.waitCount("reload refused", i+1)
		_, out := run(t, 15*time.Second, "alloy-runner", "run", "--config", cfgFile, "--metrics-server", "127.0.0.1:0")
		seen.add(fmt.Sprintf("alloy-runner start on broken file %d", i), out)
	}
	seen.response("runner /metrics after the reloads", do(t, http.DefaultClient, "GET", "http://"+runnerAddr+"/metrics", nil))

	// Stop both so that their shutdown lines are in the logs too.
	for _, pr := range []*proc{p.proc, runner} {
		pr.cmd.Process.Signal(syscall.SIGTERM)
		pr.wait(15 * time.Second)
	}
	seen.add("metrics-proxy log", p.Logs())
	seen.add("alloy-runner log", runner.Logs())

	all := strings.Join(seen.parts, "\n")
	if !strings.Contains(all, "ci_runner_builds") || !strings.Contains(all, `msg="authentication failed"`) || !strings.Contains(all, "problem(s):") {
		t.Fatalf("the capture is missing what it should hold:\n%.2000s", all)
	}
	for name, s := range secrets {
		for _, part := range seen.parts {
			if i := strings.Index(part, s); i >= 0 {
				head, _, _ := strings.Cut(part, "\n")
				t.Errorf("the %s appears in %s: …%s…", name, strings.TrimPrefix(head, "== "), part[max(0, i-120):min(len(part), i+len(s)+40)])
			}
		}
	}
}

// runnerConfigPath is the --config file the runner was started with.
func runnerConfigPath(t *testing.T, p *proc) string {
	t.Helper()
	for i, a := range p.cmd.Args {
		if a == "--config" && i+1 < len(p.cmd.Args) {
			return filepath.Clean(p.cmd.Args[i+1])
		}
	}
	t.Fatal("runner started without --config")
	return ""
}
