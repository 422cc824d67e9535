package e2e

// The monitoring mixin (mixin/): its rule files pass promtool's checks and
// its unit tests, every alert and recording rule has its cases there, and
// every query of its dashboard returns data from the real stack (runner,
// node_exporter and the proxy's own metrics, all through one metrics-proxy)
// scraped by the real Prometheus, which evaluates the mixin's recording
// rules and alerts, every one of them healthy.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v2"

	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

// mixinDir holds the rule files, their tests and the dashboard.
const mixinDir = "../mixin"

// mixinRuleFile is the part of a Prometheus rule file the tests read.
type mixinRuleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// mixinTestFile is the part of a promtool test file the tests read.
type mixinTestFile struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			EvalTime  string `yaml:"eval_time"`
			ExpAlerts []struct {
				ExpLabels map[string]string `yaml:"exp_labels"`
			} `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
		PromqlExprTest []struct {
			Expr string `yaml:"expr"`
		} `yaml:"promql_expr_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	if err := yaml.Unmarshal([]byte(readFile(t, path)), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// mixinRules returns the alerts (name to severity) and the recorded names
// of alerts.yml and rules.yml, failing the test on an alert without a
// severity of warning or critical or without a summary and description.
func mixinRules(t *testing.T) (alerts map[string]string, records []string) {
	t.Helper()
	alerts = map[string]string{}
	for _, f := range []string{"alerts.yml", "rules.yml"} {
		var rf mixinRuleFile
		readYAML(t, filepath.Join(mixinDir, f), &rf)
		for _, g := range rf.Groups {
			for _, r := range g.Rules {
				if r.Record != "" {
					records = append(records, r.Record)
					continue
				}
				sev := r.Labels["severity"]
				if sev != "warning" && sev != "critical" {
					t.Errorf("%s: alert %s has severity %q, want warning or critical", f, r.Alert, sev)
				}
				for _, a := range []string{"summary", "description"} {
					if !strings.Contains(r.Annotations[a], "{{ $labels.") {
						t.Errorf("%s: alert %s: annotation %s %q names no label of the alert", f, r.Alert, a, r.Annotations[a])
					}
				}
				alerts[r.Alert] = sev
			}
		}
	}
	return alerts, records
}

// promtool runs promtool with args in mixinDir and returns its exit code
// and output. Not through run: promtool's output is not one of ours.
func promtool(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = mixinDir
	var out bytes.Buffer
	code := execute(t, 2*time.Minute, cmd, "", &out, &out)
	return code, out.String()
}

// promtool accepts the rule files and passes their unit tests, and those
// tests cover every alert (firing in one case, silent in another) and every
// recording rule.
func TestMixinRules(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not in PATH, so the mixin's rules cannot be checked (Debian: apt-get install prometheus; make test installs it as root): " + err.Error())
	}
	if code, out := promtool(t, bin, "check", "rules", "alerts.yml", "rules.yml"); code != 0 || strings.Count(out, "SUCCESS") != 2 {
		t.Errorf("promtool check rules alerts.yml rules.yml: exit %d, want 0 and SUCCESS for both:\n%s", code, out)
	}
	if code, out := promtool(t, bin, "test", "rules", "tests.yml"); code != 0 || !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules tests.yml: exit %d, want 0 and SUCCESS:\n%s", code, out)
	}

	alerts, records := mixinRules(t)
	if len(alerts) == 0 || len(records) == 0 {
		t.Fatalf("alerts.yml and rules.yml hold %d alerts and %d recording rules", len(alerts), len(records))
	}
	var tf mixinTestFile
	readYAML(t, filepath.Join(mixinDir, "tests.yml"), &tf)
	if !slices.Contains(tf.RuleFiles, "alerts.yml") || !slices.Contains(tf.RuleFiles, "rules.yml") {
		t.Errorf("tests.yml rule_files = %q, want alerts.yml and rules.yml", tf.RuleFiles)
	}
	fires, silent := map[string]int{}, map[string]int{}
	var exprs []string
	for _, tc := range tf.Tests {
		for _, a := range tc.AlertRuleTest {
			if _, ok := alerts[a.Alertname]; !ok {
				t.Errorf("tests.yml %q: alert %s is not in alerts.yml", tc.Name, a.Alertname)
			}
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
		for _, e := range tc.PromqlExprTest {
			exprs = append(exprs, e.Expr)
		}
	}
	names := make([]string, 0, len(alerts))
	for a := range alerts {
		names = append(names, a)
	}
	sort.Strings(names)
	for _, a := range names {
		if fires[a] == 0 || silent[a] == 0 {
			t.Errorf("tests.yml: alert %s has %d case(s) where it fires and %d where it does not; want at least one of each", a, fires[a], silent[a])
		}
	}
	for _, r := range records {
		if !slices.ContainsFunc(exprs, func(e string) bool { return strings.Contains(e, r) }) {
			t.Errorf("tests.yml: no promql_expr_test queries recording rule %s", r)
		}
	}
	t.Logf("%d alerts, %d recording rules, %d test cases", len(alerts), len(records), len(tf.Tests))
}

// ---- The dashboard ------------------------------------------------------

// grafanaDashboard is the part of a Grafana dashboard the tests read.
type grafanaDashboard struct {
	UID           string         `json:"uid"`
	Title         string         `json:"title"`
	SchemaVersion int            `json:"schemaVersion"`
	Panels        []grafanaPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource *grafanaDS      `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type grafanaDS struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID         int        `json:"id"`
	Type       string     `json:"type"`
	Title      string     `json:"title"`
	Datasource *grafanaDS `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		Expr       string     `json:"expr"`
		RefID      string     `json:"refId"`
		Datasource *grafanaDS `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"` // a collapsed row's
}

// dashboardQuery is one query of the dashboard: a panel's target or a
// template variable's label_values().
type dashboardQuery struct {
	where string // `panel "TITLE" target A`, `variable $job`
	expr  string // as written in the dashboard
	label string // for a variable: the label whose values it lists
}

// loadDashboard reads mixin/dashboard.json, checks what Grafana needs to
// import it anywhere (a datasource variable every panel and target uses,
// unique panel ids, panels within the 24 columns) and returns its queries.
func loadDashboard(t *testing.T) (grafanaDashboard, []dashboardQuery) {
	t.Helper()
	var d grafanaDashboard
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(mixinDir, "dashboard.json"))), &d); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("dashboard.json: uid %q, title %q, schemaVersion %d; want a uid, a title and schemaVersion 36 or later", d.UID, d.Title, d.SchemaVersion)
	}
	const ds = "${datasource}"
	var qs []dashboardQuery
	hasDS := false
	rxLabelValues := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
	for _, v := range d.Templating.List {
		var q string
		if json.Unmarshal(v.Query, &q) != nil {
			var obj struct{ Query string }
			json.Unmarshal(v.Query, &obj)
			q = obj.Query
		}
		if v.Type == "datasource" {
			hasDS = v.Name == "datasource" && q == "prometheus"
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != ds {
			t.Errorf("dashboard.json: variable $%s does not query %s", v.Name, ds)
		}
		if v.Type == "query" {
			m := rxLabelValues.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("dashboard.json: variable $%s: query %q is not label_values(QUERY, LABEL)", v.Name, q)
				continue
			}
			qs = append(qs, dashboardQuery{where: "variable $" + v.Name, expr: m[1], label: m[2]})
		}
	}
	if !hasDS {
		t.Errorf(`dashboard.json: no template variable "datasource" of type datasource for prometheus`)
	}
	ids := map[int]bool{}
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("dashboard.json: panel id %d is not unique (%q)", p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.X < 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("dashboard.json: panel %q gridPos %+v is not within 24 columns", p.Title, p.GridPos)
			}
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if p.Datasource == nil || p.Datasource.UID != ds || len(p.Targets) == 0 {
				t.Errorf("dashboard.json: panel %q: datasource %+v, %d targets; want %s and at least one", p.Title, p.Datasource, len(p.Targets), ds)
			}
			for _, tg := range p.Targets {
				if tg.Datasource == nil || tg.Datasource.UID != ds || tg.Expr == "" {
					t.Errorf("dashboard.json: panel %q target %s: datasource %+v, expr %q", p.Title, tg.RefID, tg.Datasource, tg.Expr)
				}
				qs = append(qs, dashboardQuery{where: fmt.Sprintf("panel %q target %s", p.Title, tg.RefID), expr: tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return d, qs
}

// rxGrafanaVar is a Grafana variable in a query: $name, ${name} or
// ${name:format}.
var rxGrafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)

// substitute replaces the dashboard's variables in expr as Grafana would
// with every value selected: each template variable matches everything,
// $__rate_interval is 1m. An unknown variable is an error.
func substitute(d grafanaDashboard, expr string) (string, error) {
	values := map[string]string{"__rate_interval": "1m"}
	for _, v := range d.Templating.List {
		if v.Type != "datasource" {
			values[v.Name] = ".+"
		}
	}
	var unknown []string
	out := rxGrafanaVar.ReplaceAllStringFunc(expr, func(s string) string {
		m := rxGrafanaVar.FindStringSubmatch(s)
		name := m[1] + m[2]
		v, ok := values[name]
		if !ok {
			unknown = append(unknown, s)
			return s
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("uses %q, not a variable of the dashboard", unknown)
	}
	return out, nil
}

// The dashboard reads well as JSON (checked without any program).
func TestMixinDashboardIsWellFormed(t *testing.T) {
	t.Parallel()
	d, qs := loadDashboard(t)
	for _, q := range qs {
		if _, err := substitute(d, q.expr); err != nil {
			t.Errorf("%s: %v", q.where, err)
		}
	}
}

// ---- The real stack -----------------------------------------------------

// promRules is the data of /api/v1/rules.
type promRules struct {
	Groups []struct {
		Name  string `json:"name"`
		File  string `json:"file"`
		Rules []struct {
			Name      string `json:"name"`
			Type      string `json:"type"`
			Health    string `json:"health"`
			LastError string `json:"lastError"`
		} `json:"rules"`
	} `json:"groups"`
}

// Every query of the dashboard returns data from the real stack: the runner
// (with jobs that succeeded and failed), node_exporter and the proxy's own
// metrics behind one metrics-proxy, scraped by the real Prometheus as the
// README configures it, with mixin/rules.yml and alerts.yml loaded and
// every rule healthy.
func TestMixinDashboardQueriesReturnData(t *testing.T) {
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("the prometheus binary is not in PATH (Debian: apt-get install prometheus; make test installs it as root): " + err.Error())
	}
	nodeBin := lookNodeExporter(t)
	began := time.Now()
	d, queries := loadDashboard(t)
	alerts, records := mixinRules(t)

	// The runner polls a coordinator double (on loopback) for jobs;
	// node_exporter and the runner sit behind one proxy, which lets
	// prometheus read its own metrics (admin:).
	coord, repo, sha, _, runnerAddr := startJobs(t, coordinatortest.Strict)
	node := startNodeExporter(t, nodeBin, freeAddr(t))
	tokenFile, sum := newToken(t, t.TempDir())
	oncallHash := hashPassword(t, oncallPassword, 10)
	p := startProxy(t, proxyOptions{
		Web: func(k *pki) string {
			return tlsBlock(k) + usersBlock(defaultUser, defaultHash(t), oncallUser, oncallHash)
		},
		Routes: hostRoutes(runnerAddr, node.Addr, sum) + "admin:\n  users: [prometheus, oncall]\n",
	})

	dir := t.TempDir()
	pwFile := filepath.Join(dir, "prometheus.password")
	writeFile(t, pwFile, defaultPassword)
	abs := func(f string) string {
		a, err := filepath.Abs(filepath.Join(mixinDir, f))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	job := func(name, path, auth string) string {
		return fmt.Sprintf(`  - job_name: %s
    scheme: https
    metrics_path: %s
    tls_config: {ca_file: %q}
    %s
    static_configs: [{targets: [%q]}]
`, name, path, p.PKI.CAFile, auth, p.Addr)
	}
	basicAuth := fmt.Sprintf("basic_auth: {username: %s, password_file: %q}", defaultUser, pwFile)
	promCfg := filepath.Join(dir, "prometheus.yml")
	writeFile(t, promCfg, fmt.Sprintf("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"+
		"rule_files: [%q, %q]\nscrape_configs:\n", abs("rules.yml"), abs("alerts.yml"))+
		job("alloy-runner", "/metrics", basicAuth)+
		job("node", "/node/metrics", fmt.Sprintf("authorization: {credentials_file: %q}", tokenFile))+
		job("metrics-proxy", "/proxy/metrics", basicAuth))
	prom := startPrometheus(t, promBin, promCfg)

	// poll runs check until it reports no problem or the deadline passes,
	// and returns the last problems.
	poll := func(limit time.Duration, check func() []string) []string {
		deadline := time.Now().Add(limit)
		for {
			problems := check()
			if len(problems) == 0 || time.Now().After(deadline) {
				return problems
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	// holds returns a problem unless q (a filter such as up == 1)
	// returns exactly one series.
	holds := func(q string) []string {
		v, err := prom.query(q)
		if err != nil {
			return []string{err.Error()}
		}
		if len(v.Result) != 1 {
			return []string{fmt.Sprintf("%s: %d series, want 1", q, len(v.Result))}
		}
		return nil
	}
	if problems := poll(60*time.Second, func() []string {
		var problems []string
		for _, j := range []string{"alloy-runner", "node", "metrics-proxy"} {
			problems = append(problems, holds(fmt.Sprintf(`up{job=%q} == 1`, j))...)
		}
		return problems
	}); len(problems) > 0 {
		t.Fatalf("the three jobs are not up after 60 s: %v", problems)
	}

	// Traffic for the counters: a wrong password and a route prometheus is
	// not granted, from an address of their own; a job that succeeds and
	// one that fails.
	c := p.client("127.0.0.3")
	if r := p.getAs(t, c, "/metrics", defaultUser, "not the password"); r.Status != 401 {
		t.Errorf("wrong password: %d, want 401", r.Status)
	}
	if r := p.getAs(t, c, "/debug/pprof/", defaultUser, defaultPassword); r.Status != 404 {
		t.Errorf("prometheus on the pprof route: %d, want 404", r.Status)
	}
	ok := coord.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600, "echo mixin job succeeds"))
	bad := coord.EnqueueSpec(e2eRunnerToken, e2eJob(repo, sha, 600, "echo mixin job fails; exit 3"))
	if j := coord.AwaitFinal(ok); j.State != "success" {
		t.Fatalf("job %d: %s, want success\n%s", ok, j.State, j.Stored)
	}
	if j := coord.AwaitFinal(bad); j.State != "failed" {
		t.Fatalf("job %d: %s, want failed\n%s", bad, j.State, j.Stored)
	}
	if problems := poll(60*time.Second, func() []string {
		var problems []string
		for _, q := range []string{
			`metrics_proxy_requests_total{job="metrics-proxy",outcome="forbidden_route"} >= 1`,
			`metrics_proxy_route_requests_total{job="metrics-proxy",route="pprof",outcome="forbidden_route"} >= 1`,
			`metrics_proxy_auth_attempts_total{job="metrics-proxy",outcome="unauthorized"} >= 1`,
			`ci_runner_jobs_total{job="alloy-runner",state="success"} >= 1`,
			`ci_runner_failed_jobs_total{job="alloy-runner",failure_reason="script_failure"} >= 1`,
		} {
			problems = append(problems, holds(q)...)
		}
		return problems
	}); len(problems) > 0 {
		t.Fatalf("Prometheus does not see the traffic after 60 s: %v", problems)
	}

	// Every rule of both files loaded and evaluated without error.
	if problems := poll(60*time.Second, func() []string {
		var rs promRules
		if err := prom.api("/api/v1/rules", &rs); err != nil {
			return []string{err.Error()}
		}
		var problems []string
		seen := map[string]bool{}
		for _, g := range rs.Groups {
			for _, r := range g.Rules {
				seen[r.Name] = true
				if r.Health != "ok" {
					problems = append(problems, fmt.Sprintf("%s rule %s (group %s): health %q %s", r.Type, r.Name, g.Name, r.Health, r.LastError))
				}
			}
		}
		for a := range alerts {
			if !seen[a] {
				problems = append(problems, "alert "+a+" not loaded")
			}
		}
		for _, r := range records {
			if !seen[r] {
				problems = append(problems, "recording rule "+r+" not loaded")
			}
		}
		sort.Strings(problems)
		return problems
	}); len(problems) > 0 {
		t.Errorf("rules not healthy after 60 s:\n%s", strings.Join(problems, "\n"))
	}

	// Every query of the dashboard returns at least one series: those on
	// recording rules once the rules have run on the scraped data.
	counts := make([]int, len(queries))
	problems := poll(60*time.Second, func() []string {
		var problems []string
		for i, q := range queries {
			expr, err := substitute(d, q.expr)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", q.where, err))
				continue
			}
			v, err := prom.query(expr)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s: %v", q.where, expr, err))
				continue
			}
			counts[i] = 0
			for _, r := range v.Result {
				if q.label == "" || r.Metric[q.label] != "" {
					counts[i]++
				}
			}
			if counts[i] == 0 {
				problems = append(problems, fmt.Sprintf("%s: no series for %s", q.where, expr))
			}
		}
		return problems
	})
	for _, pr := range problems {
		t.Error(pr)
	}
	var report strings.Builder
	for i, q := range queries {
		fmt.Fprintf(&report, "  %3d series  %s\n", counts[i], q.where)
	}
	t.Logf("%d dashboard queries against the real stack, after %v:\n%s", len(queries), time.Since(began).Round(time.Second), report.String())
}
