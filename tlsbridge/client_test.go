package tlsbridge

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// serverFor starts a server of a fresh home that authorizes cli.
func serverFor(t *testing.T, cli *home) (*home, *testServer) {
	t.Helper()
	srv := newHome(t, jwk.EC256)
	srv.authorize(t, "client", cli.id.Key)
	return srv, startServer(t, srv, ServerOptions{})
}

func pinFiles(t *testing.T, h *home) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(h.dir, "trusted_hosts.d", "*.json"))
	return files
}

// A pinned address presenting another key is refused with the changed-key
// error under every policy, Insecure included: the decision on a changed key
// (docs/tlsbridge.md, step 3) comes before the unknown-host policy (step 5),
// so not even Insecure, which accepts any unknown host, lets it through; no
// prompt is asked and the pin is left as it was. The message and the error's
// fields name both keys: the one pinned before and the one presented now.
func TestChangedHostKeyIsRefused(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	presented := srv.id.Key           // the key the host has now
	old := mustGenerate(t, jwk.EC256) // the key it had before its "reinstall"
	if old.Fingerprint() == presented.Fingerprint() {
		t.Fatal("the old and the new key are the same")
	}
	cli.pin(t, ts.addr(), old)
	files := pinFiles(t, cli)
	if len(files) != 1 {
		t.Fatalf("pin files %v, want one", files)
	}
	pinned, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// Every policy the package has: Strict is the first constant, Insecure
	// the last (Policy.String panics past it).
	for policy := Strict; policy <= Insecure; policy++ {
		_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: policy, Prompt: PromptFunc(func(UnknownHost) (Answer, error) {
			t.Errorf("policy %s: the prompt was asked about a changed key", policy)
			return Yes, nil
		})}), ts.addr()))
		if err == nil {
			t.Errorf("policy %s: connected to a host whose pinned key changed", policy)
			continue
		}
		var changed *knownhosts.KeyChangedError
		if !errors.As(err, &changed) {
			t.Errorf("policy %s: err = %v, want *knownhosts.KeyChangedError", policy, err)
			continue
		}
		if changed.Addr != ts.addr() || changed.Fingerprint != presented.Fingerprint() {
			t.Errorf("policy %s: error names %s presenting %s, want %s presenting %s", policy, changed.Addr, changed.Fingerprint, ts.addr(), presented.Fingerprint())
		}
		if len(changed.Want) != 1 || changed.Want[0].Fingerprint != old.Fingerprint() || changed.Want[0].File != files[0] {
			t.Errorf("policy %s: error's pinned keys = %+v, want %s in %s", policy, changed.Want, old.Fingerprint(), files[0])
		}
		// The message carries the data (what to do is the command line's
		// to say): the address, both fingerprints, the pin's file.
		msg := changed.Error()
		for _, want := range []string{ts.addr(), presented.Fingerprint(), old.Fingerprint(), files[0]} {
			if !strings.Contains(msg, want) {
				t.Errorf("policy %s: changed-key message lacks %q:\n%s", policy, want, msg)
			}
		}
		if !strings.Contains(err.Error(), msg) {
			t.Errorf("policy %s: the handshake error does not carry the changed-key message:\n%v", policy, err)
		}
		// Nothing re-pinned: the pin still holds the old key, alone.
		if got := pinFiles(t, cli); len(got) != 1 || got[0] != files[0] {
			t.Errorf("policy %s: pin files are now %v, want %v", policy, got, files)
		} else if now, err := os.ReadFile(files[0]); err != nil || !bytes.Equal(now, pinned) {
			t.Errorf("policy %s: the pin file changed (%v):\n%s", policy, err, now)
		}
	}
}

// A server presenting a trusted key that is pinned for another address is
// unknown at this address, not trusted.
func TestKeyPinnedForAnotherAddress(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	cli.pin(t, "127.0.0.1:1", srv.id.Key) // the right key, pinned for another port
	_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), ts.addr()))
	var unknown *knownhosts.UnknownHostError
	if !errors.As(err, &unknown) {
		t.Fatalf("err = %v, want *knownhosts.UnknownHostError", err)
	}
}

func TestUnknownHostPolicies(t *testing.T) {
	answer := func(a Answer) Prompt {
		return PromptFunc(func(UnknownHost) (Answer, error) { return a, nil })
	}
	for _, tc := range []struct {
		name    string
		opts    ClientOptions
		connect bool
		pinned  bool
	}{
		{"strict", ClientOptions{Policy: Strict}, false, false},
		{"ask yes", ClientOptions{Policy: Ask, Prompt: answer(Yes)}, true, true},
		{"ask once", ClientOptions{Policy: Ask, Prompt: answer(Once)}, true, false},
		{"ask no", ClientOptions{Policy: Ask, Prompt: answer(No)}, false, false},
		{"ask non-interactive", ClientOptions{Policy: Ask, Prompt: NonInteractive{}}, false, false},
		{"accept-new", ClientOptions{Policy: AcceptNew}, true, true},
		{"insecure", ClientOptions{Policy: Insecure}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli := newHome(t, jwk.EC256)
			srv, ts := serverFor(t, cli)
			_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, tc.opts), ts.addr()))
			if (err == nil) != tc.connect {
				t.Fatalf("connected = %v (%v), want %v", err == nil, err, tc.connect)
			}
			files := pinFiles(t, cli)
			if (len(files) == 1) != tc.pinned {
				t.Fatalf("pin files %v, want pinned = %v", files, tc.pinned)
			}
			if tc.pinned {
				keys, err := jwk.ReadFile(files[0])
				if err != nil || !keys[0].Equal(srv.id.Key) {
					t.Fatalf("pin file holds %v (%v), want the server's key", keys, err)
				}
				addrs, _ := keys[0].Attrs.Addresses()
				if len(addrs) != 1 || addrs[0] != ts.addr() {
					t.Errorf("pin's address = %v, want [%s]", addrs, ts.addr())
				}
				// Pinned: the next connection needs no prompt.
				if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Strict}), ts.addr())); err != nil {
					t.Errorf("after pinning, strict connection failed: %v", err)
				}
			}
			var np *NotPinnedError
			if tc.name == "ask non-interactive" && (!errors.As(err, &np) || np.Addr != ts.addr() || !np.Key.Equal(srv.id.Key)) {
				t.Errorf("non-interactive refusal does not carry the address and key to pin: %v", err)
			}
			// Unknown is one question whatever the policy: the refusal
			// under Ask without a terminal is an UnknownHostError too.
			var unknown *knownhosts.UnknownHostError
			if (tc.name == "ask non-interactive" || tc.name == "strict") && (!errors.As(err, &unknown) || unknown.Addr != ts.addr() || unknown.Fingerprint != srv.id.Key.Fingerprint()) {
				t.Errorf("%s: %v is not an UnknownHostError for %s", tc.name, err, ts.addr())
			}
		})
	}
}

// The terminal prompt shows the host the OpenSSH way and takes yes, no,
// once, or the fingerprint typed in any form keytool reads.
func TestTerminalPrompt(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	other := mustGenerate(t, jwk.EC256)
	h := UnknownHost{Addr: "db.example:7443", Key: k}
	for input, want := range map[string]Answer{
		"yes\n":                    Yes,
		"no\n":                     No,
		"once\n":                   Once,
		"maybe\nyes\n":             Yes,
		k.Fingerprint() + "\n":     Yes,
		k.KeyID() + "\n":           Yes,
		other.Fingerprint() + "\n": No,
		"":                         No,
	} {
		var out bytes.Buffer
		got, err := Terminal{In: strings.NewReader(input), Out: &out}.AskUnknownHost(h)
		if err != nil || got != want {
			t.Errorf("input %q: %v, %v; want %v", input, got, err, want)
		}
		for _, s := range []string{"The authenticity of host 'db.example:7443' can't be established.", "ECDSA P-256 key fingerprint is " + k.Fingerprint(), "Key ID: " + k.KeyID(), "(yes/no/once/[fingerprint])? "} {
			if !strings.Contains(out.String(), s) {
				t.Errorf("prompt lacks %q:\n%s", s, out.String())
			}
		}
	}
}

func TestRevokedHostKeyIsRefused(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	cli.pin(t, ts.addr(), srv.id.Key)
	cli.revoke(t, srv.id.Key)
	for _, policy := range []Policy{Strict, AcceptNew, Insecure} {
		_, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: policy}), ts.addr()))
		var revoked *knownhosts.RevokedError
		if !errors.As(err, &revoked) {
			t.Errorf("policy %s: err = %v, want *knownhosts.RevokedError", policy, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(cli.dir, "revoked_keys.d")); err != nil {
		t.Fatal(err)
	}
}

// An address without a port is an error naming it, from TLSConfig,
// Configure, DialContext and the Transport — never a panic.
func TestClientBadAddress(t *testing.T) {
	cli := newHome(t, jwk.EC256).client(t, ClientOptions{})
	for _, addr := range []string{"hostonly", "", "host:", "[::1", "a:b:c"} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("%q: panic: %v", addr, r)
				}
			}()
			check := func(what string, err error) {
				t.Helper()
				var ae *AddressError
				if !errors.As(err, &ae) || ae.Addr != addr || !strings.Contains(err.Error(), strconv.Quote(addr)) ||
					!strings.HasPrefix(err.Error(), "tlsbridge: ") || strings.Contains(err.Error(), "\n") {
					t.Errorf("%s(%q): err = %v, want a one-line *AddressError naming the address", what, addr, err)
				}
			}
			cfg, err := cli.TLSConfig(addr)
			if cfg != nil {
				t.Errorf("TLSConfig(%q) returned a configuration", addr)
			}
			check("TLSConfig", err)
			c := &tls.Config{}
			check("Configure", cli.Configure(c, addr))
			if c.VerifyConnection != nil || c.GetClientCertificate != nil {
				t.Errorf("Configure(%q) changed the configuration it refused", addr)
			}
			conn, err := cli.DialContext(context.Background(), "tcp", addr)
			if conn != nil {
				conn.Close()
				t.Errorf("DialContext(%q) connected", addr)
			}
			check("DialContext", err)
		}()
	}
	// Through net/http, the request fails with the same error.
	_, err := cli.Transport().DialTLSContext(context.Background(), "tcp", "hostonly")
	var ae *AddressError
	if !errors.As(err, &ae) {
		t.Errorf("Transport: err = %v, want *AddressError", err)
	}
}
