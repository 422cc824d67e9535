package webconfig

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitTimeout bounds every wait for the watcher. It only guards against a hang:
// the tests wait on conditions, and never measure time.
const waitTimeout = 20 * time.Second

// watch starts the Store's watch loop with its watches already placed, and
// stops it when the test ends.
func (e *storeEnv) watch(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	wl := e.store.newWatchLoop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer wl.close()
		wl.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// nextChange waits for OnChange.
func (e *storeEnv) nextChange(t *testing.T) *Config {
	t.Helper()
	select {
	case c := <-e.changed:
		return c
	case <-time.After(waitTimeout):
		t.Fatal("no reload seen")
		return nil
	}
}

// waitFailures waits until the failure counter reaches n.
func (e *storeEnv) waitFailures(t *testing.T, n float64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		if got, _ := e.metric(t, "metrics_proxy_config_reloads_total", "failure"); got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("failure count never reached %v", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastWatch(o *StoreOptions) { o.Debounce = 20 * time.Millisecond }

func TestWatchAtomicRename(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml", fastWatch)
	e.watch(t)
	copyFixture(t, e.path, "tls_users.good.yml") // write a temp file, rename over
	if c := e.nextChange(t); !c.Access().Users || c != e.store.Current() {
		t.Fatal("renamed-in config not applied")
	}
}

func TestWatchCertificateReplaced(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml", fastWatch)
	e.watch(t)
	// WriteServer renames the certificate, then the key, into place. The
	// certificate alone does not match the old key, so the reload may fail in
	// between; what matters is that the pair ends up served.
	serial := e.pki.WriteServer(t, "server", e.pki.now.Add(-time.Hour), e.pki.now.Add(96*time.Hour))
	c := e.nextChange(t)
	cert, _ := c.TLS.GetCertificate(nil)
	if cert.Leaf.SerialNumber.Int64() != serial {
		t.Fatalf("serving serial %d, want %d", cert.Leaf.SerialNumber.Int64(), serial)
	}
}

// Kubernetes mounts a ConfigMap or Secret as symlinks into a ..data symlink to
// a timestamped directory, and updates it by renaming a new ..data symlink over
// the old one: no file the config names is written at all.
func TestWatchKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "..v1"), filepath.Join(dir, "..v2")
	for _, d := range []string{v1, v2} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pki := newPKI(t, v1)
	yml, err := os.ReadFile("testdata/tls.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(v1, "web.yml"), yml)
	symlink(t, "..v1", filepath.Join(dir, "..data"))
	for _, f := range []string{"web.yml", "server.crt", "server.key"} {
		symlink(t, filepath.Join("..data", f), filepath.Join(dir, f))
	}

	e := &storeEnv{path: filepath.Join(dir, "web.yml"), pki: pki, changed: make(chan *Config, 16)}
	s, err := NewStore(e.path, StoreOptions{Debounce: 20 * time.Millisecond, OnChange: func(c *Config) { e.changed <- c }})
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	e.watch(t)

	// The next version of the volume, written in full before the swap.
	writeFile(t, filepath.Join(v2, "web.yml"), yml)
	pki.dir = v2
	serial := pki.WriteServer(t, "server", pki.now.Add(-time.Hour), pki.now.Add(96*time.Hour))
	symlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}

	c := e.nextChange(t)
	cert, _ := c.TLS.GetCertificate(nil)
	if cert.Leaf.SerialNumber.Int64() != serial {
		t.Fatalf("serving serial %d, want %d from the swapped-in volume", cert.Leaf.SerialNumber.Int64(), serial)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestWatchTruncatedThenComplete(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml", fastWatch)
	good := e.store.Current()
	e.watch(t)

	full, err := os.ReadFile("testdata/tls_users.good.yml")
	if err != nil {
		t.Fatal(err)
	}
	// In place, as `>` in a shell or a naive editor: first the truncation...
	writeFile(t, e.path, nil)
	e.waitFailures(t, 1)
	// ...then a partial write, cut mid-key...
	cut := len(full) - 20
	writeFile(t, e.path, full[:cut])
	e.waitFailures(t, 2)
	if e.store.Current() != good {
		t.Fatal("a partial write replaced the config")
	}
	// ...then the rest.
	writeFile(t, e.path, full)
	if c := e.nextChange(t); !c.Access().Users {
		t.Fatal("complete write not applied")
	}
	// How many failures the two broken versions cost depends on how the
	// writes fell into debounce windows; the outcome does not.
	e.wantMetric(t, "metrics_proxy_config_reloads_total", "success", 1)
	e.wantMetric(t, "metrics_proxy_config_last_reload_successful", "", 1)
}
