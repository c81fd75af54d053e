package live

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// conn is a tracked connection whose admission a test sets.
type conn struct {
	mu      sync.Mutex
	err     error
	expires time.Time
	decided atomic.Int32
	closed  chan error
	clock   func() time.Time // time.Now if nil
}

func newConn() *conn { return &conn{closed: make(chan error, 1)} }

func (c *conn) set(err error, expires time.Time) {
	c.mu.Lock()
	c.err, c.expires = err, expires
	c.mu.Unlock()
}

func (c *conn) live() *Conn {
	return &Conn{
		Decide: func(*Memo) (time.Time, error) {
			c.decided.Add(1)
			c.mu.Lock()
			defer c.mu.Unlock()
			now := time.Now
			if c.clock != nil {
				now = c.clock
			}
			if !c.expires.IsZero() && !now().Before(c.expires) {
				return time.Time{}, errors.New("expired")
			}
			return c.expires, c.err
		},
		Close: func(reason error) { c.closed <- reason },
	}
}

// hangBound bounds the waits for a connection to end where how soon is
// not what the test is about (an interval of 50 ms, a look at the clock
// every 20 ms, a change told): only a test that would hang fails on it.
const hangBound = 10 * time.Second

// endsWithin fails unless c is ended within d, with reason want.
func (c *conn) endsWithin(t *testing.T, d time.Duration, want string) {
	t.Helper()
	select {
	case err := <-c.closed:
		if err.Error() != want {
			t.Errorf("ended for %q, want %q", err, want)
		}
	case <-time.After(d):
		t.Fatalf("still open after %v", d)
	}
}

func (c *conn) stillOpen(t *testing.T) {
	t.Helper()
	select {
	case err := <-c.closed:
		t.Fatalf("ended: %v", err)
	default:
	}
}

// TestChangedAndExpiry: without an interval, a Tracker decides on
// Changed and at an expiry only, ends the connections no longer
// admitted, and leaves the others.
func TestChangedAndExpiry(t *testing.T) {
	tr := New(Options{})
	a, b, e := newConn(), newConn(), newConn()
	defer tr.Track(a.live())()
	defer tr.Track(b.live())()
	expires := time.Now().Add(300 * time.Millisecond)
	e.set(nil, expires)
	defer tr.Track(e.live())()

	time.Sleep(100 * time.Millisecond)
	// e's expiry decides every connection, a's too: the check holds
	// until then. A test paused past it (a loaded machine can stretch
	// the sleep) cannot tell, and says so; the expiry's sweep can only
	// have run if the time read after the count is past it.
	if n := a.decided.Load(); time.Now().Before(expires) && n != 1 {
		t.Errorf("decided %d times with no change, want once (at Track)", n)
	} else if n != 1 {
		t.Logf("the test was paused past e's expiry: a decided %d times, not checked", n)
	}
	a.set(errors.New("revoked"), time.Time{})
	tr.Changed()
	a.endsWithin(t, hangBound, "revoked")
	e.endsWithin(t, hangBound, "expired")
	b.stillOpen(t)
	if s := tr.Stats(); s.Tracked != 1 || s.Closed != 2 {
		t.Errorf("stats %+v, want 1 tracked, 2 closed", s)
	}
}

// TestInterval: with an interval, a change no one tells is seen.
func TestInterval(t *testing.T) {
	tr := New(Options{Interval: 50 * time.Millisecond})
	a := newConn()
	defer tr.Track(a.live())()
	a.set(errors.New("CRL"), time.Time{})
	a.endsWithin(t, hangBound, "CRL")
}

// TestRefusedAtTrack: a connection no longer admitted when tracked is
// ended before Track returns.
func TestRefusedAtTrack(t *testing.T) {
	tr := New(Options{})
	a := newConn()
	a.set(errors.New("gone"), time.Time{})
	tr.Track(a.live())()
	select {
	case err := <-a.closed:
		if err.Error() != "gone" {
			t.Errorf("ended for %v", err)
		}
	default:
		t.Error("not ended when Track returned")
	}
}

// TestStopAndUntrack: no timer and no decision after Stop or once the
// last connection is untracked; a Track after Stop is not kept.
func TestStopAndUntrack(t *testing.T) {
	tr := New(Options{Interval: 10 * time.Millisecond})
	a := newConn()
	untrack := tr.Track(a.live())
	time.Sleep(50 * time.Millisecond)
	untrack()
	n := a.decided.Load()
	time.Sleep(50 * time.Millisecond)
	if a.decided.Load() != n {
		t.Error("decided again after untrack")
	}
	b := newConn()
	tr.Track(b.live())
	tr.Stop()
	tr.Changed()
	b.set(errors.New("revoked"), time.Time{})
	time.Sleep(50 * time.Millisecond)
	b.stillOpen(t)
	c := newConn()
	c.set(errors.New("revoked"), time.Time{})
	tr.Track(c.live())
	if c.decided.Load() != 0 || tr.Stats().Tracked != 0 {
		t.Error("a connection tracked after Stop was decided or kept")
	}
}

// TestTrackDuringSweep: connections tracked while sweeps run keep their
// expiry (a sweep that did not see them re-arms the timer for them).
func TestTrackDuringSweep(t *testing.T) {
	tr := New(Options{})
	var slow []*conn
	for range 200 {
		c := newConn()
		slow = append(slow, c)
		defer tr.Track(c.live())()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				tr.Changed()
				runtime.Gosched()
			}
		}
	}()
	var exp []*conn
	for range 50 {
		c := newConn()
		c.set(nil, time.Now().Add(200*time.Millisecond))
		exp = append(exp, c)
		tr.Track(c.live())
	}
	close(stop)
	wg.Wait()
	for _, c := range exp {
		c.endsWithin(t, hangBound, "expired")
	}
	for _, c := range slow {
		c.stillOpen(t)
	}
}

// TestMemo: within a sweep, connections that share a key are decided
// once; each sweep decides afresh.
func TestMemo(t *testing.T) {
	tr := New(Options{})
	var calls atomic.Int32
	decide := func(m *Memo) (time.Time, error) {
		v := m.Get("same key", func() any { calls.Add(1); return 7 })
		if v.(int) != 7 {
			t.Errorf("got %v", v)
		}
		return time.Time{}, nil
	}
	for range 10 {
		defer tr.Track(&Conn{Decide: decide, Close: func(error) {}})()
	}
	if n := calls.Load(); n != 10 {
		t.Errorf("%d decisions at Track, want one each (no memo outside a sweep)", n)
	}
	tr.Sweep()
	tr.Sweep()
	if n := calls.Load(); n != 12 {
		t.Errorf("%d decisions after two sweeps of ten connections sharing a key, want 12", n)
	}
}

// TestExpiryDuringTheDecisionAtTrack: an admission that ends while Track
// decides (the store admitted the key until a moment that has passed
// when Track arms its timer — an entry expiring as its connection is
// tracked) is decided again at once and ended, not kept open for good:
// its expiry is compared with the time the decision began.
func TestExpiryDuringTheDecisionAtTrack(t *testing.T) {
	tr := New(Options{})
	c := newConn()
	lc := c.live()
	decide := lc.Decide
	var again atomic.Bool
	lc.Decide = func(m *Memo) (time.Time, error) {
		if again.Swap(true) {
			return decide(m)
		}
		c.decided.Add(1)
		expires := time.Now().Add(time.Millisecond)
		c.set(nil, expires)
		for !time.Now().After(expires) { // the decision outlasts the admission
			runtime.Gosched()
		}
		return expires, nil
	}
	defer tr.Track(lc)()
	c.endsWithin(t, hangBound, "expired")
}

// TestExpiryAfterTheWallClockSteps: an admission's end is a time of the
// wall clock (an entry's "expires"), and the timer counts monotonic time;
// armed once for the whole wait, it fired as late as the wall clock had
// stepped forward meanwhile (NTP, a suspend and resume), and the expired
// entry's connections stayed open that long past its end — new
// handshakes were refused. The timer waits at most maxWait, then looks at
// the wall clock again: here a step of two hours over an admission of
// one ends the connection at the next look, and the looks before it
// decide nothing.
func TestExpiryAfterTheWallClockSteps(t *testing.T) {
	var step atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(step.Load())) }
	tr := New(Options{})
	tr.now, tr.maxWait = clock, 20*time.Millisecond
	c := newConn()
	c.clock = clock
	c.set(nil, clock().Add(time.Hour).Round(0)) // a store's time: the wall clock's alone
	defer tr.Track(c.live())()

	time.Sleep(200 * time.Millisecond) // ten looks at the clock
	c.stillOpen(t)
	if n, s := c.decided.Load(), tr.Stats(); n != 1 || s.Sweeps != 0 {
		t.Errorf("before the expiry: decided %d times in %d sweeps, want once (at Track) and none", n, s.Sweeps)
	}
	step.Store(int64(2 * time.Hour))
	c.endsWithin(t, hangBound, "expired") // at the next look, 20 ms on; an hour without maxWait
}
