package proxy

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/tlsbridge"
)

// unixSocket returns the path of a Unix socket listening in a directory
// of the test's own, mode 0600 as an application closed to other users
// would make it.
func unixSocket(t *testing.T) (string, net.Listener) {
	t.Helper()
	// A short directory: a socket's path has at most 107 bytes, and a
	// test's TempDir can be longer than that.
	dir, err := os.MkdirTemp("", "kt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, ln
}

// TestServerUnixTarget: a target given as unix:PATH is dialled on that
// Unix socket — a target no other local user can reach past the proxy
// (a loopback TCP port is anyone's on the machine) — and logged as given.
func TestServerUnixTarget(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	path, ln := unixSocket(t)
	testnet.ServeEach(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	_, addr, logs, _ := startServer(t, srv, "unix:"+path, ServerOptions{})
	alice.pin(t, addr, srv)
	got, err := exchange(dialTLS(t, alice, addr), "hello")
	if err != nil || got != "hello" {
		t.Fatalf("through a Unix socket target: got %q, %v; want the echo", got, err)
	}
	logs.waitFor(t, `msg=closed remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice bytes_in=5 bytes_out=5`)
}

// TestServerUnixTargetHTTP: HTTP mode forwards requests to a Unix socket
// target, with the identity headers, and the client's Host.
func TestServerUnixTargetHTTP(t *testing.T) {
	srv, alice := newSide(t), newSide(t)
	srv.authorize(t, "alice", alice)
	path, ln := unixSocket(t)
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+r.Header.Get(HeaderName)+" at "+r.Host)
	})}
	go func() { _ = app.Serve(ln) }()
	t.Cleanup(func() { app.Close() })
	_, addr, _, _ := startServer(t, srv, "unix:"+path, ServerOptions{HTTP: true})
	alice.pin(t, addr, srv)
	tr := alice.tlsClient(t).Transport()
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "hello alice at " + addr; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("HTTP mode to a Unix socket: %d %q, want 200 %q", resp.StatusCode, body, want)
	}
}

// TestServerUnixTargetRelative: a Unix socket's path must be absolute —
// a relative one would be looked up from wherever the proxy was started.
func TestServerUnixTargetRelative(t *testing.T) {
	srv := newSide(t)
	_, err := NewServer(ServerOptions{TLS: srv.tlsServer(t, tlsbridge.ServerOptions{}), Target: "unix:app.sock"})
	var oe *OptionError
	if !errors.As(err, &oe) || oe.Option != "Target" || !strings.Contains(err.Error(), "must be absolute") {
		t.Fatalf("NewServer with unix:app.sock: %v, want an *OptionError about Target", err)
	}
	if _, err := NewServer(ServerOptions{TLS: srv.tlsServer(t, tlsbridge.ServerOptions{}), Target: "unix:/run/app.sock"}); err != nil {
		t.Fatalf("NewServer with unix:/run/app.sock: %v", err)
	}
}
