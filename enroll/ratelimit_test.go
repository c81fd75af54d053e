package enroll

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/netsource"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// gatedBody is a request body whose first Read reports on started, then
// waits for release: an attempt the limits let in stays in progress,
// its secret not yet read, until the test lets it go on.
type gatedBody struct {
	r       io.Reader
	started chan<- struct{}
	release <-chan struct{}
	once    sync.Once
}

func (b *gatedBody) Read(p []byte) (int, error) {
	b.once.Do(func() {
		b.started <- struct{}{}
		<-b.release
	})
	return b.r.Read(p)
}

// fakeClock is a server's clock that moves only when the test says.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// requestBody is the JSON a client posts for tok.
func requestBody(t *testing.T, tok Token) string {
	t.Helper()
	body, err := json.Marshal(Request{Name: tok.Name, Secret: base64.RawURLEncoding.EncodeToString(tok.Secret[:])})
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// attemptAs makes one attempt on srv's handler, with body, as a client
// holding cli's key at remote (host:port), and returns the status.
func attemptAs(srv *server, cli *home, remote string, body io.Reader) int {
	req := httptest.NewRequest(http.MethodPost, Path, body)
	req.RemoteAddr = remote
	req = req.WithContext(tlsbridge.ConnContext(req.Context(), remoteConn{addr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote))}))
	req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cli.id.Certificate.Leaf}}
	rec := httptest.NewRecorder()
	srv.handler.ServeHTTP(rec, req)
	return rec.Code
}

// remoteConn is a connection from addr, for tlsbridge.ConnContext to
// record in a request made without one.
type remoteConn struct {
	net.Conn
	addr net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.addr }

// inProgress starts an attempt with body that stays in progress, let in
// but not examined yet, until release is closed; its status comes on
// the channel returned. It fails the test if the attempt is not let in.
func inProgress(t *testing.T, srv *server, cli *home, remote, body string, release <-chan struct{}) <-chan int {
	t.Helper()
	started, code := make(chan struct{}), make(chan int, 1)
	go func() {
		code <- attemptAs(srv, cli, remote, &gatedBody{r: strings.NewReader(body), started: started, release: release})
	}()
	select {
	case <-started:
	case c := <-code:
		t.Fatalf("an attempt from %s answered %d at once, not let in", remote, c)
	}
	return code
}

// failUntilLimited makes attempts with body, which has a wrong secret,
// from remote(i) for the i-th, until one is rate limited, and returns
// how many were told the secret is wrong.
func failUntilLimited(t *testing.T, srv *server, cli *home, remote func(i int) string, body string) int {
	t.Helper()
	for i := 0; ; i++ {
		switch code := attemptAs(srv, cli, remote(i), strings.NewReader(body)); {
		case code == http.StatusTooManyRequests:
			return i
		case code != http.StatusNotFound: // a wrong secret is answered unknown_invitation (notOpened)
			t.Fatalf("wrong secret %d answered %d", i+1, code)
		case i == 100:
			t.Fatal("100 failures, never rate limited")
		}
	}
}

// TestRateLimitAttemptsAtOnce: attempts with a wrong secret made all at
// once, from one address or from many, are let in no more than the
// limit allows — as many as if they were made one after the other —
// and the others are answered 429 without being examined, and logged
// folded: one line in full per source refused by its own limit, one in
// all for those refused by everyone's, the rest counted. Every attempt
// let in is held inside the handler until all have been let in or
// refused, so no failure is counted before the last one passes the
// limits, whatever the scheduling.
func TestRateLimitAttemptsAtOnce(t *testing.T) {
	const attempts = 40
	for _, tc := range []struct {
		name   string
		limits Limits
		remote func(i int) string
		want   int
		lines  int // in full, of the attempts rate limited
	}{
		{"one address", Limits{PerAddressBurst: 5}, func(int) string { return "192.0.2.1:40000" }, 5, 1},
		{"everyone", Limits{GlobalBurst: 10}, func(i int) string { return fmt.Sprintf("192.0.2.%d:40000", i+1) }, 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvHome, cli := newHome(t), newHome(t)
			t0 := time.Now()
			srv := startServer(t, srvHome, serverConfig{limits: tc.limits, now: func() time.Time { return t0 }})
			srv.handler.limited.SetInterval(time.Hour) // counted until flushed
			tok := srvHome.invite(t, "laptop", srv.addr)
			tok.Secret[0] ^= 0xff
			body := requestBody(t, tok)
			started, release := make(chan struct{}), make(chan struct{})
			codes := make(chan int, attempts)
			var wg sync.WaitGroup
			for i := range attempts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					codes <- attemptAs(srv, cli, tc.remote(i), &gatedBody{r: strings.NewReader(body), started: started, release: release})
				}()
			}
			// Each attempt is either let in, and waits in its body, or
			// refused at once.
			inside, refused := 0, 0
			for inside+refused < attempts {
				select {
				case <-started:
					inside++
				case code := <-codes:
					if code != http.StatusTooManyRequests {
						t.Fatalf("an attempt answered %d before any was let go on", code)
					}
					refused++
				}
			}
			close(release)
			wg.Wait()
			close(codes)
			wrong := 0
			for code := range codes {
				if code != http.StatusNotFound {
					t.Fatalf("an attempt let in answered %d, not 404 (a wrong secret: unknown_invitation)", code)
				}
				wrong++
			}
			if inside != tc.want || wrong != tc.want {
				t.Fatalf("%d attempts at once: %d examined (%d told the secret is wrong), %d rate limited; the limit is %d",
					attempts, inside, wrong, refused, tc.want)
			}
			srv.handler.limited.Flush()
			full, counted := countRateLimited(srv.log.String())
			if full != tc.lines || full+counted != attempts-tc.want {
				t.Errorf("%d attempts rate limited: %d lines in full, %d more counted; want %d in full, every refusal accounted for:\n%s",
					attempts-tc.want, full, counted, tc.lines, srv.log)
			}
		})
	}
}

// TestRateLimitOnlyFailuresCount: an attempt that succeeds costs
// nothing, and neither does one the server fails (its invitations
// unreadable): after 4 failures of 5 allowed from an address, the right
// token enrolls, and one more failure is still allowed before the
// address is limited.
func TestRateLimitOnlyFailuresCount(t *testing.T) {
	t0 := time.Now()
	f := newFailure(t, serverConfig{now: func() time.Time { return t0 }, limits: Limits{PerAddressBurst: 5}})
	bad := f.tok
	bad.Secret[0] ^= 0xff
	for i := range 4 {
		if err := f.join(t, bad); !errors.Is(err, ErrUnknown) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	dir := InvitesDir(f.srvHome.dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	for i := range 3 { // the server's fault: not the client's failure
		var re *RefusedError
		if err := f.join(t, f.tok); !errors.As(err, &re) || re.Reason != ReasonInternal {
			t.Fatalf("attempt %d with the invitations directory open to all: %v", i+1, err)
		}
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.join(t, f.tok); err != nil {
		t.Fatalf("the right token after 4 failures: %v", err)
	}
	if _, err := newHome(t).join(t, bad); !errors.Is(err, ErrUnknown) {
		t.Fatalf("the fifth failure, after a success: %v", err)
	}
	if _, err := newHome(t).join(t, bad); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("the sixth failure: %v", err)
	}
}

// TestRateLimitLongAttempt: an attempt that lasts longer than a refill
// interval and succeeds leaves its address (or everyone) no more
// failures than the burst: the failures made while it is in progress and
// those made after it, with no time passing between them, are the burst
// and no more. (Reserved when it started and refunded when it ended, the
// attempt earned one failure twice: once by the refill while it ran, once
// by the refund.)
func TestRateLimitLongAttempt(t *testing.T) {
	for _, tc := range []struct {
		name   string
		limits Limits
		every  time.Duration
		remote func(i int) string // of the i-th failure; the long attempt's is remote(-1)
	}{
		{"one address", Limits{PerAddressBurst: 5, PerAddressEvery: 30 * time.Second}, 30 * time.Second,
			func(int) string { return "192.0.2.1:40000" }},
		{"everyone", Limits{GlobalBurst: 5, GlobalEvery: time.Second}, time.Second,
			func(i int) string { return fmt.Sprintf("192.0.2.%d:40000", i+2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srvHome, cli := newHome(t), newHome(t)
			clock := newFakeClock()
			srv := startServer(t, srvHome, serverConfig{limits: tc.limits, now: clock.now})
			tok := srvHome.invite(t, "laptop", srv.addr)
			bad := tok
			bad.Secret[0] ^= 0xff
			release := make(chan struct{})
			long := inProgress(t, srv, cli, tc.remote(-1), requestBody(t, tok), release)
			clock.advance(tc.every)
			during := failUntilLimited(t, srv, cli, tc.remote, requestBody(t, bad))
			close(release)
			if code := <-long; code != http.StatusOK {
				t.Fatalf("the long attempt, with the right secret, answered %d", code)
			}
			after := failUntilLimited(t, srv, newHome(t), func(i int) string { return tc.remote(during + i) }, requestBody(t, bad))
			if during+after != 5 || during != 4 {
				t.Fatalf("%d failures while an attempt was in progress, %d once it succeeded: %d in a row, the burst is 5 (4 while one attempt may still fail)",
					during, after, during+after)
			}
		})
	}
}

// TestRateLimitFailuresInProgress: attempts in progress count against
// the limits as if they failed, and those that fail are charged exactly
// once, when they end: 3 wrong secrets in progress and 2 more made
// meanwhile use up a burst of 5 (the sixth is refused while the 3 are
// still in progress), the bucket is empty once the 3 failed, and one
// interval later exactly one more failure is allowed.
func TestRateLimitFailuresInProgress(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	clock := newFakeClock()
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 5, PerAddressEvery: 30 * time.Second}, now: clock.now})
	tok := srvHome.invite(t, "laptop", srv.addr)
	tok.Secret[0] ^= 0xff
	bad := requestBody(t, tok)
	const remote = "192.0.2.1:40000"
	from := func(int) string { return remote }
	release := make(chan struct{})
	var codes []<-chan int
	for range 3 {
		codes = append(codes, inProgress(t, srv, cli, remote, bad, release))
	}
	if n := failUntilLimited(t, srv, cli, from, bad); n != 2 {
		t.Fatalf("%d failures let in while 3 attempts were in progress, not 2", n)
	}
	close(release)
	for _, c := range codes {
		if code := <-c; code != http.StatusNotFound {
			t.Fatalf("a wrong secret in progress answered %d", code)
		}
	}
	if n := failUntilLimited(t, srv, cli, from, bad); n != 0 {
		t.Fatalf("%d more failures let in after 5 (3 of them charged when they ended)", n)
	}
	clock.advance(30 * time.Second)
	if n := failUntilLimited(t, srv, cli, from, bad); n != 1 {
		t.Fatalf("%d failures let in one interval after the burst, not 1", n)
	}
}

// TestRateLimitSuccessesInProgress: attempts in progress are limited to
// the failures left even if they all succeed — when they are let in,
// nothing says they will — and cost nothing once they have: with 5
// right tokens in progress from one address a sixth attempt is refused,
// and once they have enrolled, 5 failures are still allowed.
func TestRateLimitSuccessesInProgress(t *testing.T) {
	srvHome := newHome(t)
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 5}, now: newFakeClock().now})
	const remote = "192.0.2.1:40000"
	release := make(chan struct{})
	var codes []<-chan int
	for i := range 5 {
		tok := srvHome.invite(t, fmt.Sprintf("laptop%d", i), srv.addr)
		codes = append(codes, inProgress(t, srv, newHome(t), remote, requestBody(t, tok), release))
	}
	tok := srvHome.invite(t, "sixth", srv.addr)
	if code := attemptAs(srv, newHome(t), remote, strings.NewReader(requestBody(t, tok))); code != http.StatusTooManyRequests {
		t.Fatalf("a sixth attempt while 5 are in progress answered %d, not 429", code)
	}
	close(release)
	for _, c := range codes {
		if code := <-c; code != http.StatusOK {
			t.Fatalf("a right token in progress answered %d", code)
		}
	}
	tok.Secret[0] ^= 0xff
	if n := failUntilLimited(t, srv, newHome(t), func(int) string { return remote }, requestBody(t, tok)); n != 5 {
		t.Fatalf("%d failures allowed after 5 enrollments, not 5", n)
	}
}

// panicStore is a ClientStore that panics: a bug in the handler's work.
type panicStore struct{}

func (panicStore) Add(*jwk.Key, string, authkeys.AddMode) (*authkeys.Entry, error) {
	panic("a bug")
}

// TestRateLimitPanic: an attempt whose handling panics is charged as a
// failure and no longer in progress: of 2 failures allowed, the panic
// takes one, and once the bucket has refilled 2 attempts are let in
// again (an attempt left in progress would hold one of them forever).
func TestRateLimitPanic(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	clock := newFakeClock()
	h, err := NewHandler(HandlerOptions{Dir: InvitesDir(srvHome.dir), Clients: panicStore{}, ServerKey: srvHome.key(),
		Limits: Limits{PerAddressBurst: 2, PerAddressEvery: time.Minute}, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{handler: h}
	tok := srvHome.invite(t, "laptop", "db.example:7443")
	const remote = "192.0.2.1:40000"
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("the handler did not panic")
			}
		}()
		attemptAs(srv, cli, remote, strings.NewReader(requestBody(t, tok)))
	}()
	tok.Secret[0] ^= 0xff
	from := func(int) string { return remote }
	if n := failUntilLimited(t, srv, cli, from, requestBody(t, tok)); n != 1 {
		t.Fatalf("%d failures allowed after a panic, of 2", n)
	}
	clock.advance(2 * time.Minute)
	if n := failUntilLimited(t, srv, cli, from, requestBody(t, tok)); n != 2 {
		t.Fatalf("%d failures allowed once the bucket refilled, of 2", n)
	}
}

// TestLimiter: admit counts an attempt in progress on its address and on
// everyone, end charges it only if it failed, the buckets refill with
// time, an idle bucket is dropped, and IPv6 addresses count per /64.
func TestLimiter(t *testing.T) {
	l := newLimiter(Limits{PerAddressBurst: 2, PerAddressEvery: 10 * time.Second, GlobalBurst: 3, GlobalEvery: time.Second})
	t0 := time.Now()
	a, b, c, d := mustAddr("192.0.2.1"), mustAddr("192.0.2.2"), mustAddr("2001:db8::1"), mustAddr("192.0.2.4")
	admit := func(addr netip.Addr, at time.Time) *attempt {
		t.Helper()
		att, wait, _ := l.admit(addr, at)
		if att == nil {
			t.Fatalf("%v refused at %v (wait %v)", addr, at.Sub(t0), wait)
		}
		return att
	}
	// refused checks that addr is refused at at, told to wait want, by
	// everyone's limit alone (global) or by its own.
	refused := func(addr netip.Addr, at time.Time, want time.Duration, global bool) {
		t.Helper()
		if att, wait, g := l.admit(addr, at); att != nil || wait != want || g != global {
			t.Fatalf("%v at %v: let in %v, wait %v, by everyone's limit alone %v; want refused, wait %v, %v", addr, at.Sub(t0), att != nil, wait, g, want, global)
		}
	}
	// An attempt that does not fail leaves nothing behind: no charge,
	// nothing in progress, no entry in the table.
	l.end(admit(d, t0), t0, false)
	if _, tracked := l.addrs[netsource.Of(d)]; tracked || l.global.tokens != 3 || l.global.inFlight != 0 {
		t.Fatalf("after a success: tracked %v, %v failures left in total, %d in progress", tracked, l.global.tokens, l.global.inFlight)
	}
	// Two in progress from a use up its two failures until one ends.
	a1, a2 := admit(a, t0), admit(a, t0)
	refused(a, t0, 10*time.Second, false)
	l.end(a2, t0, false)
	a2 = admit(a, t0)
	// Three in progress in total use up everyone's.
	b1 := admit(b, t0)
	refused(c, t0, time.Second, true)
	l.end(b1, t0, false)
	c1 := admit(c, t0)
	// Failures are charged when they end, at the time they end; the
	// buckets were full while they were in progress, and gained nothing:
	// a has no failure left, nor has everyone, each for a whole interval
	// from then.
	l.end(a1, t0.Add(time.Second), true)
	l.end(a2, t0.Add(time.Second), true)
	l.end(c1, t0.Add(time.Second), true)
	if l.global.tokens != 0 || l.global.inFlight != 0 {
		t.Fatalf("%v failures left in total, %d in progress; want none", l.global.tokens, l.global.inFlight)
	}
	refused(a, t0.Add(time.Second), 10*time.Second, false) // its own, and everyone's
	refused(b, t0.Add(time.Second), time.Second, true)
	l.end(admit(b, t0.Add(2*time.Second)), t0.Add(2*time.Second), true)
	refused(b, t0.Add(2*time.Second), time.Second, true)
	l.end(admit(a, t0.Add(11*time.Second)), t0.Add(11*time.Second), false) // one failure refilled since t0+1s
	// IPv6 addresses count per /64 (c failed once at t0+1s, refilled by
	// t0+20s, as everyone's).
	l.end(admit(mustAddr("2001:db8::2"), t0.Add(20*time.Second)), t0.Add(20*time.Second), true)
	l.end(admit(mustAddr("2001:db8::3"), t0.Add(20*time.Second)), t0.Add(20*time.Second), true)
	if att, _, _ := l.admit(c, t0.Add(20*time.Second)); att != nil {
		t.Fatal("IPv6 not limited per /64")
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// countRateLimited counts the refusals by the limits in a log: the lines
// in full, and the refusals the count lines (repeated=N) account for.
func countRateLimited(log string) (full, counted int) {
	full = strings.Count(log, "reason=rate_limited retry_after=")
	for _, m := range regexp.MustCompile(`msg="enrollment refused" remote=\S+ reason=rate_limited repeated=(\d+) in=\S+\n`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[1])
		counted += n
	}
	return full, counted
}

// TestRateLimitedLogFolded: a peer that goes on posting junk on one
// keep-alive connection of a WithEnrollment server, once its failures
// are used up, makes one line in full and then counts — not a line per
// request, which cost it nothing (found by review: one Warn line per
// request, ~250 per handshake in h2). Each request is still answered 429.
func TestRateLimitedLogFolded(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	t0 := time.Now()
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 1}, now: func() time.Time { return t0 }})
	srv.handler.limited.SetInterval(time.Hour) // counted until flushed
	hosts := cli.hosts(t)
	if _, err := hosts.Add(srv.addr, srvHome.key().PublicKey()); err != nil {
		t.Fatal(err)
	}
	tc, err := tlsbridge.NewClient(cli.id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	tr := tc.Transport()
	defer tr.CloseIdleConnections()
	var conns sync.Map
	const n = 30
	for i := range n {
		req, _ := http.NewRequest(http.MethodPost, "https://"+srv.addr+Path, strings.NewReader("junk"))
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { conns.Store(ci.Conn.LocalAddr().String(), true) },
		}))
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		want := http.StatusTooManyRequests
		if i == 0 {
			want = http.StatusBadRequest
		}
		if resp.StatusCode != want {
			t.Fatalf("request %d: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	used := 0
	conns.Range(func(any, any) bool { used++; return true })
	srv.handler.limited.Flush()
	full, counted := countRateLimited(srv.log.String())
	if used != 1 || full != 1 || counted != n-2 {
		t.Errorf("%d requests rate limited on %d connection(s): %d lines in full, %d counted; want 1 and %d:\n%s", n-1, used, full, counted, n-2, srv.log)
	}
}

// TestRateLimitIgnoresForwardedFor: behind middleware that sets
// r.RemoteAddr from X-Forwarded-For (testnet.RealIP), a client writing
// a new address there with each attempt is one address to the rate
// limits all the same — its connection's, which tlsbridge.ConnContext
// recorded: after the burst of wrong secrets it is rate limited. Before:
// each attempt counted against the address it claimed, and the client
// was never limited short of the global limit.
func TestRateLimitIgnoresForwardedFor(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	t0 := time.Now()
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 3}, now: func() time.Time { return t0 },
		wrap: func(h http.Handler) http.Handler { return testnet.RealIP("X-Forwarded-For", h) }})
	tok := srvHome.invite(t, "laptop", srv.addr)
	tok.Secret[0] ^= 0xff
	body := requestBody(t, tok)
	hosts := cli.hosts(t)
	if _, err := hosts.Add(srv.addr, srvHome.key().PublicKey()); err != nil {
		t.Fatal(err)
	}
	c, err := tlsbridge.NewClient(cli.id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	tr := c.Transport()
	defer tr.CloseIdleConnections()
	var codes []int
	for i := range 4 {
		req, err := http.NewRequest(http.MethodPost, "https://"+srv.addr+Path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("198.51.100.%d", i+1))
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
	}
	if want := []int{404, 404, 404, 429}; fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("wrong secrets, each claiming another address: %v, want %v (the burst is 3)", codes, want)
	}
	// The log names the connection's address as the one that tried, and
	// what the header claimed only beside it.
	logs := srv.log.String()
	if !strings.Contains(logs, "remote=127.0.0.1 remote_claimed=198.51.100.1") || strings.Contains(logs, "remote=198.51.100.") {
		t.Errorf("the log names the claimed address as the remote one:\n%s", logs)
	}
}

// TestCloseLogsPendingCounts: refusals by the limits counted and not
// logged yet when the server stops are logged by Close — the count line
// came only at the end of its interval (10 s), a timer that dies with the
// process, so a server stopped within it lost them.
func TestCloseLogsPendingCounts(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	t0 := time.Now()
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 1}, now: func() time.Time { return t0 }})
	srv.handler.limited.SetInterval(time.Hour) // nothing is logged by the interval's end
	tok := srvHome.invite(t, "laptop", srv.addr)
	tok.Secret[0] ^= 0xff
	body := requestBody(t, tok)
	if got := failUntilLimited(t, srv, cli, func(int) string { return "192.0.2.1:40000" }, body); got != 1 {
		t.Fatalf("%d failures before the limit of 1", got)
	}
	for range 3 {
		if code := attemptAs(srv, cli, "192.0.2.1:40000", strings.NewReader(body)); code != http.StatusTooManyRequests {
			t.Fatalf("answered %d, want 429", code)
		}
	}
	if full, counted := countRateLimited(srv.log.String()); full != 1 || counted != 0 {
		t.Fatalf("before Close: %d lines in full, %d counted; want 1 and 0:\n%s", full, counted, srv.log)
	}
	srv.handler.Close()
	if full, counted := countRateLimited(srv.log.String()); full != 1 || counted != 3 {
		t.Errorf("after Close: %d lines in full, %d counted; want 1 and 3:\n%s", full, counted, srv.log)
	}
}

// TestGlobalRateLimitLogFolded: while everyone's failures are used up,
// attempts from many sources — each /64 of one /48, which one host may
// hold — are logged as one line in full (limit=global) and one count
// (remote=all), not a line in full per source: those refusals are
// everyone's, and each cost its source nothing (found by review: a line
// per /64). A source refused by its own limit is still folded on its own.
func TestGlobalRateLimitLogFolded(t *testing.T) {
	srvHome, cli := newHome(t), newHome(t)
	t0 := time.Now()
	srv := startServer(t, srvHome, serverConfig{limits: Limits{PerAddressBurst: 2, GlobalBurst: 4}, now: func() time.Time { return t0 }})
	srv.handler.limited.SetInterval(time.Hour) // counted until Close
	tok := srvHome.invite(t, "laptop", srv.addr)
	tok.Secret[0] ^= 0xff
	body := requestBody(t, tok)
	// a and b use up their own failures, and everyone's.
	const a, b = "192.0.2.1:40000", "192.0.2.2:40000"
	for _, remote := range []string{a, b} {
		if got := failUntilLimited(t, srv, cli, func(int) string { return remote }, body); got != 2 {
			t.Fatalf("%s: %d failures before its limit of 2", remote, got)
		}
	}
	for range 2 { // a, refused by its own limit again
		if code := attemptAs(srv, cli, a, strings.NewReader(body)); code != http.StatusTooManyRequests {
			t.Fatalf("a: answered %d, want 429", code)
		}
	}
	const sources = 100 // each /64 of 2001:db8:1::/48, refused by everyone's
	for i := range sources {
		if code := attemptAs(srv, cli, fmt.Sprintf("[2001:db8:1:%x::1]:40000", i), strings.NewReader(body)); code != http.StatusTooManyRequests {
			t.Fatalf("source %d: answered %d, want 429", i, code)
		}
	}
	srv.handler.Close()
	logs := srv.log.String()
	full, counted := countRateLimited(logs)
	// a's first refusal and b's: in full; a's next two: counted; the
	// first of the /64s: in full, limit=global; the others: counted.
	if want := 1 + 1 + 2 + sources; full != 3 || full+counted != want {
		t.Errorf("%d attempts rate limited: %d lines in full, %d more counted; want 3 in full, every refusal accounted for:\n%s", want, full, counted, logs)
	}
	for _, line := range []string{
		`remote=\[2001:db8:1:0::1\]:40000 .*reason=rate_limited retry_after=1 limit=global\n`,
		`msg="enrollment refused" remote=all reason=rate_limited repeated=99 in=`,
		`msg="enrollment refused" remote=192\.0\.2\.1 reason=rate_limited repeated=2 in=`,
	} {
		if !regexp.MustCompile(line).MatchString(logs) {
			t.Errorf("no line matching %q:\n%s", line, logs)
		}
	}
	if n := strings.Count(logs, "limit=global"); n != 1 {
		t.Errorf("%d lines say limit=global, want 1:\n%s", n, logs)
	}
}
