package tlsbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
)

// realIPServer is an HTTP server (HTTP/1.1 and HTTP/2) on 127.0.0.1 in
// AllowUnknown mode — the per-request decision is what admits — with
// middleware in front of keytool's that sets r.RemoteAddr from the
// client's X-Real-IP header (testnet.RealIP): "/" is behind
// RequireAuthenticated, "/peer" behind Middleware sends what it saw.
type realIPServer struct {
	home *home
	addr string
	seen chan realIPSeen
}

// realIPSeen is what "/peer" saw of a request.
type realIPSeen struct {
	peer   *Peer
	theirs bool // the server's own ConnContext ran for the connection
}

type theirConnKey struct{}

// startRealIP starts the server; hook installs ConnContext with
// HookConnContext, over a ConnContext of the server's own.
func startRealIP(t *testing.T, hook bool) *realIPServer {
	t.Helper()
	w := &realIPServer{home: newHome(t, jwk.EC256), seen: make(chan realIPSeen, 1)}
	srv, err := NewServer(w.home.id, ServerOptions{Clients: w.home.auth, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", srv.RequireAuthenticated(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(rw, "hello "+PeerFromContext(r.Context()).Name())
	})))
	mux.Handle("/peer", srv.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		w.seen <- realIPSeen{peer: PeerFromContext(r.Context()), theirs: r.Context().Value(theirConnKey{}) != nil}
	})))
	hs := &http.Server{Handler: testnet.RealIP("X-Real-IP", mux), TLSConfig: srv.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0)}
	if hook {
		hs.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, theirConnKey{}, true)
		}
		HookConnContext(hs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w.addr = ln.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { hs.Close(); <-done })
	return w
}

// client is a new client whose key is authorized as name with the
// networks from (none: no "from"), the server's key pinned.
func (w *realIPServer) client(t *testing.T, name string, from ...string) *home {
	t.Helper()
	c := newHome(t, jwk.EC256)
	k := c.id.Key.PublicKey()
	if from != nil {
		k.Attrs = jwk.Attributes{}
		k.Attrs.SetList(jwk.AttrFrom, from)
	}
	w.home.authorize(t, name, k)
	c.pin(t, w.addr, w.home.id.Key)
	return c
}

// get requests path as c over proto ("HTTP/1.1", "HTTP/2.0"), claiming
// to come from realIP, and returns the status and body.
func (w *realIPServer) get(t *testing.T, c *home, proto, path, realIP string) (int, string) {
	t.Helper()
	cli := c.client(t, ClientOptions{})
	tr := cli.Transport()
	if proto == "HTTP/2.0" {
		live := cli.Live(LiveOptions{})
		defer live.Close()
		tr = live.Transport()
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(http.MethodGet, "https://"+w.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if realIP != "" {
		req.Header.Set("X-Real-IP", realIP)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Proto != proto {
		t.Fatalf("the request went over %s, not %s", resp.Proto, proto)
	}
	return resp.StatusCode, string(body)
}

// peer is the Peer "/peer" saw for a request of c claiming realIP.
func (w *realIPServer) peer(t *testing.T, c *home, proto, realIP string) realIPSeen {
	t.Helper()
	w.get(t, c, proto, "/peer", realIP)
	select {
	case s := <-w.seen:
		return s
	default:
		t.Fatal("/peer saw no request")
		return realIPSeen{}
	}
}

// forbiddenReason is the reason of a 403 answer with keytool's body, or
// says what the answer was instead.
func forbiddenReason(code int, body string) ForbiddenReason {
	var fb ForbiddenBody
	if err := json.Unmarshal([]byte(body), &fb); err != nil || code != http.StatusForbidden {
		return ForbiddenReason(fmt.Sprintf("no refusal: %d %q", code, body))
	}
	return fb.Reason
}

// A key allowed only from 10.0.0.0/8, connecting from 127.0.0.1 with
// "X-Real-IP: 10.0.0.1" behind middleware that sets r.RemoteAddr from it,
// is refused at each request: the decision takes the address of the
// connection, which ConnContext recorded, not r.RemoteAddr. A key allowed
// from 127.0.0.0/8 is admitted whatever the header claims. Over HTTP/1.1
// and HTTP/2; a ConnContext of the server's own still runs
// (HookConnContext chains it). Before: the first key was admitted.
func TestFromRulesIgnoreRemoteAddrHeaders(t *testing.T) {
	w := startRealIP(t, true)
	office := w.client(t, "office", "10.0.0.0/8")
	local := w.client(t, "local", "127.0.0.0/8")
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			if r := forbiddenReason(w.get(t, office, proto, "/", "10.0.0.1")); r != ReasonSourceNotAllowed {
				t.Errorf("office claiming 10.0.0.1: reason %s, want %s", r, ReasonSourceNotAllowed)
			}
			s := w.peer(t, office, proto, "10.0.0.1")
			var source *authkeys.SourceNotAllowedError
			if !errors.As(s.peer.Err, &source) || source.Remote != netip.MustParseAddr("127.0.0.1") {
				t.Errorf("office claiming 10.0.0.1: Peer.Err %v, want *authkeys.SourceNotAllowedError for the connection's 127.0.0.1", s.peer.Err)
			}
			if !s.theirs {
				t.Error("the server's own ConnContext did not run: HookConnContext replaced it")
			}
			if code, body := w.get(t, local, proto, "/", "10.0.0.1"); code != http.StatusOK || body != "hello local" {
				t.Errorf("local (127.0.0.0/8) claiming 10.0.0.1: %d %q, want admitted", code, body)
			}
		})
	}
}

// On a server without ConnContext, a key with "from" networks is
// refused at each request, whatever it claims and wherever it is — the
// address r.RemoteAddr holds may be the client's writing — with a
// *NoConnContextError saying what to add; a key without "from" is
// admitted. Before: the key allowed from 10.0.0.0/8 was admitted from
// 127.0.0.1 with "X-Real-IP: 10.0.0.1".
func TestPeerOfWithoutConnContextFailsClosed(t *testing.T) {
	w := startRealIP(t, false)
	office := w.client(t, "office", "10.0.0.0/8")
	local := w.client(t, "local", "127.0.0.0/8")
	anywhere := w.client(t, "anywhere")
	for _, c := range []struct {
		name   string
		h      *home
		realIP string
	}{{"office", office, "10.0.0.1"}, {"local", local, ""}} {
		if r := forbiddenReason(w.get(t, c.h, "HTTP/1.1", "/", c.realIP)); r != ReasonSourceNotAllowed {
			t.Errorf("%s: reason %s, want %s", c.name, r, ReasonSourceNotAllowed)
		}
		err := w.peer(t, c.h, "HTTP/1.1", c.realIP).peer.Err
		var noCtx *NoConnContextError
		var source *authkeys.SourceNotAllowedError
		if !errors.As(err, &noCtx) || !errors.As(err, &source) || !strings.Contains(err.Error(), "ConnContext: tlsbridge.ConnContext") {
			t.Errorf("%s: Peer.Err %v, want a *NoConnContextError naming the hook, over the store's refusal", c.name, err)
		}
	}
	if code, body := w.get(t, anywhere, "HTTP/1.1", "/", "10.0.0.1"); code != http.StatusOK || body != "hello anywhere" {
		t.Errorf("a key without \"from\": %d %q, want admitted", code, body)
	}
}
