package tlsbridge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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

func TestChangedHostKeyIsRefused(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	_, ts := serverFor(t, cli)
	old := mustGenerate(t, jwk.EC256) // the key the host had before its "reinstall"
	cli.pin(t, ts.addr(), old)
	for _, policy := range []Policy{Strict, Ask, AcceptNew} {
		_, err := roundTrip(ts.addr(), cli.client(t, ClientOptions{Policy: policy, Prompt: PromptFunc(func(UnknownHost) (Answer, error) {
			t.Error("the prompt was asked about a changed key")
			return Yes, nil
		})}).TLSConfig(ts.addr()))
		var changed *knownhosts.KeyChangedError
		if !errors.As(err, &changed) {
			t.Fatalf("policy %s: err = %v, want *knownhosts.KeyChangedError", policy, err)
		}
		msg := err.Error()
		for _, want := range []string{old.Fingerprint(), "man-in-the-middle", "keytool trust-host --remove", pinFiles(t, cli)[0]} {
			if !strings.Contains(msg, want) {
				t.Errorf("changed-key message lacks %q:\n%s", want, msg)
			}
		}
	}
}

// A server presenting a trusted key that is pinned for another address is
// unknown at this address, not trusted.
func TestKeyPinnedForAnotherAddress(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	cli.pin(t, "127.0.0.1:1", srv.id.Key) // the right key, pinned for another port
	_, err := roundTrip(ts.addr(), cli.client(t, ClientOptions{Policy: Strict}).TLSConfig(ts.addr()))
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
			_, err := roundTrip(ts.addr(), cli.client(t, tc.opts).TLSConfig(ts.addr()))
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
				if _, err := roundTrip(ts.addr(), cli.client(t, ClientOptions{Policy: Strict}).TLSConfig(ts.addr())); err != nil {
					t.Errorf("after pinning, strict connection failed: %v", err)
				}
			}
			if tc.name == "ask non-interactive" && !strings.Contains(err.Error(), "keytool trust-host "+ts.addr()+" --fingerprint "+srv.id.Key.Fingerprint()) {
				t.Errorf("non-interactive refusal does not say how to pin:\n%v", err)
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
		_, err := roundTrip(ts.addr(), cli.client(t, ClientOptions{Policy: policy}).TLSConfig(ts.addr()))
		var revoked *knownhosts.RevokedError
		if !errors.As(err, &revoked) {
			t.Errorf("policy %s: err = %v, want *knownhosts.RevokedError", policy, err)
		}
	}
	if err := os.RemoveAll(filepath.Join(cli.dir, "revoked_keys.d")); err != nil {
		t.Fatal(err)
	}
}
