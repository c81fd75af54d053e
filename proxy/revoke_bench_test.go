package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
)

// BenchmarkLiveRevocation holds 1,000 connections open through a
// server-mode proxy, ten from each of 100 keys, revokes one key at a time
// and measures how long its ten connections take to end after the store
// has the change (revoke_p50_ms, revoke_p99_ms over 10 rounds); then the
// CPU time of a reload of the store (a key revoked and unrevoked that no
// connection uses) with the 900 connections left open, against the same
// reloads with none open, in the same run (reload_cpu_ratio). Run it with
//
//	go test ./proxy -run '^$' -bench LiveRevocation -benchtime 1x
func BenchmarkLiveRevocation(b *testing.B) {
	const keys, perKey, rounds, reloads = 100, 10, 10, 200
	for i := 0; i < b.N; i++ {
		srv := newSide(b)
		clients := make([]*side, keys)
		for k := range clients {
			clients[k] = newSide(b)
			srv.authorize(b, fmt.Sprintf("client%d", k), clients[k])
		}
		p, addr, _, _ := startServer(b, srv, longEchoTarget(b), ServerOptions{Store: srv.auth})
		ended := make([][]chan time.Time, keys)
		var conns []*tls.Conn
		var mu sync.Mutex
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for k, c := range clients {
			c.pin(b, addr, srv)
			cli := c.tlsClient(b)
			ended[k] = make([]chan time.Time, perKey)
			for j := range perKey {
				ch := make(chan time.Time, 1)
				ended[k][j] = ch
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					conn, err := cli.DialContext(ctx, "tcp", addr)
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
					buf := make([]byte, 2)
					if _, err := io.WriteString(conn, "x\n"); err != nil {
						b.Error(err)
					}
					if _, err := io.ReadFull(conn, buf); err != nil {
						b.Error(err)
					}
					go func() {
						_, _ = io.Copy(io.Discard, conn)
						ch <- time.Now()
					}()
				}()
			}
		}
		wg.Wait()
		if b.Failed() {
			return
		}
		b.Cleanup(func() {
			for _, c := range conns {
				c.Close()
			}
		})
		for deadline := time.Now().Add(10 * time.Second); p.l.liveConns().Stats().Tracked < keys*perKey; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d connections tracked, want %d", p.l.liveConns().Stats().Tracked, keys*perKey)
			}
		}

		var lat []time.Duration
		for r := range rounds {
			if _, err := srv.auth.Revoke(clients[r].id.Key.PublicKey()); err != nil {
				b.Fatal(err)
			}
			at := time.Now() // the store has the change: Revoke reloads it
			for _, ch := range ended[r] {
				select {
				case t := <-ch:
					lat = append(lat, t.Sub(at))
				case <-time.After(5 * time.Second):
					b.Fatalf("round %d: a connection of the revoked key is still open", r)
				}
			}
		}
		slices.Sort(lat)
		b.ReportMetric(ms(lat[len(lat)/2]), "revoke_p50_ms")
		b.ReportMetric(ms(lat[(len(lat)*99)/100-1]), "revoke_p99_ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "revoke_max_ms")

		open := reloadCPU(b, p, srv, reloads)
		for _, c := range conns {
			c.Close()
		}
		for deadline := time.Now().Add(10 * time.Second); p.l.liveConns().Stats().Tracked > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d connections still tracked", p.l.liveConns().Stats().Tracked)
			}
		}
		none := reloadCPU(b, p, srv, reloads)
		b.ReportMetric(float64(open.Microseconds())/reloads, "reload_cpu_us_open")
		b.ReportMetric(float64(none.Microseconds())/reloads, "reload_cpu_us_none")
		b.ReportMetric(float64(open)/float64(none), "reload_cpu_ratio")
	}
}

// reloadCPU is the process's CPU time for n reloads of srv's store that
// change no open connection's key (an unrelated key revoked, then
// unrevoked), each followed by the sweep it causes when connections are
// open.
func reloadCPU(b *testing.B, p *Server, srv *side, n int) time.Duration {
	b.Helper()
	other := keydirtest.Key(b, 99)
	start := cpuTime(b)
	for i := range n {
		before := p.l.liveConns().Stats().Sweeps
		var err error
		if i%2 == 0 {
			_, err = srv.auth.Revoke(other)
		} else {
			_, err = srv.auth.Unrevoke(other.Fingerprint())
		}
		if err != nil {
			b.Fatal(err)
		}
		if p.l.liveConns().Stats().Tracked > 0 {
			for p.l.liveConns().Stats().Sweeps == before {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	return cpuTime(b) - start
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
