package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/singleflight"
)

// Bounds of the two credential caches. Entries are 32-byte digests, so both
// together stay well under a megabyte.
const (
	// knownGoodSize bounds the known-good cache. Only credentials bcrypt accepted
	// enter it, so only legitimate clients (or someone who already has a password)
	// compete for it; 1024 is far more than the number of scrapers.
	knownGoodSize = 1024
	// knownBadSize bounds the known-wrong cache. An attacker with fresh guesses
	// can churn it, which only means those guesses are checked again when back-off
	// permits; it can never touch the known-good cache.
	knownBadSize = 4096
)

// DefaultRealm is the basic-auth realm when Options.Realm is empty.
const DefaultRealm = "metrics-proxy"

// Options configure a Verifier. The zero value is usable.
type Options struct {
	// Logger receives failed-attempt warnings (rate limited). Default: no logging.
	Logger log.Logger
	// Registerer, if not nil, gets the metrics_proxy_auth_* metrics.
	Registerer prometheus.Registerer
	// Now is the clock for back-off and log rate limiting. Default: time.Now.
	Now func() time.Time
	// Workers is the number of bcrypt comparisons that may run at once; a request
	// needing one more is refused as busy. Default: runtime.GOMAXPROCS(0), since
	// more concurrent bcrypt than cores only makes each slower.
	Workers int
	// MaxClients bounds the failed-auth back-off table and, separately, the
	// table of refusal buckets. Default: DefaultMaxClients.
	MaxClients int
	// ThrottleDelay holds back each 429 to a client in back-off (or until it
	// hangs up), at most 256 at once. Zero means DefaultThrottleDelay;
	// negative answers at once.
	ThrottleDelay time.Duration
	// Realm is the basic-auth realm sent in WWW-Authenticate. Default: DefaultRealm.
	// It must be printable ASCII without '"' or '\', so that it needs no escaping.
	Realm string
}

// Verifier checks basic-auth credentials against a set of users and bearer
// tokens against a set of token sums; it is safe for concurrent use. See the
// package documentation for how it behaves under attack.
type Verifier struct {
	logger log.Logger
	now    func() time.Time
	realm  string
	key    [32]byte // HMAC key for cache digests, random per Verifier
	macs   sync.Pool
	// creds is the current users and tokens, swapped as one so that a request
	// sees both halves of the same generation.
	creds atomic.Pointer[generation]
	// setMu serialises SetUsers and SetTokens: each copies the other's half
	// into the new generation, which must not be lost to a concurrent swap.
	setMu   sync.Mutex
	slots   chan struct{} // the bcrypt pool: a token per running comparison
	good    *lru.Cache[digest, struct{}]
	bad     *lru.Cache[digest, struct{}]
	backoff *backoffTable
	// refusals rate-limits the refusals that cost no bcrypt, per client.
	refusals *refusalTable
	log      *failureLog
	hold     *holder
	metrics  *metrics
	flight   singleflight.Group // one bcrypt per client and credential at a time
	// checking holds the clients with a bcrypt comparison running: one at a
	// time per client, so a flood from one address can never occupy more
	// than one worker (nor crowd out other clients), and its extra requests
	// are throttled, which the proxy answers slowly and cheaply.
	checkingMu sync.Mutex
	checking   map[netip.Prefix]struct{}
	// compare is bcrypt.CompareHashAndPassword; tests replace it to hold the pool
	// or to count comparisons without paying for them.
	compare func(hash, password []byte) error
	// tokenEqual is subtle.ConstantTimeCompare; tests replace it to see that
	// every configured token is compared.
	tokenEqual func(x, y []byte) int
}

// generation is the users and tokens in force at one time. Neither pointer is
// nil; a userSet without users and a nil tokenSet mean none.
type generation struct {
	users  *userSet
	tokens *tokenSet
}

// userSet is one generation of users with its dummy hashes.
type userSet struct {
	users *Users
	// maxCost is the users' highest bcrypt cost. Every check costs the work of
	// one comparison at it (2^maxCost rounds), whoever the user is.
	maxCost int
	// dummies[k] is a random bcrypt hash of cost k that no password matches (its
	// digest is random bytes, not the output of bcrypt), for every k from the
	// lowest configured cost to maxCost; nil below. An unknown user is compared
	// against dummies[maxCost]; a known user of cost c < maxCost is compared
	// against its own hash and then dummies[c:maxCost], since
	// 2^c + 2^c + 2^(c+1) + ... + 2^(maxCost-1) = 2^maxCost.
	dummies [][]byte
}

// padding returns the dummy hashes compared after a real comparison at cost, so
// that the check costs as much as one at the highest cost.
func (s *userSet) padding(cost int) [][]byte {
	return s.dummies[cost:s.maxCost]
}

// digest identifies a credential in the caches without revealing it: an HMAC under
// the Verifier's random key, so it cannot be inverted by brute force without the key.
type digest [sha256.Size]byte

// NewVerifier returns a Verifier with no users and no tokens (which allows every
// request: see Authorize) until SetUsers or SetTokens is called. It fails only
// on a bad Realm or if the metrics cannot be registered.
func NewVerifier(o Options) (*Verifier, error) {
	if o.Logger == nil {
		o.Logger = log.NewNopLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.MaxClients <= 0 {
		o.MaxClients = DefaultMaxClients
	}
	if o.Realm == "" {
		o.Realm = DefaultRealm
	}
	if err := checkRealm(o.Realm); err != nil {
		return nil, err
	}
	v := &Verifier{
		logger:  o.Logger,
		now:     o.Now,
		realm:   o.Realm,
		slots:   make(chan struct{}, o.Workers),
		backoff: newBackoffTable(o.MaxClients),
		log:     newFailureLog(o.Logger),
		hold:    newHolder(o.ThrottleDelay),
		compare: bcrypt.CompareHashAndPassword,

		tokenEqual: subtle.ConstantTimeCompare,

		refusals: newRefusalTable(o.MaxClients),

		checking: make(map[netip.Prefix]struct{}),
	}
	if _, err := rand.Read(v.key[:]); err != nil {
		return nil, fmt.Errorf("generating the credential cache key: %w", err)
	}
	v.macs.New = func() any { return hmac.New(sha256.New, v.key[:]) }
	var err error
	if v.good, err = lru.New[digest, struct{}](knownGoodSize); err != nil {
		return nil, err
	}
	if v.bad, err = lru.New[digest, struct{}](knownBadSize); err != nil {
		return nil, err
	}
	v.creds.Store(&generation{users: &userSet{}})
	v.metrics = newMetrics(func() float64 { return float64(v.backoff.inBackoff(v.now())) })
	if err := v.metrics.register(o.Registerer); err != nil {
		return nil, err
	}
	return v, nil
}

// checkRealm refuses realms that would need escaping inside the quoted
// WWW-Authenticate parameter.
func checkRealm(realm string) error {
	if len(realm) > 128 {
		return errors.New("auth realm is longer than 128 characters: use a short name")
	}
	for i := 0; i < len(realm); i++ {
		if c := realm[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return fmt.Errorf("auth realm %q contains a character other than printable ASCII without '\"' and '\\': use a plain name", realm)
		}
	}
	return nil
}

// SetUsers atomically replaces the users, for example on a configuration reload;
// requests in flight finish with the old set. A nil or empty set disables basic
// auth (and, without tokens either, every request is allowed). The caches are
// not cleared, and need not be: their keys include the hash, so after a user's
// hash changes the old password never matches a cached entry, while unchanged
// users keep their fast path across reloads (a certificate rotation does not
// cost every scraper a bcrypt check).
//
// When the users' hashes have different costs, every check is padded to the
// highest one (see userSet), so that the time a wrong password takes reveals
// neither whether the name exists nor which cost its hash has.
func (v *Verifier) SetUsers(u *Users) {
	set := &userSet{users: u}
	if costs := u.Costs(); len(costs) > 0 {
		set.maxCost = costs[len(costs)-1]
		set.dummies = make([][]byte, set.maxCost+1)
		for k := costs[0]; k <= set.maxCost; k++ {
			set.dummies[k] = dummyHash(k)
		}
	}
	v.setMu.Lock()
	defer v.setMu.Unlock()
	next := *v.creds.Load()
	next.users = set
	v.creds.Store(&next)
}

// SetTokens atomically replaces the bearer tokens, name to the SHA-256 of the
// token (TokenSHA256), like SetUsers; a nil or empty map disables bearer
// tokens. The map is copied. Two names with the same sum authenticate as the
// first name in byte order.
//
// A reload that changes both users and tokens calls SetUsers and SetTokens one
// after the other, and a request between them sees the new users with the old
// tokens: set the one that gains credentials first, so that no request ever
// sees neither.
func (v *Verifier) SetTokens(t map[string][sha256.Size]byte) {
	set := newTokenSet(t)
	v.setMu.Lock()
	defer v.setMu.Unlock()
	next := *v.creds.Load()
	next.tokens = set
	v.creds.Store(&next)
}

// dummyHash returns a well-formed bcrypt hash of the given cost with a random salt
// and a random digest. Comparing a password against it costs exactly as much as
// against a real hash of that cost, and nothing matches it; making it costs nothing,
// unlike hashing a random password, which matters for reloads at high cost.
func dummyHash(cost int) []byte {
	var salt [16]byte
	var sum [23]byte
	_, _ = rand.Read(salt[:]) // crypto/rand.Read never fails since Go 1.24
	_, _ = rand.Read(sum[:])
	return fmt.Appendf(nil, "$2a$%02d$%s%s", cost, bcryptEncoding.EncodeToString(salt[:]), bcryptEncoding.EncodeToString(sum[:]))
}

// Authorize decides whether r may proceed, from its Authorization header and its
// RemoteAddr. It never blocks on other requests: bcrypt runs at most Workers at a
// time, and a request that would have to wait for a worker is answered busy.
//
// When neither users nor tokens are configured it allows the request
// (OutcomeNotRequired): the caller must then require verified client
// certificates at the TLS layer, and must never run with neither.
//
// When tokens are configured, a Bearer header with a well-formed token is
// checked by authorizeToken, without bcrypt and without the steps below; a
// malformed one is a malformed credential (step 4). When no users are
// configured, a Basic credential is refused like a malformed one, without
// bcrypt.
//
// The order of checks for everything else, and why:
//  1. A known-good credential is allowed from memory, even from an address in
//     back-off: a client with the right password is never locked out.
//  2. A request without credentials, or with a credential bcrypt already
//     rejected, is refused from memory: it costs no bcrypt and is not charged to
//     back-off, so repeating one wrong password neither burns CPU nor uses up the
//     address's next check. It spends a token of the address's refusal bucket
//     (refusalBurst, refilled one per refusalEvery): 401 while there is one, 429
//     with the seconds until the next in Retry-After once it is empty (and at
//     once, without a token, for a rejected credential while the address is in
//     back-off).
//  3. An address in back-off gets 429 with the seconds left in Retry-After.
//  4. Malformed credentials and passwords over 72 bytes are refused without
//     bcrypt; they spend a refusal token and are charged like wrong passwords.
//  5. Otherwise the request takes a bcrypt worker (or is busy) and is charged to
//     its address before bcrypt runs, so simultaneous requests cannot share one
//     window. The comparison costs the work of one at the highest configured
//     cost, whether the user exists or not and whatever its hash's cost.
//
// A right password this process has not seen yet (say, Prometheus right after a
// restart, behind the same NAT address as an attacker) is checked at the first
// request with a new credential after the address's window opens (at most 60 s).
// Against a flood that repeats its guesses it therefore gets through within one
// window, because repeats do not take the check (step 2), and the refusal
// bucket they empty is never consulted for a credential not yet checked.
// Against a flood of ever new guesses from the same address it competes for
// each window's single check: that is the price of bounding guesses per
// address, and the ways out are another source address, a client certificate,
// or a credential verified before the flood began (the known-good cache
// survives reloads).
func (v *Verifier) Authorize(r *http.Request) Result {
	now := v.now()
	v.log.flush(now)
	g := v.creds.Load()
	hasUsers, hasTokens := g.users.users.Len() > 0, g.tokens.len() > 0
	if !hasUsers && !hasTokens {
		return Result{outcome: OutcomeNotRequired}
	}
	res := v.authorize(now, r, g)
	if res.outcome == OutcomeUnauthorized {
		// Challenge for what this generation accepts, and only that.
		res.basic, res.bearer = hasUsers, hasTokens
	}
	return res
}

// authorize is Authorize once g requires a credential.
func (v *Verifier) authorize(now time.Time, r *http.Request, g *generation) Result {
	set := g.users
	values := r.Header.Values("Authorization")
	var (
		c      credentials
		reason string
		kind   = kindBasic
	)
	switch len(values) {
	case 0:
		// Not an attempt (browsers ask first without credentials), so not
		// charged to back-off; the refusal burst covers the browser's first ask.
		return v.refuseCheaply(now, r, clientKey(r.RemoteAddr), kindBasic, "", reasonNoCredentials)
	case 1:
		if g.tokens.len() > 0 && isBearer(values[0]) {
			kind = kindBearer
			var token string
			if token, reason = parseBearer(values[0]); reason == "" {
				return v.authorizeToken(now, r, g.tokens, token)
			}
		} else {
			c, reason = parseAuthorization(values[0])
			switch {
			case reason == reasonNotBasic && g.tokens.len() > 0:
				reason = reasonNotBasicOrBearer
			case reason == "" && set.users.Len() == 0:
				// Tokens only: no password can be right, and there is no
				// dummy hash to spend bcrypt on.
				reason = reasonNoUsers
			}
		}
	default:
		reason = reasonManyHeaders
	}
	u, known := set.users.lookup(c.user)
	var key digest
	if reason == "" {
		key = v.credentialDigest(c.user, u.hash, c.password)
	} else {
		key = v.rawDigest(strings.Join(values, "\n"))
	}

	if reason == "" && known {
		if _, ok := v.good.Get(key); ok {
			v.metrics.attempt(OutcomeOKCached)
			return Result{outcome: OutcomeOKCached, user: c.user}
		}
	}
	client := clientKey(r.RemoteAddr)
	if v.bad.Contains(key) {
		if wait := v.backoff.wait(client, now); wait > 0 {
			return v.deny(now, r, kind, c.user, OutcomeThrottled, "client in back-off", wait)
		}
		return v.refuseCheaply(now, r, client, kind, c.user, "repeated a rejected credential")
	}
	if wait := v.backoff.wait(client, now); wait > 0 {
		return v.deny(now, r, kind, c.user, OutcomeThrottled, "client in back-off", wait)
	}
	if reason != "" {
		if wait := v.refusals.take(client, now); wait > 0 {
			return v.deny(now, r, kind, c.user, OutcomeThrottled, reasonRefusalRate, wait)
		}
		if wait := v.backoff.charge(client, now); wait > 0 {
			return v.deny(now, r, kind, c.user, OutcomeThrottled, "client in back-off", wait)
		}
		v.bad.Add(key, struct{}{})
		return v.deny(now, r, kind, c.user, OutcomeUnauthorized, reason, 0)
	}

	// Requests from one client with one credential share a single bcrypt
	// check: a Prometheus that opens several connections at once after a
	// restart costs one comparison and is not refused as busy by its own
	// other connections.
	flightKey := client.String() + "\x00" + string(key[:])
	res, _, _ := v.flight.Do(flightKey, func() (any, error) {
		return v.check(now, client, key, c, u, known, set), nil
	})
	vd := res.(verdict)
	if vd.outcome == OutcomeOK {
		v.metrics.attempt(OutcomeOK)
		_ = level.Debug(v.logger).Log("msg", "credential verified", "client", r.RemoteAddr, "user", logSafeUser(c.user))
		return Result{outcome: OutcomeOK, user: c.user}
	}
	return v.deny(now, r, kind, c.user, vd.outcome, vd.reason, vd.wait)
}

// reasonRefusalRate is the logged reason of a refusal throttled by the refusal
// bucket.
const reasonRefusalRate = "over the per-address rate of refusals without bcrypt"

// refuseCheaply answers a refusal that costs no bcrypt: 401 while client's
// refusal bucket has a token, 429 once it is empty.
func (v *Verifier) refuseCheaply(now time.Time, r *http.Request, client netip.Prefix, kind, userName, reason string) Result {
	if wait := v.refusals.take(client, now); wait > 0 {
		return v.deny(now, r, kind, userName, OutcomeThrottled, reasonRefusalRate, wait)
	}
	return v.deny(now, r, kind, userName, OutcomeUnauthorized, reason, 0)
}

// authorizeToken checks a well-formed bearer token: one SHA-256 and a
// constant-time comparison with every configured sum, microseconds, so it
// neither runs bcrypt nor enters the credential caches (checking is cheaper
// than caching).
//
// A right token is allowed even from an address in back-off, since nobody
// guesses 256 bits, and it does not reset the back-off: an attacker sharing
// the address with a scraper would otherwise get a fresh burst of password
// guesses at every scrape. A wrong one is not charged to back-off either (it
// costs no bcrypt and guessing a token is hopeless however fast), but is
// refused like a repeated wrong password: throttled while the address is in
// back-off, else through its refusal bucket.
func (v *Verifier) authorizeToken(now time.Time, r *http.Request, tokens *tokenSet, token string) Result {
	if name, ok := tokens.match(TokenSHA256(token), v.tokenEqual); ok {
		v.metrics.attempt(OutcomeOK)
		return Result{outcome: OutcomeOK, token: name}
	}
	client := clientKey(r.RemoteAddr)
	if wait := v.backoff.wait(client, now); wait > 0 {
		return v.deny(now, r, kindBearer, "", OutcomeThrottled, "client in back-off", wait)
	}
	return v.refuseCheaply(now, r, client, kindBearer, "", reasonWrongToken)
}

// verdict is the outcome of one bcrypt-checked attempt, shared by the
// requests that waited for it.
type verdict struct {
	outcome, reason string
	wait            time.Duration
}

// check takes a bcrypt worker (or answers busy), charges the attempt to the
// client before bcrypt runs (so simultaneous requests cannot share one
// window), and runs the comparison.
func (v *Verifier) check(now time.Time, client netip.Prefix, key digest, c credentials, u user, known bool, set *userSet) verdict {
	if !v.beginCheck(client) {
		return verdict{OutcomeThrottled, "a check for this client is already running", time.Second}
	}
	defer v.endCheck(client)
	select {
	case v.slots <- struct{}{}:
	default:
		return verdict{OutcomeBusy, "all bcrypt workers busy", time.Second}
	}
	if wait := v.backoff.charge(client, now); wait > 0 {
		<-v.slots
		return verdict{OutcomeThrottled, "client in back-off", wait}
	}
	hash, cost := set.dummies[set.maxCost], set.maxCost
	if known {
		hash, cost = u.hash, u.cost
	}
	err := v.runBcrypt(hash, []byte(c.password), set.padding(cost))
	if known && err == nil {
		v.good.Add(key, struct{}{})
		v.backoff.reset(client)
		return verdict{outcome: OutcomeOK}
	}
	v.bad.Add(key, struct{}{})
	if !known {
		return verdict{OutcomeUnauthorized, "unknown user", 0}
	}
	return verdict{OutcomeUnauthorized, "wrong password", 0}
}

// beginCheck marks client as having a comparison running, unless it already has.
func (v *Verifier) beginCheck(client netip.Prefix) bool {
	v.checkingMu.Lock()
	defer v.checkingMu.Unlock()
	if _, busy := v.checking[client]; busy {
		return false
	}
	v.checking[client] = struct{}{}
	return true
}

func (v *Verifier) endCheck(client netip.Prefix) {
	v.checkingMu.Lock()
	delete(v.checking, client)
	v.checkingMu.Unlock()
}

// runBcrypt compares password with hash, then with each padding hash whatever
// the result (they never match, and skipping them on success would tell a right
// password by its speed), on the slot the caller holds, and releases the slot
// even if a comparison panics. It returns the result of the real comparison.
func (v *Verifier) runBcrypt(hash, password []byte, padding [][]byte) error {
	defer func() { <-v.slots }()
	v.metrics.bcryptChecks.Inc()
	err := v.compare(hash, password)
	for _, d := range padding {
		_ = v.compare(d, password)
	}
	return err
}

// deny counts, logs and returns a denial. kind is kindBasic or kindBearer, for
// the log. wait is rounded up to whole seconds for Retry-After (at least 1 for
// throttled and busy).
func (v *Verifier) deny(now time.Time, r *http.Request, kind, userName, outcome, reason string, wait time.Duration) Result {
	v.metrics.attempt(outcome)
	v.log.failed(now, r.RemoteAddr, kind, userName, outcome, reason)
	res := Result{outcome: outcome, realm: v.realm, hold: v.hold}
	if outcome == OutcomeThrottled || outcome == OutcomeBusy {
		res.retryAfter = max(1, int((wait+time.Second-1)/time.Second))
	}
	return res
}

// credentialDigest is the cache key of a credential: an HMAC over the user name,
// the configured hash (so a changed hash invalidates it; nil for an unknown user)
// and the password, each length-prefixed so that no two triples collide.
func (v *Verifier) credentialDigest(userName string, hash []byte, password string) digest {
	return v.mac(1, []byte(userName), hash, []byte(password))
}

// rawDigest is the cache key of a header that held no usable credential.
func (v *Verifier) rawDigest(raw string) digest {
	return v.mac(2, []byte(raw))
}

func (v *Verifier) mac(domain byte, parts ...[]byte) digest {
	m := v.macs.Get().(hash.Hash)
	defer v.macs.Put(m)
	m.Reset()
	m.Write([]byte{domain})
	var n [4]byte
	for _, p := range parts {
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		m.Write(n[:])
		m.Write(p)
	}
	var d digest
	m.Sum(d[:0])
	return d
}
