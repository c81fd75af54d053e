package proxy

import (
	"io"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/tlsbridge"
)

// TestEnrollHTTP2OneStreamPerConnection: under --http --enroll, a peer
// whose key no one authorized may speak HTTP/2 to the enrollment
// handler, but with one stream open at a time. Such a peer that
// advertises a flow-control window of 0 and opens 250 streams, each
// handler blocked writing its 403 until the write timeout (15 s), held
// about 254 goroutines and 3 MB a connection, where the startup limits
// (MaxStartupsPerSource, DefaultMaxStartups) count a connection as one.
// Found by review (2026-12-05).
func TestEnrollHTTP2OneStreamPerConnection(t *testing.T) {
	srv, mallory := newSide(t), newSide(t)
	h, err := enroll.NewHandler(enroll.HandlerOptions{Dir: filepath.Join(t.TempDir(), "invites.d"), Clients: srv.auth, ServerKey: srv.id.Key})
	if err != nil {
		t.Fatal(err)
	}
	_, addr, _, _ := startServer(t, srv, echoTarget(t), ServerOptions{
		TLS: srv.tlsServer(t, tlsbridge.ServerOptions{AllowUnknown: true}), Enroll: h, HTTP: true,
	})
	mallory.pin(t, addr, srv)

	block := h2Literals([][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "/anything"}, {":authority", "x"}})
	settle := func() int {
		runtime.GC()
		time.Sleep(300 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	const conns, streams = 8, 250
	before := settle()
	for i := range conns {
		conn, settings, rest := h2Open(t, mallory, addr)
		if i == 0 {
			if got := settings[h2SettingMaxConcurrentStreams]; got != 1 {
				t.Errorf("enrollment's SETTINGS_MAX_CONCURRENT_STREAMS %d, want 1: %v", got, settings)
			}
		}
		go func() { _, _ = io.Copy(io.Discard, rest) }() // read, never acknowledge
		// SETTINGS_INITIAL_WINDOW_SIZE (4) = 0: no DATA may come back.
		out := h2Frame(4, 0, 0, []byte{0, 4, 0, 0, 0, 0})
		for i := range streams {
			out = append(out, h2Frame(1, 5, uint32(2*i+1), block)...) // HEADERS, END_STREAM|END_HEADERS
		}
		if _, err := conn.Write(out); err != nil {
			t.Fatal(err)
		}
	}
	per := float64(settle()-before) / conns
	if per > 20 {
		t.Errorf("one enrollment-only HTTP/2 connection holds %.0f goroutines, want a handful", per)
	}
}
