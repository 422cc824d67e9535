package webconfig

import (
	"crypto/tls"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/alloyci/hardened-runner/internal/clocktest"
	"github.com/alloyci/hardened-runner/internal/logtest"
)

// syncBuffer captures log output from concurrent goroutines.
type syncBuffer = logtest.Buffer

// fakeClock is the injected clock: tests move time, never wait for it.
type fakeClock = clocktest.Clock

func newFakeClock() *fakeClock { return clocktest.New(time.Now().Truncate(time.Second)) }

type storeEnv struct {
	path    string
	pki     *testPKI
	store   *Store
	reg     *prometheus.Registry
	clock   *fakeClock
	logs    *syncBuffer
	changed chan *Config
}

// newStoreEnv starts a Store on testdata/fixture; opts may adjust the options.
func newStoreEnv(t *testing.T, fixtureName string, opts ...func(*StoreOptions)) *storeEnv {
	t.Helper()
	path, pki := fixture(t, fixtureName)
	e := &storeEnv{
		path: path, pki: pki,
		reg:     prometheus.NewRegistry(),
		clock:   newFakeClock(),
		logs:    &syncBuffer{},
		changed: make(chan *Config, 16),
	}
	o := StoreOptions{
		Logger:     log.NewLogfmtLogger(e.logs),
		Registerer: e.reg,
		Now:        e.clock.Now,
		OnChange:   func(c *Config) { e.changed <- c },
	}
	for _, f := range opts {
		f(&o)
	}
	s, err := NewStore(path, o)
	if err != nil {
		t.Fatal(err)
	}
	e.store = s
	return e
}

// metric returns the value of the named metric with the given label value (or
// none), and whether it is present.
func (e *storeEnv) metric(t *testing.T, name, labelValue string) (float64, bool) {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != labelValue) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

func (e *storeEnv) wantMetric(t *testing.T, name, labelValue string, want float64) {
	t.Helper()
	got, ok := e.metric(t, name, labelValue)
	if !ok || got != want {
		t.Errorf("%s{%s} = %v (present %v), want %v", name, labelValue, got, ok, want)
	}
}

func (e *storeEnv) wantReloads(t *testing.T, success, failure float64, lastOK float64) {
	t.Helper()
	e.wantMetric(t, "metrics_proxy_config_reloads_total", "success", success)
	e.wantMetric(t, "metrics_proxy_config_reloads_total", "failure", failure)
	e.wantMetric(t, "metrics_proxy_config_last_reload_successful", "", lastOK)
}

func TestNewStoreRefusesBadFile(t *testing.T) {
	path, _ := fixture(t, "key_mismatch.bad.yml")
	s, err := NewStore(path, StoreOptions{})
	if err == nil || s != nil {
		t.Fatalf("NewStore accepted a bad file")
	}
	if !strings.Contains(err.Error(), "does not match the certificate") {
		t.Errorf("error does not say what is wrong: %v", err)
	}
}

func TestStoreInitialMetrics(t *testing.T) {
	e := newStoreEnv(t, "tls_users.good.yml")
	e.wantReloads(t, 0, 0, 1)
	e.wantMetric(t, "metrics_proxy_config_last_reload_success_timestamp_seconds", "", float64(e.clock.Now().Unix()))
	e.wantMetric(t, "metrics_proxy_tls_certificate_not_after_seconds", "", float64(e.pki.serverNotAfter.Unix()))
	if problems, err := testutil.CollectAndLint(&collector{s: e.store}); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}

func TestStoreNoCertificateMetricWithoutTLS(t *testing.T) {
	e := newStoreEnv(t, "users_plain_http.good.yml")
	if _, ok := e.metric(t, "metrics_proxy_tls_certificate_not_after_seconds", ""); ok {
		t.Error("certificate expiry exported although TLS is off")
	}
	if e.store.ServerTLSConfig() != nil {
		t.Error("ServerTLSConfig must be nil when TLS is off: the caller must not wrap the listener")
	}
	if !strings.Contains(e.logs.String(), "passwords cross the network in clear text") {
		t.Errorf("initial warnings not logged: %s", e.logs)
	}
}

func TestReloadGoodToBadKeepsLastGood(t *testing.T) {
	e := newStoreEnv(t, "tls_users.good.yml")
	good := e.store.Current()
	copyFixture(t, e.path, "malformed_hash.bad.yml")

	err := e.store.Reload()
	if err == nil || !strings.Contains(err.Error(), `user "bob": password hash is not a valid bcrypt hash`) {
		t.Fatalf("Reload error = %v", err)
	}
	if e.store.Current() != good {
		t.Fatal("a bad reload replaced the current config")
	}
	e.wantReloads(t, 0, 1, 0)
	logs := e.logs.String()
	if !strings.Contains(logs, "level=error") || !strings.Contains(logs, `user \"bob\": password hash is not a valid bcrypt hash`) {
		t.Errorf("failure not logged at level error with its reason: %s", logs)
	}
	if strings.Contains(logs, "$2") {
		t.Errorf("log quotes a hash: %s", logs)
	}
	if len(e.changed) != 0 {
		t.Error("OnChange called for a failed reload")
	}
}

func TestReloadBadToGoodApplies(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	copyFixture(t, e.path, "empty.bad.yml")
	if err := e.store.Reload(); err == nil {
		t.Fatal("empty file accepted")
	}
	e.clock.Advance(time.Minute)
	copyFixture(t, e.path, "tls_users.good.yml")
	if err := e.store.Reload(); err != nil {
		t.Fatal(err)
	}
	cur := e.store.Current()
	if !cur.Access().Users {
		t.Fatal("new config not applied")
	}
	if got := <-e.changed; got != cur {
		t.Error("OnChange not called with the new config")
	}
	e.wantReloads(t, 1, 1, 1)
	e.wantMetric(t, "metrics_proxy_config_last_reload_success_timestamp_seconds", "", float64(e.clock.Now().Unix()))
}

func TestReloadRefusesTLSToggle(t *testing.T) {
	e := newStoreEnv(t, "tls_users.good.yml")
	copyFixture(t, e.path, "users_plain_http.good.yml")
	err := e.store.Reload()
	want := e.path + ": turning TLS off needs a restart of metrics-proxy; the listener was started with TLS"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if !e.store.Current().TLSEnabled() {
		t.Fatal("TLS turned off by a reload")
	}
	e.wantReloads(t, 0, 1, 0)
}

// Accept lets the caller hold every reload to its own policy: here, one that
// wants a TLS 1.3 floor.
func TestReloadAcceptPolicy(t *testing.T) {
	policy := func(c *Config) error {
		if c.TLS.MinVersion != tls.VersionTLS13 {
			return errors.New("this listener needs min_version TLS13")
		}
		return nil
	}
	e := newStoreEnv(t, "tls_users.good.yml", func(o *StoreOptions) { o.Accept = policy })
	b, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.path, []byte(strings.Replace(string(b), "min_version: TLS13", "min_version: TLS12", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Reload(); err == nil || !strings.Contains(err.Error(), "needs min_version TLS13") {
		t.Fatalf("Reload = %v, want the policy's refusal", err)
	}
	if e.store.Current().TLS.MinVersion != tls.VersionTLS13 {
		t.Fatal("a reload the policy refused was applied")
	}
	if _, err := NewStore(e.path, StoreOptions{Accept: policy}); err == nil {
		t.Fatal("NewStore ignored the policy")
	}
}

// A half-written file that still parses but has lost basic_auth_users must
// never switch authentication off, even where the listen policy (loopback)
// would allow a config without it.
func TestReloadNeverDropsAuthentication(t *testing.T) {
	e := newStoreEnv(t, "tls_users.good.yml")
	copyFixture(t, e.path, "tls.good.yml")
	err := e.store.Reload()
	want := e.path + ": removing basic_auth_users needs a restart of metrics-proxy; the running config requires a password"
	if err == nil || err.Error() != want {
		t.Fatalf("Reload = %v, want %s", err, want)
	}
	if !e.store.Current().Access().Users {
		t.Fatal("authentication removed by a reload")
	}
	e.wantReloads(t, 0, 1, 0)
}

// The content check behind Watch and the poll: no reload when nothing changed,
// one reload (and one failure log) per broken version, not one per poll.
func TestReloadIfChanged(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	e.store.reloadIfChanged()
	e.wantReloads(t, 0, 0, 1)

	copyFixture(t, e.path, "unknown_key.bad.yml")
	e.store.reloadIfChanged()
	e.store.reloadIfChanged()
	e.wantReloads(t, 0, 1, 0)

	copyFixture(t, e.path, "tls_users.good.yml")
	e.store.reloadIfChanged()
	e.wantReloads(t, 1, 1, 1)

	// A change to a file the config names, not to the config itself.
	serial := e.pki.WriteServer(t, "server", e.pki.now.Add(-time.Hour), e.pki.now.Add(48*time.Hour))
	e.store.reloadIfChanged()
	e.wantReloads(t, 2, 1, 1)
	if got := e.store.Current().TLS.Certificates; got != nil {
		t.Errorf("unexpected static Certificates %v", got)
	}
	cert, _ := e.store.Current().TLS.GetCertificate(nil)
	if cert.Leaf.SerialNumber.Int64() != serial {
		t.Errorf("serving serial %d, want the rotated %d", cert.Leaf.SerialNumber.Int64(), serial)
	}
	e.wantMetric(t, "metrics_proxy_tls_certificate_not_after_seconds", "", float64(e.pki.serverNotAfter.Unix()))
}

// A config whose file list changes (cert_file now missing, then created) is
// picked up once the new file appears.
func TestReloadIfChangedFollowsNewFiles(t *testing.T) {
	e := newStoreEnv(t, "tls.good.yml")
	writeAtomic(t, e.path, []byte("tls_server_config:\n  cert_file: new.crt\n  key_file: new.key\n"))
	e.store.reloadIfChanged()
	e.wantReloads(t, 0, 1, 0)
	e.pki.WriteServer(t, "new", e.pki.now.Add(-time.Hour), e.pki.now.Add(time.Hour))
	e.store.reloadIfChanged()
	e.wantReloads(t, 1, 1, 1)
}

// With both factors configured, a truncated write that cuts the client
// certificate lines must not drop mTLS while keeping the passwords.
func TestReloadNeverDropsOneFactor(t *testing.T) {
	e := newStoreEnv(t, "mtls.good.yml")
	b, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	withUsers := string(b) + "basic_auth_users:\n  alice: $2a$10$J0AAoS4pLbKEdU8oFofmAOvPyvUnm6ImSP9YOPfwNdXLmGLZlBfMy\n"
	if err := os.WriteFile(e.path, []byte(withUsers), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.store.Reload(); err != nil {
		t.Fatal(err)
	}
	copyFixture(t, e.path, "tls_users.good.yml") // same users, no client certificates
	err = e.store.Reload()
	want := e.path + ": removing client certificate verification (client_auth_type: RequireAndVerifyClientCert) needs a restart of metrics-proxy; the running config requires it"
	if err == nil || err.Error() != want {
		t.Fatalf("Reload = %v, want %s", err, want)
	}
	if !e.store.Current().Access().ClientCerts {
		t.Fatal("client certificate verification removed by a reload")
	}
}
