package proxy

import (
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/tlsbridge"
)

// expiresAfter is an authorized-keys store whose entries expire after
// its first n decisions: the moment an entry's "expires" passes, put
// where a test needs it.
type expiresAfter struct {
	*authkeys.Store
	n, calls atomic.Int32
}

func (s *expiresAfter) Decide(sum [32]byte, remote netip.Addr) authkeys.Decision {
	d := s.Store.Decide(sum, remote)
	if s.calls.Add(1) > s.n.Load() && d.Verdict == authkeys.Authorized {
		return authkeys.Decision{Verdict: authkeys.Expired, Entry: d.Entry}
	}
	return d
}

// A client whose entry expires between the proxy's decision after the
// handshake and the first decision of live revocation is refused, under
// AllowUnknown (enrollment) too: that first decision is taken as the
// handshake's, so the key then looked let in unauthenticated, and the
// connection was piped to the target and kept open past the expiry.
func TestEntryExpiringAsItIsTracked(t *testing.T) {
	srv, cli := newSide(t), newSide(t)
	srv.authorize(t, "cli", cli)
	store := &expiresAfter{Store: srv.auth}
	store.n.Store(2) // the handshake's decision, and the proxy's (Peer)
	tlsSrv, err := tlsbridge.NewServer(srv.id, tlsbridge.ServerOptions{Clients: store, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	_, addr, logs, _ := startServer(t, srv, echoTarget(t), ServerOptions{TLS: tlsSrv})
	cli.pin(t, addr, srv)
	got, _ := exchange(dialTLS(t, cli, addr), "hello")
	if got != "" {
		t.Fatalf("a client whose entry expired as its connection was tracked reached the target: %q", got)
	}
	logs.waitFor(t, `msg=refused .*reason=.*expired`)
	if n := store.calls.Load(); n < 4 {
		t.Errorf("%d decisions", n)
	}
	if strings.Contains(logs.String(), "msg=accepted") {
		t.Errorf("logged as accepted:\n%s", logs.String())
	}
}
