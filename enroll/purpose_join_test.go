package enroll

import (
	"errors"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// forPurposes is k's public half pinned for purposes only.
func forPurposes(k *jwk.Key, purposes ...string) *jwk.Key {
	k = k.PublicKey()
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	k.Attrs.SetList(jwk.AttrPurpose, purposes)
	return k
}

// TestJoinKeyPinnedForSomePurposes: the client already pins the token's
// server key for the token's address, for ldap only. The token is the
// out-of-band check of that key: join enrolls and pins it for every
// purpose beside (a connection without a purpose is admitted by no other
// pin since 2026-12-06), as it did before — not a *HostsDisagreeError
// whose trusted hosts agree with the token, and whose advice said to
// connect with --purpose (found by review, 2026-12-06). Another key
// pinned there for a purpose is still a changed key, refused before
// anything is sent (the pin for every purpose would be one).
func TestJoinKeyPinnedForSomePurposes(t *testing.T) {
	t.Run("only the token's key", func(t *testing.T) {
		srvHome, cli := newHome(t), newHome(t)
		srv := startServer(t, srvHome, serverConfig{})
		if _, err := cli.hosts(t).Add(srv.addr, forPurposes(srvHome.key(), "ldap")); err != nil {
			t.Fatal(err)
		}
		res, err := cli.join(t, srvHome.invite(t, "laptop", srv.addr))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Pins) != 1 || !res.Pins[0].New {
			t.Errorf("pins %+v: want one new pin, for every purpose", res.Pins)
		}
		if d := cli.hosts(t).Decide(srv.addr, srvHome.key().SPKIHash()); d.Verdict != knownhosts.Pinned {
			t.Errorf("after join, a connection without a purpose: %v (%v)", d.Verdict, d.Err)
		}
		if got, err := cli.greet(t, srv.addr, false); err != nil || got != "hello laptop\n" {
			t.Errorf("after join: %q, %v", got, err)
		}
	})
	t.Run("another key pinned for another purpose", func(t *testing.T) {
		f := newFailure(t, serverConfig{})
		hosts := f.cli.hosts(t)
		if _, err := hosts.Add(f.srv.addr, forPurposes(f.srvHome.key(), "ldap")); err != nil {
			t.Fatal(err)
		}
		if _, err := hosts.Add(f.srv.addr, forPurposes(newHome(t).key(), "pool")); err != nil {
			t.Fatal(err)
		}
		err := f.join(t, f.tok)
		var hd *HostsDisagreeError
		var kc *knownhosts.KeyChangedError
		if !errors.As(err, &hd) || !errors.As(err, &kc) || len(kc.Want) != 1 {
			t.Fatalf("got %v, want a *HostsDisagreeError with the other key changed", err)
		}
	})
}
