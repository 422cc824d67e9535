package admission

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeConn is a connection from a chosen address that records its close.
type fakeConn struct {
	net.Conn
	remote net.Addr
	mu     sync.Mutex
	closed bool
}

func (f *fakeConn) RemoteAddr() net.Addr { return f.remote }
func (f *fakeConn) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}
func (f *fakeConn) isClosed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func from(ip string) *fakeConn {
	return &fakeConn{remote: &net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}}
}

type fixture struct {
	t   *testing.T
	g   *Gate
	reg *prometheus.Registry
	now time.Time
}

func newFixture(t *testing.T, o Options) *fixture {
	f := &fixture{t: t, reg: prometheus.NewRegistry(), now: time.Unix(1e9, 0)}
	o.Registerer = f.reg
	o.Now = func() time.Time { return f.now }
	g, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	f.g = g
	return f
}

// dial offers a connection from ip to the Gate and reports whether it was admitted.
func (f *fixture) dial(ip string) (*Conn, *fakeConn) {
	fc := from(ip)
	ac := f.g.admit(fc)
	if (ac == nil) != fc.isClosed() {
		f.t.Fatalf("from %s: admitted=%v but closed=%v", ip, ac != nil, fc.isClosed())
	}
	return ac, fc
}

func (f *fixture) rejected(reason string) float64 {
	return testutil.ToFloat64(f.g.metrics.rejected.WithLabelValues(reason))
}

func (f *fixture) evicted(reason string) float64 {
	return testutil.ToFloat64(f.g.metrics.evicted.WithLabelValues(reason))
}

// One address cannot hold more than its share of the table: the third
// connection from it is closed at accept, while another address gets in.
func TestAttackOneSourceHoldsOnlyItsShare(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 100, MaxPerSource: 2, HandshakeRate: 1000})
	f.dial("127.0.0.1")
	f.dial("127.0.0.1")
	if ac, _ := f.dial("127.0.0.1"); ac != nil {
		t.Fatal("third connection from one source admitted; want it closed at accept")
	}
	if ac, _ := f.dial("127.0.0.2"); ac == nil {
		t.Fatal("connection from another source refused")
	}
	if got := f.rejected(ReasonSourceConnections); got != 1 {
		t.Errorf("rejected{source_connections} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.g.metrics.open); got != 3 {
		t.Errorf("open = %v, want 3", got)
	}
}

// Closing a connection gives its slot back to its source.
func TestClosedConnectionFreesItsSlot(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 100, MaxPerSource: 1, HandshakeRate: 1000})
	ac, _ := f.dial("127.0.0.1")
	ac.Close()
	ac.Close() // twice is harmless
	if ac, _ := f.dial("127.0.0.1"); ac == nil {
		t.Fatal("slot not given back after close")
	}
	if got := testutil.ToFloat64(f.g.metrics.open); got != 1 {
		t.Errorf("open = %v, want 1", got)
	}
}

// The /64s of one IPv6 /48 share four sources' worth of connections.
func TestAttackIPv6SiteWalksItsSlash64s(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 100, MaxPerSource: 2, HandshakeRate: 1000})
	admitted := 0
	for i := 0; i < 20; i++ {
		// a fresh /64 each time, all in 2001:db8:7::/48
		if ac, _ := f.dial(fmt.Sprintf("2001:db8:7:%x::1", i)); ac != nil {
			admitted++
		}
	}
	if admitted != siteFactor*2 {
		t.Errorf("%d connections admitted from one /48, want %d", admitted, siteFactor*2)
	}
	if ac, _ := f.dial("2001:db8:8::1"); ac == nil {
		t.Error("another /48 refused")
	}
}

// A source opening connections faster than its handshake rate is turned away
// after its burst, and gets in again as its bucket refills.
func TestAttackHandshakeFlood(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 100, MaxPerSource: 100, HandshakeRate: 2})
	var admitted []*Conn
	for i := 0; i < 10; i++ {
		if ac, _ := f.dial("127.0.0.1"); ac != nil {
			admitted = append(admitted, ac)
		}
	}
	if len(admitted) != 4 {
		t.Fatalf("%d of 10 admitted at once, want the burst of 4", len(admitted))
	}
	if got := f.rejected(ReasonSourceHandshakeRate); got != 6 {
		t.Errorf("rejected{source_handshake_rate} = %v, want 6", got)
	}
	if ac, _ := f.dial("127.0.0.2"); ac == nil {
		t.Error("another source refused")
	}
	f.now = f.now.Add(time.Second)
	n := 0
	for i := 0; i < 5; i++ {
		if ac, _ := f.dial("127.0.0.1"); ac != nil {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d admitted a second later, want the rate of 2", n)
	}
}

// When the table is near full, only known sources get the reserve; when it
// is full, a known source takes the slot of the oldest connection that never
// authenticated. A flood from many addresses cannot lock out a Prometheus
// that scraped before it.
func TestAttackManySourcesCannotLockOutAKnownClient(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 8, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 2})
	good, _ := f.dial("127.0.0.2")
	good.Authenticated()
	good.Close()

	var flood []*fakeConn
	for i := 1; i <= 6; i++ {
		_, fc := f.dial(fmt.Sprintf("127.0.1.%d", i))
		flood = append(flood, fc)
	}
	k1, _ := f.dial("127.0.0.2")
	k2, _ := f.dial("127.0.0.2")
	if k1 == nil || k2 == nil {
		t.Fatal("known source refused while the reserve was free")
	}
	if f.evicted(ReasonShedForKnownClient) != 0 || f.evicted(ReasonShedForNewClient) != 0 {
		t.Fatal("shed a connection while the reserve was free")
	}
	k3, _ := f.dial("127.0.0.2")
	if k3 == nil {
		t.Fatal("known source refused in a full table with unauthenticated connections in it")
	}
	if got := f.evicted(ReasonShedForKnownClient); got != 1 {
		t.Errorf("evicted{shed_for_known_client} = %v, want 1", got)
	}
	if !flood[0].isClosed() || flood[1].isClosed() {
		t.Error("the shed connection was not the oldest unauthenticated one")
	}
	if got := testutil.ToFloat64(f.g.metrics.open); got != 8 {
		t.Errorf("open = %v, want 8", got)
	}
}

// When the part of the table open to unknown sources is full of connections
// that never authenticated, a client from an address that holds none takes
// the oldest slot of the address holding the most, instead of being
// refused, and never a reserved slot; the flood's own further connections,
// from addresses that hold some, are refused and churn nothing.
func TestAttackManySourcesCannotLockOutANewClient(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 8, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 2})
	var flood []*fakeConn
	for i := 0; i < 10; i++ {
		_, fc := f.dial(fmt.Sprintf("127.0.1.%d", 1+i%2)) // two addresses, alternating
		flood = append(flood, fc)
	}
	// 6 anonymous slots (8 - reserve 2): the flood's last 4 are refused.
	if got, shed := f.rejected(ReasonFull), f.evicted(ReasonShedForNewClient); got != 4 || shed != 0 {
		t.Fatalf("rejected{full} = %v, shed = %v; want 4 and 0", got, shed)
	}
	newcomer, _ := f.dial("127.0.0.3")
	if newcomer == nil {
		t.Fatal("a new client was refused while unauthenticated connections held the table")
	}
	newcomer.Authenticated()
	if !flood[0].isClosed() || flood[1].isClosed() || flood[2].isClosed() {
		t.Error("the shed connection was not the oldest of the address holding the most")
	}
	second, _ := f.dial("127.0.0.4")
	if second == nil || !flood[1].isClosed() {
		t.Fatal("a second new client did not take the oldest slot of the (now) heaviest address")
	}
	if got := f.evicted(ReasonShedForNewClient); got != 2 {
		t.Errorf("evicted{shed_for_new_client} = %v, want 2", got)
	}
	if got := testutil.ToFloat64(f.g.metrics.open); got != 6 {
		t.Errorf("open = %v, want 6 (the reserve untouched)", got)
	}
	// Once authenticated, the newcomer is never shed, however many follow.
	for i := 5; i <= 30; i++ {
		f.dial(fmt.Sprintf("127.0.2.%d", i))
	}
	newcomer.Close()
	if got := testutil.ToFloat64(f.g.metrics.open); got != 5 {
		t.Errorf("open after the newcomer left = %v, want 5: it was never shed", got)
	}
}

// The limit of the rule: a flood holding the table with one connection per
// address leaves no address holding more than its share, so a new client is
// refused (known clients still have the reserve).
func TestOneConnectionPerAddressHoldsTheTable(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 8, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 2})
	for i := 1; i <= 6; i++ {
		f.dial(fmt.Sprintf("127.0.1.%d", i))
	}
	if ac, _ := f.dial("127.0.0.3"); ac != nil {
		t.Fatal("admitted by shedding a one-connection address")
	}
	if got := f.rejected(ReasonFull); got != 1 {
		t.Errorf("rejected{full} = %v, want 1", got)
	}
}

// Authenticated connections are never shed: with none left to shed, a known
// source is refused like any other.
func TestAuthenticatedConnectionsAreNotShed(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 2, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 1})
	a, _ := f.dial("127.0.0.2")
	a.Authenticated()
	b, _ := f.dial("127.0.0.2")
	b.Authenticated()
	if ac, _ := f.dial("127.0.0.2"); ac != nil {
		t.Fatal("admitted past the table with nothing to shed")
	}
	if got := f.rejected(ReasonFull); got != 1 {
		t.Errorf("rejected{full} = %v, want 1", got)
	}
}

// A source stops being known KnownFor after its last authenticated request:
// the reserve is no longer its.
func TestKnownSourceIsForgotten(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 2, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 1, KnownFor: time.Minute})
	k, _ := f.dial("127.0.0.2")
	k.Authenticated()
	k.Close()
	f.dial("127.0.1.1")
	f.now = f.now.Add(time.Minute)
	if ac, _ := f.dial("127.0.0.2"); ac != nil {
		t.Fatal("a source forgotten a minute ago took the reserved slot")
	}
}

func waitClosed(t *testing.T, fc *fakeConn) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !fc.isClosed() {
		if time.Now().After(deadline) {
			t.Fatal("connection not closed")
		}
		time.Sleep(time.Millisecond)
	}
}

// A connection that never carries an authenticated request (an HTTP/2
// preface, then silence) is closed at the first-request deadline; one that
// authenticated is left open.
func TestAttackSilentConnectionIsClosed(t *testing.T) {
	f := newFixture(t, Options{MaxPerSource: 8, HandshakeRate: 1000, FirstRequestTimeout: 20 * time.Millisecond})
	silent, sfc := f.dial("127.0.0.1")
	good, gfc := f.dial("127.0.0.2")
	silent.Serving()
	good.Serving()
	good.Authenticated()
	waitClosed(t, sfc)
	time.Sleep(50 * time.Millisecond)
	if gfc.isClosed() {
		t.Error("authenticated connection closed by the first-request deadline")
	}
	if got := f.evicted(ReasonNoAuthenticatedRequest); got != 1 {
		t.Errorf("evicted{no_authenticated_request} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.g.metrics.open); got != 1 {
		t.Errorf("open = %v, want 1", got)
	}
}

// A refused connection that never authenticated is closed after the grace,
// whether or not its client takes the answer (zero window); an authenticated
// one is left to the HTTP server.
func TestAttackRefusedConnectionIsClosed(t *testing.T) {
	f := newFixture(t, Options{MaxPerSource: 8, HandshakeRate: 1000, FirstRequestTimeout: time.Hour, RefusalGrace: 20 * time.Millisecond})
	anon, afc := f.dial("127.0.0.1")
	anon.Serving()
	anon.Refused()
	auth, bfc := f.dial("127.0.0.2")
	auth.Serving()
	auth.Authenticated()
	auth.Refused()
	waitClosed(t, afc)
	time.Sleep(50 * time.Millisecond)
	if bfc.isClosed() {
		t.Error("authenticated connection closed after a refusal")
	}
	if got := f.evicted(ReasonAfterRefusal); got != 1 {
		t.Errorf("evicted{after_refusal} = %v, want 1", got)
	}
}

// The hooks find the admitted connection under TLS, and do nothing for
// connections the Gate did not admit.
func TestContextHooks(t *testing.T) {
	f := newFixture(t, Options{})
	ac, _ := f.dial("127.0.0.1")
	ctx := ConnContext(context.Background(), ac)
	if FromContext(ctx) != ac {
		t.Fatal("FromContext does not return the admitted connection")
	}
	srv, cli := net.Pipe()
	defer cli.Close()
	if FromContext(ConnContext(context.Background(), srv)) != nil {
		t.Fatal("a connection the Gate did not admit was found")
	}
	var none *Conn
	none.Authenticated() // nil-safe, as outside a gated server
	none.Refused()
	ConnState(srv, http.StateNew)
}

// The metrics exist at zero from the start, with their documented names.
func TestMetricsExistAtZero(t *testing.T) {
	f := newFixture(t, Options{})
	n, err := testutil.GatherAndCount(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 {
		t.Errorf("%d series, want 3 rejected + 4 evicted + open", n)
	}
	mfs, _ := f.reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if got := strings.Join(names, ","); got != "metrics_proxy_connections_evicted_total,metrics_proxy_connections_open,metrics_proxy_connections_rejected_total" {
		t.Errorf("metric names = %s", got)
	}
}

// Accept skips rejected connections and returns admitted ones.
func TestListenerAccept(t *testing.T) {
	f := newFixture(t, Options{MaxPerSource: 1, HandshakeRate: 1000})
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := f.g.Listen(raw)
	defer l.Close()
	c1, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	got, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	c2, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	done := make(chan struct{})
	go func() { l.Accept(); close(done) }()
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection from one source was not closed")
	}
	if got := f.rejected(ReasonSourceConnections); got != 1 {
		t.Errorf("rejected{source_connections} = %v, want 1", got)
	}
	l.Close()
	<-done
}

// A known client's own new connection, still unauthenticated, is never the
// one shed for a new client: the shed ranks sources by their connections
// that never authenticated, and skips known sources.
func TestAttackNewClientNeverShedsAKnownClientsConnection(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 8, MaxPerSource: 8, HandshakeRate: 1000, Reserve: 2})
	for range 2 {
		k, _ := f.dial("127.0.0.2")
		k.Authenticated()
	}
	for i := 1; i <= 4; i++ {
		f.dial(fmt.Sprintf("127.0.1.%d", i)) // one connection per address
	}
	_, k3 := f.dial("127.0.0.2") // the known client's next, mid-handshake
	if ac, _ := f.dial("127.0.2.1"); ac != nil {
		t.Fatal("a new client was admitted by shedding")
	}
	if k3.isClosed() {
		t.Fatal("the known client's new connection was shed for a new client")
	}
	if got := f.rejected(ReasonFull); got != 1 {
		t.Errorf("rejected{full} = %v, want 1", got)
	}
}

// A neighbour in the same IPv6 /48 (a cloud provider's) cannot lock a known
// client out: emptying the site's handshake bucket or filling its share of
// slots, from other /64s, leaves the known /64 its own bucket, and at the
// site's cap it takes the slot of the site's oldest unauthenticated
// connection.
func TestAttackNeighbourInTheSiteCannotLockOutAKnownClient(t *testing.T) {
	f := newFixture(t, Options{MaxConns: 100, MaxPerSource: 2, HandshakeRate: 1})
	k, _ := f.dial("2001:db8:1:1::1")
	k.Authenticated()
	k.Close()
	for i := 2; i <= 40; i++ {
		f.dial(fmt.Sprintf("2001:db8:1:%x::1", i))
	}
	if f.rejected(ReasonSourceHandshakeRate) == 0 || f.rejected(ReasonSourceConnections) != 0 {
		t.Fatalf("the flood did not empty the site bucket: %v rate, %v slots", f.rejected(ReasonSourceHandshakeRate), f.rejected(ReasonSourceConnections))
	}
	if ac, _ := f.dial("2001:db8:1:1::1"); ac == nil {
		t.Fatal("the known /64 was refused after a neighbour emptied the /48's bucket")
	}
	// Fill the site's share (4 x 2 slots) with fresh buckets, then the known
	// client comes back once more.
	f.now = f.now.Add(time.Minute)
	for i := 50; i <= 60; i++ {
		f.dial(fmt.Sprintf("2001:db8:1:%x::1", i))
	}
	if ac, _ := f.dial("2001:db8:1:1::1"); ac == nil {
		t.Fatal("the known /64 was refused at its /48's share of slots")
	}
	if got := f.evicted(ReasonShedForKnownClient); got != 1 {
		t.Errorf("evicted{shed_for_known_client} = %v, want 1", got)
	}
}
