package etcd

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// After an outage the Source is back on etcd at its own pace, not gRPC's.
// Between connection attempts gRPC waits 1 s, growing 1.6 times (±20%)
// up to 120 s: in the last 9 s of an outage of 19 s it tries once or
// twice, and its next attempt is 2 s or more after the outage ends (45 s
// in, it was 25 s: measured before Source.reconnect). The outage is a
// relay that drops every connection (accepted and closed at once, a
// failed attempt as a refused one is), then forwards to etcd again; the
// view turns stale meanwhile, every key refused. The connection must be
// tried at least every reconnectEvery (1 s) to the end — counted, which
// the machine's load does not change as it would a time — and alice
// admitted again soon after etcd answers.
func TestReconnectsAtTheSourcesPace(t *testing.T) {
	if testing.Short() {
		t.Skip("a 19-second outage; run without -short")
	}
	ms := startCluster(t, 1)
	r := startRelay(t, ms[0].endpoint())
	alice := keydirtest.Key(t, 1)
	put(t, client(t, ms[0].endpoint()), Key(prefix, Authorized, "alice"), keyJSON(t, alice))
	src := open(t, Options{Client: client(t, r.url), Prefix: prefix, MaxStaleness: 2 * time.Second, Progress: 200 * time.Millisecond})
	store := authkeys.Open(t.Context(), src.AuthorizedOptions())
	defer store.Close()
	eventually(t, time.Minute, "alice not admitted", func() bool { return verdict(store, alice) == authkeys.Authorized })

	const outage = 19 * time.Second
	down := time.Now()
	r.setDropping(true)
	eventually(t, time.Minute, "alice not refused once the view is stale", func() bool { return verdict(store, alice) != authkeys.Authorized })
	time.Sleep(time.Until(down.Add(outage)))
	r.setDropping(false)
	back := time.Now()
	late := r.droppedSince(down.Add(outage - 9*time.Second))
	if late < 5 {
		t.Errorf("%d connection attempts in the last 9 s of the outage (%d in all), want one a second at least (reconnectEvery): at gRPC's pace, not the Source's", late, r.droppedSince(down))
	}
	eventually(t, time.Minute, "alice not admitted once etcd answered again", func() bool { return verdict(store, alice) == authkeys.Authorized })
	t.Logf("%d connection attempts during the outage, %d in its last 9 s; admitted again %s after etcd answered", r.droppedSince(down), late, time.Since(back))
}

// relay forwards TCP connections to an etcd member, or, while dropping,
// closes each one at once (and, when it starts dropping, those open).
type relay struct {
	url string

	mu       sync.Mutex
	dropping bool
	dropped  []time.Time // when each connection was dropped
	open     map[net.Conn]bool
}

func startRelay(t *testing.T, endpoint string) *relay {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{url: "http://" + ln.Addr().String(), open: map[net.Conn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		r.setDropping(true) // closes what is open
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if !r.track(c) {
				continue
			}
			wg.Go(func() { r.forward(c, u.Host) })
		}
	})
	return r
}

// track keeps c among the open connections, or closes it while dropping.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dropping {
		r.dropped = append(r.dropped, time.Now())
		c.Close()
		return false
	}
	r.open[c] = true
	return true
}

func (r *relay) forward(c net.Conn, addr string) {
	defer r.untrack(c)
	up, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, c); done <- struct{}{} }()
	go func() { io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (r *relay) untrack(c net.Conn) {
	c.Close()
	r.mu.Lock()
	delete(r.open, c)
	r.mu.Unlock()
}

func (r *relay) setDropping(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropping = on
	if on {
		for c := range r.open {
			c.Close()
		}
	}
}

// droppedSince is how many connections the relay dropped since t.
func (r *relay) droppedSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.dropped {
		if !at.Before(t) {
			n++
		}
	}
	return n
}
