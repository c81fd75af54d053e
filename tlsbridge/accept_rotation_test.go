package tlsbridge

import (
	"crypto/tls"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/jwk"
)

// A client whose entry accepts rotation gets the next key its certificate
// announces authorized at its next handshake, under the same name with the
// same attributes (comment, expires, from); a client whose entry does not,
// gets nothing authorized.
func TestAcceptRotation(t *testing.T) {
	srv := newHome(t, jwk.EC256)
	var log testlog.Buffer
	ts := startServer(t, srv, ServerOptions{Logger: log.Logger()})
	connect := func(name string, mark bool) (next *jwk.Key) {
		t.Helper()
		cl := newHome(t, jwk.EC256)
		next = mustGenerate(t, jwk.Ed25519)
		pk := cl.id.Key.PublicKey()
		pk.Attrs = jwk.Attributes{}
		pk.Attrs.SetString(jwk.AttrComment, name+"'s laptop")
		pk.Attrs[jwk.AttrFrom] = json.RawMessage(`["127.0.0.0/8"]`)
		pk.Attrs.SetString(jwk.AttrExpires, "2099-01-01T00:00:00Z")
		if _, err := srv.auth.Add(pk, name, authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
		if mark {
			if _, err := srv.auth.SetAcceptRotation(name, true); err != nil {
				t.Fatal(err)
			}
		}
		id, err := NewIdentity(cl.id.Key, CertOptions{Next: []*jwk.Key{next}})
		if err != nil {
			t.Fatal(err)
		}
		cl.id = id
		cl.pin(t, ts.addr(), srv.id.Key)
		if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
			t.Fatal(err)
		}
		return next
	}

	next := connect("alice", true)
	srv.auth.Reload()
	e, err := srv.auth.Lookup(next.SPKIHash(), netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatalf("the next key was not authorized: %v\n%s", err, log.String())
	}
	if e.Name != "alice" || e.Comment != "alice's laptop" || len(e.From) != 1 || e.From[0].String() != "127.0.0.0/8" || e.Expires.Year() != 2099 || !e.AcceptRotation {
		t.Errorf("the next key's entry: %+v", e)
	}
	if !strings.HasSuffix(e.File, "alice+"+strings.ReplaceAll(next.KeyID(), ":", "")[:32]+".json") {
		t.Errorf("file %s", e.File)
	}
	if d := srv.auth.Decide(next.SPKIHash(), netip.MustParseAddr("192.0.2.1")); d.Verdict != authkeys.WrongNetwork {
		t.Errorf("the next key from outside its entry's from: %v", d.Verdict)
	}
	if !strings.Contains(log.String(), `msg="authorized the next key a client announces" name=alice fingerprint=`+next.Fingerprint()) {
		t.Errorf("log:\n%s", log.String())
	}

	other := connect("bob", false)
	srv.auth.Reload()
	if d := srv.auth.Decide(other.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
		t.Errorf("an entry that does not accept rotation had its next key %v", d.Verdict)
	}
}

// A peer that holds a copy of an accepting client's certificate — which
// the client shows every server it connects to — but not its private key
// gets nothing authorized: crypto/tls calls VerifyConnection before it
// checks the client's CertificateVerify, so the server learns a next key
// only once the handshake is complete, when possession was proven.
func TestAcceptRotationNeedsTheKey(t *testing.T) {
	for _, tlsVersion := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		srv, cl, ts, _ := acceptingRotation(t)
		next := mustGenerate(t, jwk.EC256)
		id, err := NewIdentity(cl.id.Key, CertOptions{Next: []*jwk.Key{next}})
		if err != nil {
			t.Fatal(err)
		}
		// The attacker's config: alice's certificate, another key.
		attacker := mustGenerate(t, jwk.EC256)
		cfg := &tls.Config{
			InsecureSkipVerify: true, // the attacker does not care who the server is
			MinVersion:         tlsVersion,
			MaxVersion:         tlsVersion,
			Certificates: []tls.Certificate{{
				Certificate: id.Certificate.Certificate,
				PrivateKey:  attacker.Signer(),
			}},
		}
		if _, err := roundTrip(ts.addr(), cfg); err == nil {
			t.Fatalf("TLS %x: a handshake signed by another key succeeded", tlsVersion)
		}
		srv.auth.Reload()
		if d := srv.auth.Decide(next.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
			t.Errorf("TLS %x: a replayed certificate had its announced key %v (%s)", tlsVersion, d.Verdict, d.Entry.File)
		}
	}
}

// A client whose accepting entry does not admit it now — expired, or
// connecting from outside its "from" — gets nothing authorized, even on
// a server that lets unknown clients finish the handshake (AllowUnknown).
func TestAcceptRotationOnlyWhenAdmitted(t *testing.T) {
	for name, attr := range map[string][2]string{
		"expired":    {jwk.AttrExpires, `"2001-01-01T00:00:00Z"`},
		"wrong-from": {jwk.AttrFrom, `["192.0.2.0/24"]`},
	} {
		t.Run(name, func(t *testing.T) {
			srv := newHome(t, jwk.EC256)
			ts := startServer(t, srv, ServerOptions{AllowUnknown: true})
			cl := newHome(t, jwk.EC256)
			pk := cl.id.Key.PublicKey()
			pk.Attrs = jwk.Attributes{attr[0]: json.RawMessage(attr[1])}
			if _, err := srv.auth.Add(pk, "alice", authkeys.AddNew); err != nil {
				t.Fatal(err)
			}
			if _, err := srv.auth.SetAcceptRotation("alice", true); err != nil {
				t.Fatal(err)
			}
			next := mustGenerate(t, jwk.EC256)
			id, err := NewIdentity(cl.id.Key, CertOptions{Next: []*jwk.Key{next}})
			if err != nil {
				t.Fatal(err)
			}
			cl.id = id
			cl.pin(t, ts.addr(), srv.id.Key)
			if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
				t.Fatal(err)
			}
			if p := ts.lastPeer(t); p.Err == nil {
				t.Fatalf("the client was admitted: %+v", p)
			}
			srv.auth.Reload()
			if d := srv.auth.Decide(next.SPKIHash(), netip.MustParseAddr("192.0.2.1")); d.Verdict != authkeys.Unknown {
				t.Errorf("its announced key is %v", d.Verdict)
			}
		})
	}
}

// A client whose entry accepts rotation may make a certificate of its own
// at each connection, each announcing MaxAnnounced keys of its choosing:
// the server authorizes at most authkeys.MaxNextKeys of them under its
// name, however many it announces (found by review: each connection
// added four more files to authorized_keys.d, without end, every one
// authorized and accepting rotation in turn). Once refused, the client is
// not tried again for rotationRetry: each attempt rescans the store and
// logs a warning, which every connection and request would otherwise
// cost (the authkeys test shows a removal making room again).
func TestAcceptRotationBounded(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	current := cl.id.Key
	var announced []*jwk.Key
	for range 5 {
		next := make([]*jwk.Key, MaxAnnounced)
		for i := range next {
			next[i] = mustGenerate(t, jwk.Ed25519)
		}
		announced = append(announced, next...)
		id, err := NewIdentity(current, CertOptions{Next: next})
		if err != nil {
			t.Fatal(err)
		}
		cl.id = id
		if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
			t.Fatal(err)
		}
	}
	srv.auth.Reload()
	authorized := 0
	for _, k := range announced {
		if d := srv.auth.Decide(k.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict == authkeys.Authorized {
			authorized++
		}
	}
	if authorized != authkeys.MaxNextKeys {
		t.Errorf("%d of the %d keys announced were authorized, want %d", authorized, len(announced), authkeys.MaxNextKeys)
	}
	if n := strings.Count(log.String(), "could not authorize the next key"); n != 1 || !strings.Contains(log.String(), "already holds 4 keys added by rotation") {
		t.Errorf("%d refusals logged, want 1 (the client is not tried again for %v), saying why:\n%s", n, rotationRetry, log.String())
	}
}

// acceptingRotation starts a server logging to log, and authorizes the
// key of a new client, cl, as "alice", accepting rotation.
func acceptingRotation(t *testing.T) (srv, cl *home, ts *testServer, log *testlog.Buffer) {
	t.Helper()
	srv, log = newHome(t, jwk.EC256), &testlog.Buffer{}
	ts = startServer(t, srv, ServerOptions{Logger: log.Logger()})
	cl = newHome(t, jwk.EC256)
	srv.authorize(t, "alice", cl.id.Key)
	if _, err := srv.auth.SetAcceptRotation("alice", true); err != nil {
		t.Fatal(err)
	}
	return srv, cl, ts, log
}

// An entry the admin opted out (`authorize --no-accept-rotation`, here
// another store of the server's home, as the command is another process)
// authorizes nothing at the client's next handshake, though the server's
// store has not read the change yet and admits the client by the entry it
// held, still marked: the store asks the entry in effect once more
// (authkeys.TestAcceptRotationRechecksTheMark).
func TestAcceptRotationAfterOptOut(t *testing.T) {
	srv, cl, ts, log := acceptingRotation(t)
	cl.pin(t, ts.addr(), srv.id.Key)
	admin := authkeys.Load(authkeys.HomeOptions(srv.dir))
	defer admin.Close()
	if _, err := admin.SetAcceptRotation("alice", false); err != nil {
		t.Fatal(err)
	}
	if e, err := srv.auth.LookupKey(cl.id.Key, netip.Addr{}); err != nil || !e.AcceptRotation {
		t.Fatalf("the server's store has read the change already (%+v, %v): the test shows nothing", e, err)
	}
	next := mustGenerate(t, jwk.Ed25519)
	id, err := NewIdentity(cl.id.Key, CertOptions{Next: []*jwk.Key{next}})
	if err != nil {
		t.Fatal(err)
	}
	cl.id = id
	if _, err := roundTrip(ts.addr(), mustConfig(t, cl.client(t, ClientOptions{}), ts.addr())); err != nil {
		t.Fatal(err)
	}
	srv.auth.Reload()
	if d := srv.auth.Decide(next.SPKIHash(), netip.MustParseAddr("127.0.0.1")); d.Verdict != authkeys.Unknown {
		t.Fatalf("the next key of an entry opted out is %v (%s)\n%s", d.Verdict, d.Entry.File, log.String())
	}
	if !strings.Contains(log.String(), "no longer accepts rotation") {
		t.Errorf("log:\n%s", log.String())
	}
}
