package tlsbridge

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// A VerifyConnection assigned over keytool's on what TLSConfig returned
// (to log, say) does not turn the check of the server's key off: the
// VerifyPeerCertificate keytool sets decides too. Before, the assignment
// replaced the only check there was, with InsecureSkipVerify set, and the
// client connected to any server: an unknown key under Strict, a pinned
// address presenting another key, a revoked key.
func TestClientCheckSurvivesReplacedVerifyConnection(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	ran := 0
	replaced := func(c *Client) *tls.Config {
		cfg := mustConfig(t, c, ts.addr())
		cfg.VerifyConnection = func(tls.ConnectionState) error { ran++; return nil }
		return cfg
	}
	strict := cli.client(t, ClientOptions{Policy: Strict})

	_, err := roundTrip(ts.addr(), replaced(strict))
	var unknown *knownhosts.UnknownHostError
	if !errors.As(err, &unknown) {
		t.Errorf("unknown host under Strict: err = %v, want *knownhosts.UnknownHostError", err)
	}

	cli.pin(t, ts.addr(), mustGenerate(t, jwk.EC256)) // another key than the server's
	_, err = roundTrip(ts.addr(), replaced(strict))
	var changed *knownhosts.KeyChangedError
	if !errors.As(err, &changed) {
		t.Errorf("changed key: err = %v, want *knownhosts.KeyChangedError", err)
	}
	insecure := cli.client(t, ClientOptions{Policy: Insecure})
	if _, err = roundTrip(ts.addr(), replaced(insecure)); !errors.As(err, &changed) {
		t.Errorf("changed key under Insecure: err = %v, want *knownhosts.KeyChangedError", err)
	}
	if ran != 0 {
		t.Errorf("the caller's VerifyConnection ran %d times on refused servers", ran)
	}

	other := newHome(t, jwk.EC256)
	other.pin(t, ts.addr(), srv.id.Key)
	if _, err := roundTrip(ts.addr(), replaced(other.client(t, ClientOptions{Policy: Strict}))); err == nil || !strings.Contains(err.Error(), "bad certificate") {
		// The server does not know other's key: pinned, the client
		// gets as far as the server's refusal.
		t.Errorf("pinned server, unknown client: err = %v, want the server's refusal", err)
	}
	other.revoke(t, srv.id.Key)
	var revoked *knownhosts.RevokedError
	if _, err := roundTrip(ts.addr(), replaced(other.client(t, ClientOptions{Policy: Strict}))); !errors.As(err, &revoked) {
		t.Errorf("revoked host key: err = %v, want *knownhosts.RevokedError", err)
	}
}

// A handshake asks the question once and logs Insecure's warning once,
// though two callbacks decide: the second takes the first's decision.
// Each new handshake under Once asks again; a resumed one decides in
// VerifyConnection alone, and a key removed since is not resumed with.
func TestClientDecidesOncePerHandshake(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	_, ts := serverFor(t, cli)
	var asked atomic.Int32
	once := cli.client(t, ClientOptions{Policy: Ask, Prompt: PromptFunc(func(UnknownHost) (Answer, error) {
		asked.Add(1)
		return Once, nil
	})})
	cfg := mustConfig(t, once, ts.addr())
	for i := 1; i <= 3; i++ {
		if _, err := roundTrip(ts.addr(), cfg); err != nil {
			t.Fatal(err)
		}
		if n := asked.Load(); n != int32(i) {
			t.Fatalf("after %d handshakes under Once, %d questions", i, n)
		}
	}

	var logged bytes.Buffer
	insecure := cli.client(t, ClientOptions{Policy: Insecure, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	logged.Reset() // NewClient's own warning
	if _, err := roundTrip(ts.addr(), mustConfig(t, insecure, ts.addr())); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logged.String(), "accepting an unverified host key"); n != 1 {
		t.Errorf("one handshake under Insecure logged %d warnings:\n%s", n, logged.String())
	}
}

// A resumed handshake has no VerifyPeerCertificate: VerifyConnection
// decides, with what is pinned now.
func TestClientResumptionDecidedAgain(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	cli.pin(t, ts.addr(), srv.id.Key)
	cfg := mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), ts.addr())
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	var peerChecks atomic.Int32
	ours := cfg.VerifyPeerCertificate
	cfg.VerifyPeerCertificate = func(raw [][]byte, chains [][]*x509.Certificate) error {
		peerChecks.Add(1)
		return ours(raw, chains)
	}
	if _, err := roundTrip(ts.addr(), cfg); err != nil {
		t.Fatal(err)
	}
	// The ticket comes with the first reply; the second handshake resumes.
	cs, err := roundTrip(ts.addr(), cfg)
	if err != nil || !cs.DidResume {
		t.Fatalf("second connection: resumed %v (%v), want resumed", cs.DidResume, err)
	}
	if n := peerChecks.Load(); n != 1 {
		t.Fatalf("VerifyPeerCertificate ran %d times in a full and a resumed handshake, want 1", n)
	}
	cli.revoke(t, srv.id.Key)
	var revoked *knownhosts.RevokedError
	if cs, err := roundTrip(ts.addr(), cfg); !errors.As(err, &revoked) {
		t.Errorf("resuming with a host key revoked since: resumed %v, err = %v, want *knownhosts.RevokedError", cs.DidResume, err)
	}
}

// peerChecked forgets what no VerifyConnection takes back, past its bound,
// and gives back only what was decided a moment ago: a decision made
// again, never one skipped.
func TestPeerCheckedBounded(t *testing.T) {
	var p peerChecked
	now := time.Now()
	first := chainSum("a", 0, nil)
	p.add(first, peerDecision{at: now, pinned: true})
	for i := range maxPeerChecked {
		p.add(chainSum(strings.Repeat("b", i+1), 0, nil), peerDecision{at: now})
	}
	if p.n > maxPeerChecked {
		t.Errorf("%d entries kept, bound %d", p.n, maxPeerChecked)
	}
	if _, ok := p.take(first, now); ok {
		t.Error("the oldest entry was kept past the bound")
	}
	p.add(first, peerDecision{at: now, pinned: true})
	p.add(first, peerDecision{at: now})
	for i := range 2 {
		if _, ok := p.take(first, now); !ok {
			t.Errorf("entry %d of two not taken", i+1)
		}
	}
	if _, ok := p.take(first, now); ok {
		t.Error("a third entry taken where two were added")
	}
	p.add(first, peerDecision{at: now})
	if _, ok := p.take(first, now.Add(peerCheckedFresh)); ok {
		t.Error("an entry taken back after peerCheckedFresh")
	}
	for name, want := range map[string]string{"127.0.0.1": "", "[::1]": "", "host.example.": "host.example", "[host": "[host"} {
		if got := sniName(name); got != want {
			t.Errorf("sniName(%q) = %q, want %q", name, got, want)
		}
	}
}

// What a handshake's VerifyPeerCertificate left and no VerifyConnection
// of keytool's took back — the caller's VerifyPeerCertificate refused
// after keytool's admitted, or a Clone's VerifyConnection was replaced —
// is not a decision for a later handshake: a resumed one decides anew,
// and one that takes an entry back still refuses a key revoked since
// (found by review, 2026-12-05).
func TestClientLeftoverDecisionNotTaken(t *testing.T) {
	revokedAfter := func(t *testing.T, cli, srv *home, addr string, cfg *tls.Config) {
		t.Helper()
		cli.revoke(t, srv.id.Key)
		var revoked *knownhosts.RevokedError
		if cs, err := roundTrip(addr, cfg); !errors.As(err, &revoked) {
			t.Errorf("a key revoked since: resumed %v, err = %v, want *knownhosts.RevokedError", cs.DidResume, err)
		}
	}
	t.Run("caller refused", func(t *testing.T) {
		cli := newHome(t, jwk.EC256)
		srv, ts := serverFor(t, cli)
		cli.pin(t, ts.addr(), srv.id.Key)
		calls := 0
		cfg := &tls.Config{
			ClientSessionCache: tls.NewLRUClientSessionCache(4),
			VerifyPeerCertificate: func([][]byte, [][]*x509.Certificate) error {
				if calls++; calls == 1 {
					return errors.New("the caller's own check refuses, once")
				}
				return nil
			},
		}
		if err := cli.client(t, ClientOptions{Policy: Strict}).Configure(cfg, ts.addr()); err != nil {
			t.Fatal(err)
		}
		if _, err := roundTrip(ts.addr(), cfg); err == nil {
			t.Fatal("the caller's refusal did not end the handshake")
		}
		if cs, err := roundTrip(ts.addr(), cfg); err != nil || cs.DidResume {
			t.Fatalf("a full handshake: resumed %v, %v", cs.DidResume, err)
		}
		revokedAfter(t, cli, srv, ts.addr(), cfg)
	})
	t.Run("clone", func(t *testing.T) {
		cli := newHome(t, jwk.EC256)
		srv, ts := serverFor(t, cli)
		cli.pin(t, ts.addr(), srv.id.Key)
		cfg := mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), ts.addr())
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		logging := cfg.Clone()
		logging.ClientSessionCache = nil
		logging.VerifyConnection = func(tls.ConnectionState) error { return nil }
		if _, err := roundTrip(ts.addr(), logging); err != nil {
			t.Fatal(err)
		}
		if cs, err := roundTrip(ts.addr(), cfg); err != nil || cs.DidResume {
			t.Fatalf("a full handshake: resumed %v, %v", cs.DidResume, err)
		}
		revokedAfter(t, cli, srv, ts.addr(), cfg)
		// A full handshake of a clone whose VerifyPeerCertificate is
		// replaced, which takes back what the other clone left.
		cli2 := newHome(t, jwk.EC256)
		srv2, ts2 := serverFor(t, cli2)
		cli2.pin(t, ts2.addr(), srv2.id.Key)
		base := mustConfig(t, cli2.client(t, ClientOptions{Policy: Strict}), ts2.addr())
		leaves := base.Clone()
		leaves.VerifyConnection = func(tls.ConnectionState) error { return nil }
		takes := base.Clone()
		takes.VerifyPeerCertificate = nil
		if _, err := roundTrip(ts2.addr(), leaves); err != nil {
			t.Fatal(err)
		}
		cli2.revoke(t, srv2.id.Key)
		var revoked *knownhosts.RevokedError
		if _, err := roundTrip(ts2.addr(), takes); !errors.As(err, &revoked) {
			t.Errorf("a leftover decision taken back for a key revoked since: err = %v, want *knownhosts.RevokedError", err)
		}
	})
}
