package e2e

// The one harness of the e2e tests: it starts the binaries, makes
// credentials and a throw-away PKI, runs fake upstreams, sends requests
// (through net/http or byte for byte), scrapes in the background while a
// test attacks, reads metrics, and checks every user-facing message a test
// provokes against testdata/messages.golden.
//
// All traffic stays on loopback. Sources may be other 127/8 addresses
// (Linux routes them over lo), so that a test can give each attacker its
// own per-address state.

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// ---- The binaries -------------------------------------------------------

// binDir is where the binaries under test are.
var binDir string

var update = flag.Bool("update", false, "rewrite testdata/messages.golden with the messages this run provokes")

// TestMain finds or builds the binaries, runs the tests, and then checks or
// (with -update) rewrites goldenFile.
func TestMain(m *testing.M) {
	flag.Parse()
	binDir = os.Getenv("ALLOY_BIN_DIR")
	cleanup := func() {}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "alloy-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		for name, pkg := range map[string]string{"alloy-runner": "../cmd/runner", "metrics-proxy": "../cmd/metrics-proxy"} {
			if _, err := os.Stat(pkg); err != nil {
				continue
			}
			out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
				os.Exit(1)
			}
		}
		binDir = dir
	}
	code := m.Run()
	if err := messages.finish(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	cleanup()
	os.Exit(code)
}

// proc is a running program whose output (its log) is captured.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan struct{}
	err  error
}

// Write appends to the captured output.
func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

// start runs a binary from binDir and stops it when the test ends.
func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(filepath.Join(binDir, name), args...))
}

// startCmd starts cmd with its output captured, and when the test ends
// stops it (SIGTERM, then SIGKILL after 15 s), printing its log if the test
// failed.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{t: t, cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p, p
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(cmd.Path), p.Logs())
		}
	})
	return p
}

// Logs returns everything the process printed so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// waitLog waits (at most 20 s) until the log matches re and returns the
// last submatch group (or the whole match), failing the test if the process
// exits first.
func (p *proc) waitLog(re string) string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m := rx.FindStringSubmatch(p.Logs()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-p.done:
			p.t.Fatalf("process exited (%v) before logging %q; log:\n%s", p.err, re, p.Logs())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("no log line matching %q; log:\n%s", re, p.Logs())
		}
	}
}

// countLog counts the occurrences of s in the log.
func (p *proc) countLog(s string) int {
	return strings.Count(p.Logs(), s)
}

// waitCount waits (at most 20 s) until the log holds s at least n times.
func (p *proc) waitCount(s string, n int) {
	p.t.Helper()
	for range 1000 {
		if p.countLog(s) >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%q logged %d times, want at least %d; log:\n%s", s, p.countLog(s), n, p.Logs())
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("process still running after %v; log:\n%s", timeout, p.Logs())
	}
	if p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// run runs a binary from binDir to completion and returns its exit code and
// output (standard output and error together). The output is a user-facing
// message: it is checked against testdata/messages.golden.
func run(t *testing.T, timeout time.Duration, name string, args ...string) (int, string) {
	t.Helper()
	return runCmd(t, timeout, exec.Command(filepath.Join(binDir, name), args...))
}

// runCmd is run for a command made elsewhere (extra files, environment).
func runCmd(t *testing.T, timeout time.Duration, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := execute(t, timeout, cmd, "", &out, &out)
	checkMessage(t, cmd.Args, fmt.Sprintf("exit %d\n%s", code, out.String()))
	return code, out.String()
}

// runStdin runs metrics-proxy with args and stdin, and returns its exit
// code, standard output and standard error apart; both are checked against
// testdata/messages.golden.
func runStdin(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "metrics-proxy"), args...)
	var stdout, stderr bytes.Buffer
	code := execute(t, 20*time.Second, cmd, stdin, &stdout, &stderr)
	checkMessage(t, cmd.Args, fmt.Sprintf("exit %d\nstdout:\n%sstderr:\n%s", code, endLine(stdout.String()), endLine(stderr.String())))
	return code, stdout.String(), stderr.String()
}

// execute runs cmd with stdin to completion, failing the test if it does not
// exit within timeout, and returns its exit code.
func execute(t *testing.T, timeout time.Duration, cmd *exec.Cmd, stdin string, stdout, stderr io.Writer) int {
	t.Helper()
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not exit within %v", cmd.Args, timeout)
	}
	return cmd.ProcessState.ExitCode()
}

// writeFile writes a file readable by its owner only.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// replaceAtomically writes content next to path and renames it over path.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func replaceAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond for up to 10 s and fails the test if it never holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("%s: not reached", what)
}

// freeAddr returns a 127.0.0.1 address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rssKiB is VmRSS of process pid in KiB.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// ---- Credentials --------------------------------------------------------

// The credential every proxy accepts unless its test configures others.
const (
	defaultUser     = "prometheus"
	defaultPassword = "correct horse battery staple"
)

// hashPassword is a bcrypt hash of password at cost. Costs of 10 and more
// come from the real `metrics-proxy hash-password` (not slowed down by the
// race detector, as an in-process bcrypt would be); lower ones, which it
// refuses to make, from bcrypt here, where they are cheap.
func hashPassword(t *testing.T, password string, cost int) string {
	t.Helper()
	if cost < 10 {
		h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	cmd := exec.Command(filepath.Join(binDir, "metrics-proxy"), "hash-password", "--cost", strconv.Itoa(cost))
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hash-password: %v", err)
	}
	h := strings.TrimSpace(string(out))
	if !strings.HasPrefix(h, "$2") || len(h) != 60 {
		t.Fatalf("hash-password printed %q", h)
	}
	return h
}

var defaultHashOnce struct {
	sync.Once
	hash string
}

// defaultHash is the cost-10 hash of defaultPassword, made once.
func defaultHash(t *testing.T) string {
	t.Helper()
	defaultHashOnce.Do(func() { defaultHashOnce.hash = hashPassword(t, defaultPassword, 10) })
	if defaultHashOnce.hash == "" {
		t.Fatal("no hash of the default password")
	}
	return defaultHashOnce.hash
}

// basic is the Authorization value for user and password.
func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// authHeader is a header map carrying basic credentials.
func authHeader(user, password string) map[string]string {
	return map[string]string{"Authorization": basic(user, password)}
}

// usersBlock is a basic_auth_users section of user, hash pairs.
func usersBlock(pairs ...string) string {
	var b strings.Builder
	b.WriteString("basic_auth_users:\n")
	for i := 0; i+1 < len(pairs); i += 2 {
		fmt.Fprintf(&b, "  %s: '%s'\n", pairs[i], pairs[i+1])
	}
	return b.String()
}

// ---- PKI ----------------------------------------------------------------

// pki is a throw-away CA with a server certificate for 127.0.0.1, ::1 and
// localhost, written to a test directory. The CA is valid from three days
// ago, so that a client can check a certificate that has expired at a time
// it was valid.
type pki struct {
	Dir      string
	CAFile   string
	CertFile string
	KeyFile  string
	Pool     *x509.CertPool
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e test CA"},
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &pki{Dir: dir, CAFile: filepath.Join(dir, "ca.crt"), ca: ca, caKey: caKey, Pool: x509.NewCertPool()}
	p.Pool.AddCert(ca)
	writePEM(t, p.CAFile, "CERTIFICATE", caDER)
	p.CertFile, p.KeyFile = p.issue(t, "server", time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), x509.ExtKeyUsageServerAuth)
	return p
}

// issue signs a certificate valid from notBefore to notAfter for the loopback
// names and writes it and its key to NAME.crt and NAME.key.
func (p *pki) issue(t *testing.T, name string, notBefore, notAfter time.Time, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(p.Dir, name+".crt"), filepath.Join(p.Dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// clientCert issues a client certificate and returns it loaded.
func (p *pki) clientCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	c, k := p.issue(t, name, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour), x509.ExtKeyUsageClientAuth)
	cert, err := tls.LoadX509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readCert parses the first certificate in a PEM file.
func readCert(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// tlsFiles is a tls_server_config section serving cert and key.
func tlsFiles(cert, key string) string {
	return fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", cert, key)
}

// tlsBlock is the tls_server_config section serving k's server certificate.
func tlsBlock(k *pki) string { return tlsFiles(k.CertFile, k.KeyFile) }

// ---- The proxy and the stack --------------------------------------------

// proxyOptions shape startProxy.
type proxyOptions struct {
	// Web returns the whole web config for the proxy's PKI; nil means TLS
	// with the PKI's server certificate and the one user defaultUser.
	Web func(k *pki) string
	// Upstream is --upstream.url; "" means a closed port on 127.0.0.1.
	// Ignored with Routes.
	Upstream string
	// Routes is the routes file's content: given, the proxy runs with
	// --web.routes.file and no --upstream.url.
	Routes string
	// Args are extra flags.
	Args []string
}

// proxy is a running metrics-proxy.
type proxy struct {
	*proc
	PKI       *pki
	Addr      string // 127.0.0.1:PORT
	URL       string // https://127.0.0.1:PORT, or http:// without TLS
	WebConfig string
	// RoutesFile is the routes file, "" without one.
	RoutesFile string
	// User and Password are the credential get, selfMetrics and
	// keepScraping use: the default one unless the test sets another.
	User, Password string
}

// startProxy starts metrics-proxy on 127.0.0.1:0, logging at debug level and
// without per-source limits unless o.Args sets them, and waits until it
// listens.
func startProxy(t *testing.T, o proxyOptions) *proxy {
	t.Helper()
	p := &proxy{PKI: newPKI(t), User: defaultUser, Password: defaultPassword}
	var web string
	if o.Web == nil {
		web = tlsBlock(p.PKI) + usersBlock(defaultUser, defaultHash(t))
	} else {
		web = o.Web(p.PKI)
	}
	p.WebConfig = filepath.Join(p.PKI.Dir, "web.yml")
	writeFile(t, p.WebConfig, web)
	args := []string{"--web.listen-address", "127.0.0.1:0", "--web.config.file", p.WebConfig, "--log.level", "debug"}
	if o.Routes != "" {
		p.RoutesFile = filepath.Join(p.PKI.Dir, "routes.yml")
		writeFile(t, p.RoutesFile, o.Routes)
		args = append(args, "--web.routes.file", p.RoutesFile)
	} else {
		up := o.Upstream
		if up == "" {
			up = "http://" + freeAddr(t)
		}
		args = append(args, "--upstream.url", up)
	}
	args = append(args, withoutSourceLimits(o.Args)...)
	p.proc = start(t, "metrics-proxy", args...)
	p.Addr = p.waitLog(`msg=listening address=(\S+)`)
	p.URL = "https://" + p.Addr
	if !strings.Contains(web, "tls_server_config") {
		p.URL = "http://" + p.Addr
	}
	return p
}

// startWithUpstream starts a fake upstream serving h (nil: upBody) and a
// proxy in front of it, shaped by o.
func startWithUpstream(t *testing.T, h http.HandlerFunc, o proxyOptions) (*proxy, *upstream) {
	t.Helper()
	up := startUpstream(t, h)
	o.Upstream = up.URL
	return startProxy(t, o), up
}

// withoutSourceLimits lifts the per-source connection limits (admission)
// unless args set them: most attacks come from one address on purpose, to
// test the layer behind those limits (TLS, authentication, requests), and
// would otherwise be turned away at accept. The attack_door tests set them.
func withoutSourceLimits(args []string) []string {
	out := slices.Clone(args)
	for _, flag := range []string{"--web.handshake-rate-per-source", "--web.max-connections-per-source"} {
		if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, flag) }) {
			out = append(out, flag+"=1000000")
		}
	}
	return out
}

// stack is a runner and a proxy in front of it, both real binaries on
// loopback.
type stack struct {
	*proxy
	Runner    *proc
	RunnerURL string // http://127.0.0.1:PORT
}

// startStack starts alloy-runner on 127.0.0.1 and metrics-proxy in front of
// it (o.Upstream is ignored) and waits until both listen.
func startStack(t *testing.T, o proxyOptions) *stack {
	t.Helper()
	s := &stack{}
	var addr string
	s.Runner, addr = startRunner(t, "concurrent = 1\n", "--metrics-server", "127.0.0.1:0")
	s.RunnerURL = "http://" + addr
	o.Upstream = s.RunnerURL
	s.proxy = startProxy(t, o)
	return s
}

// dialerFrom dials from the loopback source address src (e.g.
// "127.0.0.9"); "" means the kernel's choice (127.0.0.1).
func dialerFrom(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// client is an HTTP/1.1 client for p that trusts its CA, dials from src and
// has a connection pool of its own.
func (p *proxy) client(src string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:     dialerFrom(src).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: p.PKI.Pool},
		},
	}
}

// h2Client is an HTTP/2-only client for p.
func (p *proxy) h2Client(src string) *http.Client {
	c := p.client(src)
	var protos http.Protocols
	protos.SetHTTP2(true)
	c.Transport.(*http.Transport).Protocols = &protos
	return c
}

// freshClient is an HTTP/1.1 client from src that opens a new connection
// for every request.
func (p *proxy) freshClient(src string) *http.Client {
	c := p.client(src)
	c.Transport.(*http.Transport).DisableKeepAlives = true
	return c
}

// dialTLS opens a TLS connection to p from src offering the ALPN protocols
// (default http/1.1); when h2 is offered first it must be negotiated.
func (p *proxy) dialTLS(src string, protos ...string) (*tls.Conn, error) {
	if len(protos) == 0 {
		protos = []string{"http/1.1"}
	}
	c, err := tls.DialWithDialer(dialerFrom(src), "tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: protos})
	if err != nil {
		return nil, err
	}
	if got := c.ConnectionState().NegotiatedProtocol; protos[0] == "h2" && got != "h2" {
		c.Close()
		return nil, fmt.Errorf("negotiated %q, want h2", got)
	}
	return c, nil
}

// mustTLS is dialTLS failing the test on an error.
func (p *proxy) mustTLS(t *testing.T, src string, protos ...string) *tls.Conn {
	t.Helper()
	c, err := p.dialTLS(src, protos...)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", p.Addr, err)
	}
	return c
}

// ---- Requests -----------------------------------------------------------

// result is what a client got for one request.
type result struct {
	Status  int
	Proto   int // major version
	Header  http.Header
	Body    string
	ReadErr error // error reading the body (nil after a clean end)
}

// try sends one request and reads the whole answer. hdr values are set as
// given; "Host" sets the request's Host.
func try(c *http.Client, method, url string, hdr map[string]string) (result, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return result{}, err
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return send(c, req)
}

// send sends req through c and reads the whole answer.
func send(c *http.Client, req *http.Request) (result, error) {
	resp, err := c.Do(req)
	if err != nil {
		return result{}, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return result{Status: resp.StatusCode, Proto: resp.ProtoMajor, Header: resp.Header, Body: string(b), ReadErr: rerr}, nil
}

// do is try failing the test on a transport error or a body that does not
// end cleanly (use try where that is the point).
func do(t *testing.T, c *http.Client, method, url string, hdr map[string]string) result {
	t.Helper()
	r, err := try(c, method, url, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if r.ReadErr != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, r.ReadErr)
	}
	return r
}

// httpGet is a GET through do, for callers that want the status and body.
func httpGet(t *testing.T, c *http.Client, url string, hdr map[string]string) (int, string) {
	t.Helper()
	r := do(t, c, "GET", url, hdr)
	return r.Status, r.Body
}

// get fetches path from p with p's credential.
func (p *proxy) get(t *testing.T, c *http.Client, path string) result {
	t.Helper()
	return p.getAs(t, c, path, p.User, p.Password)
}

// getAs fetches path from p as user (no Authorization when user is "").
func (p *proxy) getAs(t *testing.T, c *http.Client, path, user, password string) result {
	t.Helper()
	hdr := map[string]string{}
	if user != "" {
		hdr = authHeader(user, password)
	}
	return do(t, c, "GET", p.URL+path, hdr)
}

// rawResponse is one response read off a raw connection.
type rawResponse struct {
	Status int
	Header http.Header
	Body   string
}

// rawGet is a raw HTTP/1.1 GET of target that closes the connection after
// the answer; auth "" sends no Authorization.
func rawGet(target, auth string) string {
	s := "GET " + target + " HTTP/1.1\r\nHost: metrics.example\r\n"
	if auth != "" {
		s += "Authorization: " + auth + "\r\n"
	}
	return s + "Connection: close\r\n\r\n"
}

// raw writes raw bytes over a fresh TLS connection to p and reads every
// response until the server closes the connection or stays silent for
// quiet. It never sends anything else.
func (p *proxy) raw(t *testing.T, raw string, quiet time.Duration) []rawResponse {
	t.Helper()
	c := p.mustTLS(t, "")
	defer c.Close()
	return exchange(t, c, raw, quiet)
}

// exchange writes raw to c and reads HTTP/1.1 responses until EOF or
// silence.
func exchange(t *testing.T, c net.Conn, raw string, quiet time.Duration) []rawResponse {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	var out []rawResponse
	br := bufio.NewReader(c)
	for range 16 {
		c.SetReadDeadline(time.Now().Add(quiet))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, rawResponse{Status: resp.StatusCode, Header: resp.Header, Body: string(b)})
		if err != nil {
			break
		}
	}
	return out
}

// one fails unless exactly one response came and it is status with body.
func one(t *testing.T, what string, rs []rawResponse, status int, body string) {
	t.Helper()
	if len(rs) != 1 || rs[0].Status != status || rs[0].Body != body {
		t.Errorf("%s: got %+v, want one %d %q", what, rs, status, body)
	}
}

// h2Start sends the HTTP/2 client preface and a SETTINGS frame with
// settings over c, and returns a framer that decodes header blocks.
func h2Start(c net.Conn, settings ...http2.Setting) (*http2.Framer, error) {
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return nil, err
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return fr, fr.WriteSettings(settings...)
}

// h2Conn opens an HTTP/2 connection to p (closed when the test ends) with a
// deadline of 10 s, and sends the client preface and settings.
func (p *proxy) h2Conn(t *testing.T, settings ...http2.Setting) (*tls.Conn, *http2.Framer) {
	t.Helper()
	c := p.mustTLS(t, "", "h2")
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fr, err := h2Start(c, settings...)
	if err != nil {
		t.Fatal(err)
	}
	return c, fr
}

// closedByPeer reports whether err means the server closed the connection
// (EOF or reset), as opposed to our own deadline expiring.
func closedByPeer(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed)
}

// waitClosed reads from c until the peer closes it or limit passes, and
// returns what was read and the error that ended the read.
func waitClosed(c net.Conn, limit time.Duration) (string, error) {
	c.SetReadDeadline(time.Now().Add(limit))
	var got strings.Builder
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return got.String(), err
		}
		if got.Len() > 64<<10 {
			return got.String(), errors.New("peer keeps sending")
		}
	}
}

// ---- Fake upstreams -----------------------------------------------------

// upBody is what a fake upstream serves unless its test says otherwise.
const upBody = "# TYPE fake_up gauge\nfake_up 1\n"

// rawBody is upBody framed for a raw HTTP/1.1 response, after its other
// headers.
var rawBody = fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(upBody), upBody)

// seenRequest is what a fake upstream received.
type seenRequest struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	BodyLen    int64
}

// upstream is a fake runner metrics server on 127.0.0.1 that records every
// request it gets.
type upstream struct {
	URL  string // http://127.0.0.1:PORT
	Addr string
	mu   sync.Mutex
	reqs []seenRequest
}

// startUpstream serves h (nil: upBody as text/plain) on 127.0.0.1 and
// closes it, with every connection, when the test ends.
func startUpstream(t *testing.T, h http.HandlerFunc) *upstream {
	t.Helper()
	u := &upstream{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			io.WriteString(w, upBody)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		u.mu.Lock()
		u.reqs = append(u.reqs, seenRequest{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), BodyLen: n})
		u.mu.Unlock()
		h(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	u.Addr = l.Addr().String()
	u.URL = "http://" + u.Addr
	return u
}

// Requests returns a copy of what the upstream received so far.
func (u *upstream) Requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.reqs...)
}

// URIs returns the request targets the upstream received so far.
func (u *upstream) URIs() []string {
	var out []string
	for _, r := range u.Requests() {
		out = append(out, r.RequestURI)
	}
	return out
}

// startRawUpstream accepts TCP connections on 127.0.0.1 and hands each to
// serve (which must return); it closes everything when the test ends.
func startRawUpstream(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr().String()
}

// ---- The good client ----------------------------------------------------

// goodSrc is the good client's source where the attackers' matters: they
// use 127.0.0.1 or 127.0.1.x.
const goodSrc = "127.0.0.2"

// scrapes is what a background scraper saw.
type scrapes struct {
	n      int
	failed []string // one line per failed scrape
}

// keepScraping scrapes p's /metrics with p's credential through c in the
// background, as Prometheus would during an attack: every interval, n times
// at most or until stop is closed (nil: never). A scrape succeeds with a 200
// whose body is upBody, read to its end. The returned function waits for the
// last scrape and returns what failed.
func (p *proxy) keepScraping(c *http.Client, every time.Duration, n int, stop <-chan struct{}) func() scrapes {
	done := make(chan struct{})
	var res scrapes
	go func() {
		defer close(done)
		for i := range n {
			r, err := try(c, "GET", p.URL+"/metrics", authHeader(p.User, p.Password))
			res.n++
			switch {
			case err != nil:
				res.failed = append(res.failed, fmt.Sprintf("scrape %d: %v", i, err))
			case r.Status != 200 || r.Body != upBody || r.ReadErr != nil:
				res.failed = append(res.failed, fmt.Sprintf("scrape %d: %d %q %v", i, r.Status, r.Body, r.ReadErr))
			}
			if i == n-1 {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() scrapes { <-done; return res }
}

// check fails the test unless at least min scrapes ran and none failed.
func (s scrapes) check(t *testing.T, what string, min int) {
	t.Helper()
	if s.n < min {
		t.Errorf("%s: only %d scrapes, want at least %d", what, s.n, min)
	}
	for _, f := range s.failed {
		t.Errorf("%s: %s", what, f)
	}
}

// floodWrongPasswords sends fresh wrong passwords for defaultUser to p's
// /metrics from workers goroutines, worker w through client(w), at most max
// requests each, until stop is closed. The returned function waits for them
// and counts the answers by status ("error" for a transport error).
func (p *proxy) floodWrongPasswords(workers, max int, client func(w int) *http.Client, stop <-chan struct{}) func() map[string]int {
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		wg     sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := client(w)
			for i := range max {
				select {
				case <-stop:
					return
				default:
				}
				r, err := try(c, "GET", p.URL+"/metrics", authHeader(defaultUser, fmt.Sprintf("flood-%d-%d", w, i)))
				key := strconv.Itoa(r.Status)
				if err != nil {
					key = "error"
				}
				mu.Lock()
				counts[key]++
				mu.Unlock()
			}
		}()
	}
	return func() map[string]int { wg.Wait(); return counts }
}

// watchRSS samples p's VmRSS every interval until the returned function is
// called, which returns the peak.
func (p *proxy) watchRSS(t *testing.T, every time.Duration) func() int64 {
	stop, done := make(chan struct{}), make(chan struct{})
	var peak int64
	go func() {
		defer close(done)
		for {
			peak = max(peak, rssKiB(t, p.cmd.Process.Pid))
			select {
			case <-stop:
				return
			case <-time.After(every):
			}
		}
	}()
	return func() int64 { close(stop); <-done; return peak }
}

// ---- Metrics ------------------------------------------------------------

// scrape fetches url through c with hdr, fails the test unless the answer is
// a 200 carrying a text exposition, and returns its text and families.
func scrape(t *testing.T, c *http.Client, url string, hdr map[string]string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	r := do(t, c, "GET", url, hdr)
	if r.Status != 200 {
		t.Fatalf("%s: %d %q", url, r.Status, r.Body)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(strings.NewReader(r.Body))
	if err != nil {
		t.Fatalf("%s does not parse: %v", url, err)
	}
	return r.Body, mfs
}

// selfMetrics fetches the proxy's own metrics with p's credential.
func (p *proxy) selfMetrics(t *testing.T, c *http.Client) string {
	t.Helper()
	text, _ := scrape(t, c, p.URL+"/proxy/metrics", authHeader(p.User, p.Password))
	return text
}

// metric returns the value of the sample whose line starts with series
// (name plus labels exactly as exposed) in a text exposition, or -1.
func metric(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// expectMetrics checks every series of want in the exposition m.
func expectMetrics(t *testing.T, m string, want map[string]float64) {
	t.Helper()
	series := make([]string, 0, len(want))
	for s := range want {
		series = append(series, s)
	}
	sort.Strings(series)
	for _, s := range series {
		if got := metric(m, s); got != want[s] {
			t.Errorf("%s = %v, want %v", s, got, want[s])
		}
	}
}

// waitMetric reads p's metrics through c until series has the value want
// (up to 10 s) and returns the last exposition read.
func (p *proxy) waitMetric(t *testing.T, c *http.Client, series string, want float64) string {
	t.Helper()
	var m string
	for range 100 {
		m = p.selfMetrics(t, c)
		if metric(m, series) == want {
			return m
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s = %v after 10 s, want %v", series, metric(m, series), want)
	return m
}

// outcome is the requests_total series of outcome.
func outcome(name string) string {
	return fmt.Sprintf(`metrics_proxy_requests_total{outcome=%q}`, name)
}

// authOutcome is the auth_attempts_total series of outcome.
func authOutcome(name string) string {
	return fmt.Sprintf(`metrics_proxy_auth_attempts_total{outcome=%q}`, name)
}

// ---- Messages -----------------------------------------------------------

// problem is what a message must say, named by a stable key and kind rather
// than by its wording, as exporter-toolkit's ErrorMap names its errors: key
// is the config key or place it is about ("tls_server_config.cert_file",
// `user "alice"`, "line 3"), kind the kind of problem ("does not exist",
// "invalid YAML"). Both must stand in one clause of the message: a line, or
// a part of one between "; ". The whole wording is in
// testdata/messages.golden.
type problem struct{ key, kind string }

// in reports whether out states p. Logfmt's escaped quotes are read as
// quotes, and each item of check-config's list ("FILE: 2 problem(s):" then
// "  - PROBLEM" lines) as "FILE: PROBLEM", the way serve reports it.
func (p problem) in(out string) bool {
	out = strings.ReplaceAll(out, `\"`, `"`)
	subject := ""
	for _, line := range strings.Split(out, "\n") {
		if head, ok := strings.CutSuffix(line, " problem(s):"); ok {
			subject = head[:max(0, strings.LastIndex(head, ": "))]
			continue
		}
		if item, ok := strings.CutPrefix(line, "  - "); ok {
			line = subject + ": " + item
		}
		for _, clause := range strings.Split(line, "; ") {
			if strings.Contains(clause, p.key) && strings.Contains(clause, p.kind) {
				return true
			}
		}
	}
	return false
}

// wantProblems fails the test unless out states every problem.
func wantProblems(t *testing.T, what, out string, ps ...problem) {
	t.Helper()
	for _, p := range ps {
		if !p.in(out) {
			t.Errorf("%s: no %q problem about %q in:\n%s", what, p.kind, p.key, out)
		}
	}
}

// startupMessages checks the warnings and errors p logged before it
// listened against goldenFile, and returns them.
func (p *proc) startupMessages(t *testing.T) string {
	t.Helper()
	logs, _, _ := strings.Cut(p.Logs(), "msg=listening")
	var loud []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.HasPrefix(l, "level=warn") || strings.HasPrefix(l, "level=error") {
			loud = append(loud, l)
		}
	}
	text := strings.Join(loud, "\n") + "\n"
	checkMessage(t, p.cmd.Args, "start-up warnings:\n"+text)
	return text
}

// waitMessage waits for a log line matching re (a stable msg= field), fails
// the test unless it states every problem, checks it against goldenFile
// and returns it.
func (p *proc) waitMessage(t *testing.T, re string, ps ...problem) string {
	t.Helper()
	line := p.waitLog(`(?m)^(.*` + re + `.*)$`)
	wantProblems(t, "log", line, ps...)
	checkMessage(t, p.cmd.Args, "log:\n"+line+"\n")
	return line
}

const goldenFile = "testdata/messages.golden"

// messages holds every user-facing message this run provoked, to check each
// against goldenFile and, with -update, to rewrite it. A message is named by
// its test and its place among that test's messages ("TestX/case #2"), so
// that the file reads in the order the tests provoke them.
var messages = &messageSet{got: map[string]string{}, seq: map[*testing.T]int{}, tests: map[string]bool{}}

type messageSet struct {
	mu     sync.Mutex
	loaded bool
	golden map[string]string
	order  []string // the keys of golden, in file order
	err    error
	got    map[string]string
	seq    map[*testing.T]int // messages per test (and per run of it, with -count) so far
	tests  map[string]bool    // top-level tests that provoked one
}

// checkMessage records what the command args printed as the next message of
// t and, unless -update is given, fails the test when it is not the one in
// goldenFile.
func checkMessage(t *testing.T, args []string, text string) {
	t.Helper()
	key, body, want, ok, err := messages.add(t, args, text)
	switch {
	case *update:
	case err != nil:
		t.Errorf("%s: %v", goldenFile, err)
	case !ok:
		t.Errorf("message %q is not in %s; review it and add it with: go test ./e2e -run '^%s$' -update\n%s",
			key, goldenFile, strings.SplitN(t.Name(), "/", 2)[0], body)
	case want != body:
		t.Errorf("message %q is not the one in %s; review the change and keep it with: go test ./e2e -run '^%s$' -update\n--- %s\n%s--- this run\n%s",
			key, goldenFile, strings.SplitN(t.Name(), "/", 2)[0], goldenFile, want, body)
	}
}

// add records a message and returns its key, its body as goldenFile holds
// it, and goldenFile's version.
func (m *messageSet) add(t *testing.T, args []string, text string) (key, body, want string, ok bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.load()
	m.seq[t]++
	test := t.Name()
	key = fmt.Sprintf("%s #%d", test, m.seq[t])
	cmdline := filepath.Base(args[0])
	for _, a := range args[1:] {
		cmdline += " " + a
	}
	body = "$ " + normalise(cmdline) + "\n" + endLine(normalise(text))
	m.got[key] = body
	m.tests[strings.SplitN(test, "/", 2)[0]] = true
	want, ok = m.golden[key]
	return key, body, want, ok, m.err
}

// load reads goldenFile once: "-- KEY --" lines, each followed by its
// message.
func (m *messageSet) load() {
	if m.loaded {
		return
	}
	m.loaded = true
	m.golden = map[string]string{}
	b, err := os.ReadFile(goldenFile)
	if err != nil {
		if !os.IsNotExist(err) || !*update {
			m.err = err
		}
		return
	}
	key := ""
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if k, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "-- "); ok && strings.HasSuffix(k, " --") {
			key = strings.TrimSuffix(k, " --")
			m.order = append(m.order, key)
			continue
		}
		if key != "" {
			m.golden[key] += line
		}
	}
}

// finish runs after the tests. With -update it rewrites goldenFile: the
// messages of every test that provoked one in this run replace that test's
// old ones; on a run of all tests, the messages of tests that provoked none
// are dropped. Without it, it only reports messages a run of all tests did
// not provoke.
func (m *messageSet) finish() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.load()
	all := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == ""
	top := func(key string) string { return strings.SplitN(strings.SplitN(key, " #", 2)[0], "/", 2)[0] }
	var stale []string
	for _, k := range m.order {
		if _, ok := m.got[k]; !ok && (all || m.tests[top(k)]) {
			stale = append(stale, k)
		}
	}
	if !*update {
		if len(stale) > 0 && all {
			fmt.Fprintf(os.Stderr, "note: %s holds %d message(s) no test provoked in this run (a skipped test, or stale: go test ./e2e -update drops them): %q\n",
				goldenFile, len(stale), stale)
		}
		return nil
	}
	keep := map[string]string{}
	for _, k := range m.order {
		if !m.tests[top(k)] && !(all && slices.Contains(stale, k)) {
			keep[k] = m.golden[k]
		}
	}
	for k, v := range m.got {
		keep[k] = v
	}
	keys := make([]string, 0, len(keep))
	for k := range keep {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keyLess(keys[i], keys[j]) })
	var b strings.Builder
	b.WriteString(goldenHeader)
	for _, k := range keys {
		fmt.Fprintf(&b, "-- %s --\n%s", k, keep[k])
	}
	if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
		return err
	}
	return os.WriteFile(goldenFile, []byte(b.String()), 0o644)
}

const goldenHeader = `Every user-facing message the e2e tests provoke: start refusals, check-config
output, hash-password output and runner refusals, for review. Each is named by
its test and its place among that test's messages, and shows the command, its
exit code and its output. Temporary directories, ports of 10000 and above,
times, bcrypt hashes, build details and the ts= and caller= fields of log
lines are normalised. Rewrite it with: go test ./e2e -update (or -run for a
few tests), then review the diff.

`

// keyLess orders keys by test name, then by their number.
func keyLess(a, b string) bool {
	ta, na, _ := strings.Cut(a, " #")
	tb, nb, _ := strings.Cut(b, " #")
	if ta != tb {
		return ta < tb
	}
	ia, _ := strconv.Atoi(na)
	ib, _ := strconv.Atoi(nb)
	return ia < ib
}

// endLine ends s with a newline, marking it when it did not have one.
func endLine(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n\\ no newline at end\n"
}

var (
	rxTempDir  = regexp.MustCompile(regexp.QuoteMeta(os.TempDir()) + `/[^/\s"\\]+/(\d{3})`)
	rxHostPort = regexp.MustCompile(`((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:.]*\]|localhost):(\d+)`)
	rxMessage  = []struct {
		re   *regexp.Regexp
		with string
	}{
		{regexp.MustCompile(` (ts|caller)=\S+`), ""},
		{regexp.MustCompile(`version="\(version=[^"]*\)"`), `version="$$VERSION"`},
		{regexp.MustCompile(`build_context="\([^"]*\)"`), `build_context="$$BUILD"`},
		{regexp.MustCompile(`\$2[aby]?\$\d\d\$[./A-Za-z0-9]{53}`), "$$HASH"},
		{regexp.MustCompile(`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?( ?(Z|[+-]\d\d:?\d\d))?( UTC)?`), "$$TIME"},
	}
)

// normalise replaces what changes from run to run in a message: the
// binaries' and temporary directories, the host name, ports of 10000 and above (loopback
// ports the kernel picked; the documented ones are lower), times, hashes,
// build details, and the ts= and caller= fields of log lines.
func normalise(s string) string {
	s = strings.ReplaceAll(s, binDir, "$BIN")
	if host, err := os.Hostname(); err == nil && host != "" {
		// register's default description is the host name.
		s = strings.ReplaceAll(s, `"`+host+`"`, `"$HOST"`)
	}
	s = rxTempDir.ReplaceAllString(s, "$$TMP/$1")
	for _, r := range rxMessage {
		s = r.re.ReplaceAllString(s, r.with)
	}
	return rxHostPort.ReplaceAllStringFunc(s, func(hp string) string {
		i := strings.LastIndex(hp, ":")
		if n, _ := strconv.Atoi(hp[i+1:]); n >= 10000 {
			return hp[:i] + ":$PORT"
		}
		return hp
	})
}
