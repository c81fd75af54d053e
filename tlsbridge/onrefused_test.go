package tlsbridge

import (
	"errors"
	"net/netip"
	"sync"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
)

// ServerOptions.OnRefused is told of each client refused in a handshake,
// with its address and the typed refusal the handshake fails with, which
// net/http's ErrorLog gets only as text: a server can count refusals by
// reason, or log them its own way. An admitted client is not reported,
// nor one AllowUnknown lets finish its handshake unauthenticated.
func TestServerOnRefusedIsTyped(t *testing.T) {
	type refusal struct {
		remote netip.Addr
		err    error
	}
	var (
		mu   sync.Mutex
		told []refusal
	)
	onRefused := func(remote netip.Addr, err error) {
		mu.Lock()
		told = append(told, refusal{remote, err})
		mu.Unlock()
	}
	take := func() []refusal {
		mu.Lock()
		defer mu.Unlock()
		r := told
		told = nil
		return r
	}
	srv := newHome(t, jwk.EC256)
	alice, bob, carol := newHome(t, jwk.EC256), newHome(t, jwk.EC256), newHome(t, jwk.EC256)
	srv.authorize(t, "alice", alice.id.Key)
	srv.authorize(t, "bob", bob.id.Key)
	srv.revoke(t, bob.id.Key)
	ts := startServer(t, srv, ServerOptions{OnRefused: onRefused})
	dial := func(h *home) error {
		h.pin(t, ts.addr(), srv.id.Key)
		_, err := roundTrip(ts.addr(), mustConfig(t, h.client(t, ClientOptions{Policy: Strict}), ts.addr()))
		return err
	}

	if err := dial(alice); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 0 {
		t.Errorf("an admitted client was reported refused: %v", got)
	}
	for _, tc := range []struct {
		h    *home
		want any
	}{
		{bob, new(*authkeys.RevokedError)},
		{carol, new(*authkeys.NotAuthorizedError)},
	} {
		if err := dial(tc.h); err == nil {
			t.Fatal("a refused client got in")
		}
		got := take()
		if len(got) != 1 {
			t.Fatalf("%d refusals told, want 1: %v", len(got), got)
		}
		if got[0].remote != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("refusal told from %v, want 127.0.0.1", got[0].remote)
		}
		if !errors.As(got[0].err, tc.want) {
			t.Errorf("refusal %v, want %T", got[0].err, tc.want)
		}
	}

	open := startServer(t, srv, ServerOptions{OnRefused: onRefused, AllowUnknown: true})
	carol.pin(t, open.addr(), srv.id.Key)
	if _, err := roundTrip(open.addr(), mustConfig(t, carol.client(t, ClientOptions{Policy: Strict}), open.addr())); err != nil {
		t.Fatal(err)
	}
	if got := take(); len(got) != 0 {
		t.Errorf("a client AllowUnknown let in unauthenticated was reported refused: %v", got)
	}
}
