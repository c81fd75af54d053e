package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/tlsbridge"
)

// BenchmarkLiveRevocation holds connections open through a server-mode
// proxy — perKey from each of keys client keys — revokes one key at a time
// and measures how long its connections take to end after the store has
// the change (revoke_p50_ms, revoke_p99_ms, revoke_max_ms over 10 rounds);
// then the CPU time of a reload of the store (a key revoked and unrevoked
// that no connection uses), with the connections left open, against the
// same reloads with none open, in the same run (reload_cpu_ratio).
//
//   - conns=1000: 100 keys × 10, every connection a real TCP socket
//     (client → proxy → an echo target in this process).
//   - conns=10000: 1,000 keys × 10. A process may hold 20,000 descriptors
//     on the machines this runs on, and the proxy alone holds two per
//     connection, so the clients reach the proxy over in-memory pipes
//     (net.Pipe, through Serve's listener; TLS and everything after it
//     are the same), and the echo target is a python3 process. RLIMIT_NOFILE
//     is raised to its hard limit; too low a limit skips, saying so.
//
// Run it with
//
//	go test ./proxy -run '^$' -bench LiveRevocation -benchtime 1x -timeout 30m
func BenchmarkLiveRevocation(b *testing.B) {
	b.Run("conns=1000", func(b *testing.B) { benchLiveRevocation(b, 100, 10, false) })
	b.Run("conns=10000", func(b *testing.B) { benchLiveRevocation(b, 1000, 10, true) })
}

func benchLiveRevocation(b *testing.B, keys, perKey int, pipes bool) {
	const rounds, reloads = 10, 200
	for range b.N {
		var (
			target string
			ln     net.Listener
			dial   func(ctx context.Context) (net.Conn, error)
			addr   string
		)
		if pipes {
			raiseFileLimit(b, keys*perKey+1000)
			target = pythonEchoTarget(b)
			cl := newConnListener()
			ln, dial, addr = cl, pipeDialer(cl), "127.0.0.1:1" // the pins' address: nothing listens there
		} else {
			target = longEchoTarget(b)
			ln = listen(b)
			addr = ln.Addr().String()
			dial = func(ctx context.Context) (net.Conn, error) { return (&net.Dialer{}).DialContext(ctx, "tcp", addr) }
		}
		srv, hosts := newSide(b), newSide(b) // hosts: one pin store every client shares
		hosts.pin(b, addr, srv)
		clients := make([]*tlsbridge.Client, keys)
		sides := make([]*side, keys)
		for k := range clients {
			c := newSide(b)
			sides[k] = c
			srv.authorize(b, fmt.Sprintf("client%d", k), c)
			cli, err := tlsbridge.NewClient(c.id, tlsbridge.ClientOptions{Hosts: hosts.hosts, Policy: tlsbridge.Strict})
			if err != nil {
				b.Fatal(err)
			}
			clients[k] = cli
		}
		p := serveBench(b, srv, target, ln)

		ended := make([][]chan time.Time, keys)
		var (
			mu    sync.Mutex
			conns []net.Conn
			wg    sync.WaitGroup
		)
		sem := make(chan struct{}, 16)
		for k, cli := range clients {
			ended[k] = make([]chan time.Time, perKey)
			for j := range perKey {
				ch := make(chan time.Time, 1)
				ended[k][j] = ch
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					conn, err := dialBench(cli, dial, addr)
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					conns = append(conns, conn)
					mu.Unlock()
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
		live := p.l.liveConns()
		for deadline := time.Now().Add(60 * time.Second); live.Stats().Tracked < keys*perKey; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d connections tracked, want %d", live.Stats().Tracked, keys*perKey)
			}
		}

		var lat []time.Duration
		for r := range rounds {
			if _, err := srv.auth.Revoke(sides[r].id.Key.PublicKey()); err != nil {
				b.Fatal(err)
			}
			at := time.Now() // the store has the change: Revoke reloads it
			for _, ch := range ended[r] {
				select {
				case t := <-ch:
					lat = append(lat, t.Sub(at))
				case <-time.After(10 * time.Second):
					b.Fatalf("round %d: a connection of the revoked key is still open", r)
				}
			}
		}
		slices.Sort(lat)
		b.ReportMetric(ms(lat[len(lat)/2]), "revoke_p50_ms")
		b.ReportMetric(ms(lat[(len(lat)*99)/100-1]), "revoke_p99_ms")
		b.ReportMetric(ms(lat[len(lat)-1]), "revoke_max_ms")

		open := reloadCPU(b, live, srv, reloads)
		for _, c := range conns {
			c.Close()
		}
		for deadline := time.Now().Add(60 * time.Second); live.Stats().Tracked > 0; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("%d connections still tracked", live.Stats().Tracked)
			}
		}
		none := reloadCPU(b, live, srv, reloads)
		b.ReportMetric(float64(open.Microseconds())/reloads, "reload_cpu_us_open")
		b.ReportMetric(float64(none.Microseconds())/reloads, "reload_cpu_us_none")
		b.ReportMetric(float64(open)/float64(none), "reload_cpu_ratio")
	}
}

// serveBench serves a server-mode proxy of srv in front of target on ln,
// logging nothing (10,000 connections' lines would be measured too).
func serveBench(b *testing.B, srv *side, target string, ln net.Listener) *Server {
	b.Helper()
	p, err := NewServer(ServerOptions{TLS: srv.tlsServer(b, tlsbridge.ServerOptions{}), Target: target, Store: srv.auth})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		_ = p.Serve(context.Background(), ln)
		close(done)
	}()
	b.Cleanup(func() { p.Close(); <-done })
	for deadline := time.Now().Add(5 * time.Second); p.l.liveConns() == nil; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the proxy did not start serving")
		}
	}
	return p
}

// dialBench connects through dial as cli, pinning addr's key, and checks
// that the connection echoes.
func dialBench(cli *tlsbridge.Client, dial func(context.Context) (net.Conn, error), addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	raw, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	cfg, err := cli.TLSConfig(addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "x\n"); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := io.ReadFull(conn, make([]byte, 2)); err != nil {
		conn.Close()
		return nil, fmt.Errorf("no echo: %w", err)
	}
	return conn, nil
}

// reloadCPU is the process's CPU time for n reloads of srv's store that
// change no open connection's key (an unrelated key revoked, then
// unrevoked), each followed by the sweep it causes when connections are
// open.
func reloadCPU(b *testing.B, live *tlsbridge.LiveConns, srv *side, n int) time.Duration {
	b.Helper()
	other := keydirtest.Key(b, 99)
	start := keydirtest.CPUTime(b)
	for i := range n {
		before := live.Stats().Sweeps
		var err error
		if i%2 == 0 {
			_, err = srv.auth.Revoke(other)
		} else {
			_, err = srv.auth.Unrevoke(other.Fingerprint())
		}
		if err != nil {
			b.Fatal(err)
		}
		if live.Stats().Tracked > 0 {
			for live.Stats().Sweeps == before {
				time.Sleep(50 * time.Microsecond)
			}
		}
	}
	return keydirtest.CPUTime(b) - start
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// pythonEchoScript echoes every connection until its client closes it.
const pythonEchoScript = `
import asyncio, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
async def echo(r, w):
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
    except Exception:
        pass
    w.close()
async def main():
    srv = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=4096)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()
asyncio.run(main())
`

// pythonEchoTarget starts an echo target in a python3 process (with
// descriptors of its own), and returns its address.
func pythonEchoTarget(b *testing.B) string { return pythonTarget(b, pythonEchoScript) }

// pythonTarget runs script in a python3 process until the test ends; the
// script prints the port it listens on (127.0.0.1) first.
func pythonTarget(tb testing.TB, script string) string {
	tb.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		tb.Skip("SKIPPED, NOT PASSED: python3 not installed (.ci/run installs it)")
	}
	cmd := exec.Command("python3", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	port, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("python3 target: %v", err)
	}
	return "127.0.0.1:" + strings.TrimSpace(port)
}

// pipeDialer makes in-memory connections (net.Pipe) whose other end l's
// Accept returns.
func pipeDialer(l *connListener) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		client, server := net.Pipe()
		if !l.push(ctx, server) {
			client.Close()
			server.Close()
			return nil, net.ErrClosed
		}
		return client, nil
	}
}
