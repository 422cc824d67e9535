package e2e

// Helpers of the attack suite (attack_*_test.go). Everything here is prefixed
// atk so that it cannot collide with the other e2e files. All traffic goes to
// 127.0.0.1 (sources may be other 127/8 addresses, which Linux routes over
// loopback, so that each attack case gets its own back-off bucket).

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The default credential of an attack proxy.
const (
	atkUser     = "prometheus"
	atkPassword = "atk-correct horse battery staple"
)

// atkHashed runs the real `metrics-proxy hash-password` (not slowed down by the
// race detector, unlike an in-process bcrypt) and returns the hash.
func atkHashed(t *testing.T, password string, cost int) string {
	t.Helper()
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

// atkProxyOptions shape atkStartProxy.
type atkProxyOptions struct {
	// Web returns the whole web config for the proxy's PKI; nil means TLS
	// with the PKI's server certificate and the one user atkUser/atkPassword.
	Web func(p *pki) string
	// Upstream is --upstream.url; "" means a closed port on 127.0.0.1.
	Upstream string
	// Args are extra flags.
	Args []string
}

// atkProxy is a running metrics-proxy.
type atkProxy struct {
	*proc
	PKI       *pki
	Addr      string // 127.0.0.1:PORT
	URL       string // https://127.0.0.1:PORT
	WebConfig string
	Hash      string // the hash of atkPassword when Web was ""
}

// atkTLSHeader is the tls_server_config for p.
func atkTLSHeader(p *pki) string {
	return fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n", p.CertFile, p.KeyFile)
}

// atkStartProxy starts metrics-proxy alone (no runner) on 127.0.0.1:0 and
// waits until it listens.
func atkStartProxy(t *testing.T, o atkProxyOptions) *atkProxy {
	t.Helper()
	p := &atkProxy{PKI: newPKI(t)}
	var web string
	if o.Web == nil {
		p.Hash = atkHashed(t, atkPassword, 10)
		web = atkTLSHeader(p.PKI) + fmt.Sprintf("basic_auth_users:\n  %s: '%s'\n", atkUser, p.Hash)
	} else {
		web = o.Web(p.PKI)
	}
	p.WebConfig = filepath.Join(p.PKI.Dir, "web.yml")
	writeFile(t, p.WebConfig, web)
	up := o.Upstream
	if up == "" {
		up = "http://" + atkClosedAddr(t)
	}
	args := append([]string{"--web.listen-address", "127.0.0.1:0", "--web.config.file", p.WebConfig,
		"--upstream.url", up, "--log.level", "debug"}, withoutSourceLimits(o.Args)...)
	p.proc = start(t, "metrics-proxy", args...)
	p.Addr = p.waitLog(`msg=listening address=(\S+)`)
	p.URL = "https://" + p.Addr
	if !strings.Contains(web, "tls_server_config") {
		p.URL = "http://" + p.Addr
	}
	return p
}

// atkClosedAddr returns a 127.0.0.1 address nothing listens on.
func atkClosedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// atkDialerFrom dials from the loopback source address src (e.g.
// "127.0.0.9"); "" means the kernel's choice (127.0.0.1).
func atkDialerFrom(src string) *net.Dialer {
	d := &net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// atkClient is an HTTP/1.1 client for p that trusts its CA and dials from src.
func (p *atkProxy) atkClient(src string) *http.Client {
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:     atkDialerFrom(src).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: p.PKI.Pool},
		},
	}
}

// atkH2Client is an HTTP/2-only client for p.
func (p *atkProxy) atkH2Client(src string) *http.Client {
	var protos http.Protocols
	protos.SetHTTP2(true)
	return &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:     atkDialerFrom(src).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: p.PKI.Pool},
			Protocols:       &protos,
		},
	}
}

// atkBasic is the Authorization value for user and password.
func atkBasic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// atkResult is what a client got for one request.
type atkResult struct {
	Status  int
	Proto   int // major version
	Header  http.Header
	Body    string
	ReadErr error // error reading the body (nil after a clean end)
}

// atkDo sends one request and reads the whole answer. hdr values are set as
// given; "Host" sets the request's Host. A transport error fails the test.
func atkDo(t *testing.T, c *http.Client, method, url string, hdr map[string]string) atkResult {
	t.Helper()
	r, err := atkTry(c, method, url, hdr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// atkTry is atkDo returning the transport error.
func atkTry(c *http.Client, method, url string, hdr map[string]string) (atkResult, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return atkResult{}, err
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return atkResult{}, err
	}
	defer resp.Body.Close()
	b, rerr := io.ReadAll(resp.Body)
	return atkResult{Status: resp.StatusCode, Proto: resp.ProtoMajor, Header: resp.Header, Body: string(b), ReadErr: rerr}, nil
}

// atkAuthGet fetches path from p with the default credential.
func (p *atkProxy) atkAuthGet(t *testing.T, c *http.Client, path string) atkResult {
	t.Helper()
	return atkDo(t, c, "GET", p.URL+path, map[string]string{"Authorization": atkBasic(atkUser, atkPassword)})
}

// atkTLSDial opens a TLS connection to p (HTTP/1.1 only) from src.
func (p *atkProxy) atkTLSDial(t *testing.T, src string) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(atkDialerFrom(src), "tcp", p.Addr, &tls.Config{RootCAs: p.PKI.Pool, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", p.Addr, err)
	}
	return c
}

// atkRawResponse is one response read off a raw connection.
type atkRawResponse struct {
	Status int
	Header http.Header
	Body   string
}

// atkRaw writes raw bytes over a fresh TLS connection and reads every
// response until the server closes the connection or stays silent for
// quiet. It never sends anything else.
func (p *atkProxy) atkRaw(t *testing.T, raw string, quiet time.Duration) []atkRawResponse {
	t.Helper()
	c := p.atkTLSDial(t, "")
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write: %v", err)
	}
	return atkReadResponses(t, c, quiet)
}

// atkReadResponses reads HTTP/1.1 responses from c until EOF or silence.
func atkReadResponses(t *testing.T, c net.Conn, quiet time.Duration) []atkRawResponse {
	t.Helper()
	var out []atkRawResponse
	br := bufio.NewReader(c)
	for range 16 {
		c.SetReadDeadline(time.Now().Add(quiet))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			break
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		out = append(out, atkRawResponse{Status: resp.StatusCode, Header: resp.Header, Body: string(b)})
		if err != nil {
			break
		}
	}
	return out
}

// atkRequest is what a fake upstream received.
type atkRequest struct {
	Method     string
	RequestURI string
	Host       string
	Header     http.Header
	BodyLen    int64
}

// atkUpstream is a fake runner metrics server on 127.0.0.1 that records every
// request it gets.
type atkUpstream struct {
	URL  string // http://127.0.0.1:PORT
	Addr string
	mu   sync.Mutex
	reqs []atkRequest
}

// atkStartUpstream serves h (nil: "atk_up 1\n" as text/plain) on 127.0.0.1
// and closes it, with every connection, when the test ends.
func atkStartUpstream(t *testing.T, h http.HandlerFunc) *atkUpstream {
	t.Helper()
	u := &atkUpstream{}
	if h == nil {
		h = func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			io.WriteString(w, "atk_up 1\n")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		u.mu.Lock()
		u.reqs = append(u.reqs, atkRequest{Method: r.Method, RequestURI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), BodyLen: n})
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
func (u *atkUpstream) Requests() []atkRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]atkRequest(nil), u.reqs...)
}

// URIs returns the request targets the upstream received so far.
func (u *atkUpstream) URIs() []string {
	var out []string
	for _, r := range u.Requests() {
		out = append(out, r.RequestURI)
	}
	return out
}

// atkStartRawUpstream accepts TCP connections on 127.0.0.1 and hands each to
// serve (which must return); it closes everything when the test ends.
func atkStartRawUpstream(t *testing.T, serve func(c net.Conn)) string {
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

// atkReadRequestHead reads a request's header block off a raw upstream
// connection.
func atkReadRequestHead(c net.Conn) (*http.Request, error) {
	return http.ReadRequest(bufio.NewReader(c))
}

// atkMetric returns the value of the sample whose line starts with series
// (name plus labels exactly as exposed) in a text exposition, or -1.
func atkMetric(text, series string) float64 {
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

// atkSelfMetrics fetches the proxy's own metrics with the default credential.
func (p *atkProxy) atkSelfMetrics(t *testing.T, c *http.Client) string {
	t.Helper()
	r := p.atkAuthGet(t, c, "/proxy/metrics")
	if r.Status != 200 {
		t.Fatalf("/proxy/metrics: %d %q", r.Status, r.Body)
	}
	return r.Body
}

// atkRSSKiB is VmRSS of process pid in KiB.
func atkRSSKiB(t *testing.T, pid int) int64 {
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

// atkLeakWords are what a 5xx body must never contain besides the upstream's
// address: Go error text that would tell an attacker about the inside.
var atkLeakWords = []string{"127.0.0.1", "localhost", "dial", "refused", "EOF", "timeout", "tcp", "http://", "unix"}

// atkCheckNoLeak fails when body holds an internal address, the upstream's
// port or Go error text.
func atkCheckNoLeak(t *testing.T, what, body, upstreamAddr string) {
	t.Helper()
	words := append([]string(nil), atkLeakWords...)
	if _, port, err := net.SplitHostPort(upstreamAddr); err == nil {
		words = append(words, port)
	}
	for _, w := range words {
		if strings.Contains(body, w) {
			t.Errorf("%s: body %q contains %q", what, body, w)
		}
	}
}

// atkClosedByPeer reports whether err means the server closed the
// connection (EOF or reset), as opposed to our own deadline expiring.
func atkClosedByPeer(err error) bool {
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

// atkWaitClosed reads from c until the peer closes it or limit passes, and
// returns what was read and the error that ended the read.
func atkWaitClosed(c net.Conn, limit time.Duration) (string, error) {
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
