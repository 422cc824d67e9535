package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const full = `
concurrent = 4
check_interval = 5
metrics_server = "localhost:9252"

[[runners]]
  name = "first"
  url = "https://alloy.example.com/"
  token = "tok-first"
  executor = "shell"
  builds_dir = "/var/lib/alloy-runner/builds"
  limit = 2
  shell = "bash"
  [runners.docker]
    image = "ruby:2.6"
`

func TestParseFull(t *testing.T) {
	c, err := Parse("c.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	want := Runner{Name: "first", URL: "https://alloy.example.com/", Token: "tok-first", Executor: "shell",
		BuildsDir: "/var/lib/alloy-runner/builds", Limit: 2, Shell: "bash"}
	if c.Concurrent != 4 || c.CheckInterval != 5 || c.MetricsServer != "localhost:9252" || !c.MetricsServerSet ||
		len(c.Runners) != 1 || c.Runners[0] != want {
		t.Fatalf("got %+v", c)
	}
	if strings.Join(c.Unknown, ",") != "runners.docker,runners.docker.image" {
		t.Fatalf("unknown keys = %v", c.Unknown)
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("c.toml", []byte("[[runners]]\nname='a'\nurl='http://127.0.0.1:1/'\ntoken='t'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrent != 1 || c.CheckInterval != 3 || c.MetricsServer != DefaultMetricsServer || c.MetricsServerSet {
		t.Fatalf("globals: %+v", c)
	}
	r := c.Runners[0]
	if r.Executor != "shell" || r.Shell != "bash" || r.BuildsDir != "builds" || r.Limit != 0 {
		t.Fatalf("runner defaults: %+v", r)
	}
}

func TestEmptyMetricsServerDisables(t *testing.T) {
	c, err := Parse("c.toml", []byte(`metrics_server = ""`))
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsServer != "" || !c.MetricsServerSet {
		t.Fatalf("got %+v", c)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"concurrent = \n", "config file c.toml:1: "},
		{"a = 1\n\n[[runners]x\n", "config file c.toml:3: "},
		{"concurrent = 1\n[[runners]\n", "config file c.toml:2: "},
		{`concurrent = "four"`, "concurrent"},
		{"concurrent = -1", "concurrent = -1: must be 1 or more"},
		{"[[runners]]\nurl='https://x.example/'\ntoken='t'", `[[runners]] #1: name is missing`},
		{"[[runners]]\nname='a'\nurl='ftp://x.example/'\ntoken='t'", `runner "a": url "ftp://x.example/" is not an http(s) URL`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'", `runner "a": token is missing`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'\nexecutor='docker'", `runner "a": executor "docker" is not supported`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'\nlimit=-2", `runner "a": limit = -2`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'\n[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'", `runner "a": the name is used twice`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'\nshell='sh'", `runner "a": shell "sh" is not supported: set shell = "bash"`},
		{"[[runners]]\nname='a'\nurl='https://x.example/'\ntoken='t'\n[[runners]]\nname='b'\nurl='https://x.example/'\ntoken='t'", `runner "b": same url and token as runner "a"`},
	}
	for _, tt := range tests {
		_, err := Parse("c.toml", []byte(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) error = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}

func TestErrorsNeverShowTokens(t *testing.T) {
	_, err := Parse("c.toml", []byte("[[runners]]\nname='a'\nurl='gopher://x'\ntoken='s3cr3t-token'\nexecutor='ssh'"))
	if err == nil || strings.Contains(err.Error(), "s3cr3t-token") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml does not exist: create it") {
		t.Fatalf("got %v", err)
	}
}

func TestAddAndRemoveRunnerKeepOthers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	second := Runner{Name: "second", URL: "https://b.example/", Token: "tok-2", Executor: "shell", Shell: "bash", BuildsDir: "b"}
	if err := AddRunner(path, second); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != FileMode {
		t.Fatalf("mode = %o", fi.Mode().Perm())
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Runners) != 2 || c.Runners[0].Token != "tok-first" || c.Runners[1] != second || c.Concurrent != 4 ||
		strings.Join(c.Unknown, ",") != "runners.docker,runners.docker.image" {
		t.Fatalf("after add: %+v", c)
	}
	if err := AddRunner(path, second); err == nil || !strings.Contains(err.Error(), `a runner named "second" is already in`) {
		t.Fatalf("duplicate add: %v", err)
	}
	if err := RemoveRunner(path, "first"); err != nil {
		t.Fatal(err)
	}
	c, _ = Load(path)
	if len(c.Runners) != 1 || c.Runners[0].Name != "second" || c.MetricsServer != "localhost:9252" {
		t.Fatalf("after remove: %+v", c)
	}
	if err := RemoveRunner(path, "first"); err == nil || !strings.Contains(err.Error(), `no runner named "first"`) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestAddRunnerCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	r := Runner{Name: "a", URL: "https://a.example/", Token: "t", Executor: "shell", Shell: "bash", BuildsDir: "b"}
	if err := AddRunner(path, r); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil || len(c.Runners) != 1 || c.Runners[0] != r {
		t.Fatalf("got %+v, %v", c, err)
	}
}

func TestEditRefusesBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	os.WriteFile(path, []byte("concurrent = [\n"), 0o600)
	err := AddRunner(path, Runner{Name: "a"})
	if err == nil || !strings.Contains(err.Error(), "not changing a config file that does not load") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "concurrent = [\n" {
		t.Fatalf("broken file was rewritten: %q", b)
	}
}

// A token with a syntax error on its line, or a URL with a password, must not
// reach the error message (it is logged on start and on every SIGHUP).
func TestErrorsNeverQuoteSecretValues(t *testing.T) {
	for _, in := range []string{
		"[[runners]]\nname='a'\ntoken = xSECRETTOKEN123abc\n",
		"[[runners]]\nname='a'\nurl='https://u:SECRETPASS@x y/'\ntoken='t'\n",
	} {
		_, err := Parse("c.toml", []byte(in))
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("Parse(%q) = %v", in, err)
		}
	}
	r := Runner{Name: "a", URL: "https://u:SECRETPASS@alloy.example.com/"}
	if strings.Contains(r.String(), "SECRETPASS") || strings.Contains(r.SafeURL(), "SECRETPASS") {
		t.Errorf("String %q, SafeURL %q", r.String(), r.SafeURL())
	}
}

func TestValidateRunners(t *testing.T) {
	good := Runner{Name: "ok", URL: "https://alloy.example.com/", Token: "t", Executor: "shell", Shell: "bash"}
	if err := ValidateRunners([]Runner{good}); err != nil {
		t.Fatalf("valid runner: %v", err)
	}
	bad := good
	bad.Name, bad.Executor, bad.Token = "dock", "docker", "t2"
	err := ValidateRunners([]Runner{good, bad, good})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`runner "dock": executor "docker" is not supported`, `runner "ok": same url and token as runner "ok"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "t2") {
		t.Errorf("error shows a token: %v", err)
	}
}

func TestCacheDirAndArtifactsLimit(t *testing.T) {
	r := Runner{BuildsDir: "/var/lib/alloy-runner/builds"}
	if got := r.CacheDirectory(); got != "/var/lib/alloy-runner/cache" {
		t.Errorf("default cache directory %q", got)
	}
	if got := r.ArtifactsLimitBytes(); got != 100<<20 {
		t.Errorf("default artifacts limit %d, want 100 MiB", got)
	}
	r.CacheDir, r.ArtifactsLimit = "/srv/cache", 2048
	if r.CacheDirectory() != "/srv/cache" || r.ArtifactsLimitBytes() != 2<<20 {
		t.Errorf("set: %q %d", r.CacheDirectory(), r.ArtifactsLimitBytes())
	}
	bad := Runner{Name: "a", URL: "https://a.example/", Token: "t", Executor: "shell", Shell: "bash", BuildsDir: "b", ArtifactsLimit: -1}
	want := `runner "a": artifacts_limit = -1: give the largest artifacts or cache archive in KiB, from 1 to 1073741824 (0 means 102400, 100 MiB)`
	if err := ValidateRunners([]Runner{bad}); err == nil || err.Error() != want {
		t.Errorf("negative limit: %v\nwant %s", err, want)
	}
}
