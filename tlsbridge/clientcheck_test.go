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

// peerChecked forgets what no VerifyConnection takes back, past its bound:
// a decision made again, never one skipped.
func TestPeerCheckedBounded(t *testing.T) {
	var p peerChecked
	first := chainSum("a", 0, nil)
	p.add(first, true)
	for i := range maxPeerChecked {
		p.add(chainSum(strings.Repeat("b", i+1), 0, nil), false)
	}
	if p.n > maxPeerChecked {
		t.Errorf("%d entries kept, bound %d", p.n, maxPeerChecked)
	}
	if _, ok := p.take(first); ok {
		t.Error("the oldest entry was kept past the bound")
	}
	p.add(first, true)
	p.add(first, false)
	if _, ok := p.take(first); !ok {
		t.Error("first of two entries not taken")
	}
	if _, ok := p.take(first); !ok {
		t.Error("second of two entries not taken")
	}
	if _, ok := p.take(first); ok {
		t.Error("a third entry taken where two were added")
	}
	if got, want := sniName("127.0.0.1"), ""; got != want {
		t.Errorf("sniName(IP) = %q, want %q", got, want)
	}
	if got, want := sniName("host.example."), "host.example"; got != want {
		t.Errorf("sniName = %q, want %q", got, want)
	}
}
