package tlsbridge

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
)

// TestUnknownHostOtherAddresses: a key already pinned for other addresses
// reaches the prompt with them (from knownhosts.Store.AddressesOf), the
// dialled address left out; a store without AddressesOf still prompts,
// with none.
func TestUnknownHostOtherAddresses(t *testing.T) {
	cli := newHome(t, jwk.EC256)
	srv, ts := serverFor(t, cli)
	cli.pin(t, "127.0.0.1:1", srv.id.Key)
	cli.pin(t, "db.example:7443", srv.id.Key)
	cli.pin(t, "other.example:1", mustGenerate(t, jwk.EC256)) // another key

	var asked []UnknownHost
	prompt := PromptFunc(func(h UnknownHost) (Answer, error) {
		asked = append(asked, h)
		return Once, nil
	})
	if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{Policy: Ask, Prompt: prompt}), ts.addr())); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || !slices.Equal(asked[0].OtherAddresses, []string{"127.0.0.1:1", "db.example:7443"}) {
		t.Fatalf("asked %+v", asked)
	}

	// A store that cannot list addresses: the same question, no names.
	asked = nil
	c := cli.client(t, ClientOptions{Policy: Ask, Prompt: prompt, Hosts: plainHosts{cli.host}})
	if _, err := roundTrip(ts.addr(), mustConfig(t, c, ts.addr())); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 1 || asked[0].OtherAddresses != nil {
		t.Fatalf("asked %+v", asked)
	}
}

// plainHosts is a HostKeys with only the interface's methods.
type plainHosts struct{ s *knownhosts.Store }

func (p plainHosts) Decide(addr string, sum [32]byte) knownhosts.Decision {
	return p.s.Decide(addr, sum)
}
func (p plainHosts) Add(addr string, k *jwk.Key) (string, error) { return p.s.Add(addr, k) }

// TestTerminalOtherNamesAndVisual: the terminal lists the other addresses
// as ssh does, or says there are none, and draws the key's randomart only
// when Visual is set.
func TestTerminalOtherNamesAndVisual(t *testing.T) {
	k := mustGenerate(t, jwk.EC256)
	ask := func(term Terminal, h UnknownHost) string {
		var out bytes.Buffer
		term.In, term.Out = strings.NewReader("no\n"), &out
		if a, err := term.AskUnknownHost(h); a != No || err != nil {
			t.Fatalf("%v, %v", a, err)
		}
		return out.String()
	}
	out := ask(Terminal{}, UnknownHost{Addr: "new.example:443", Key: k, OtherAddresses: []string{"old.example:443", "10.0.0.5:443"}})
	want := "The ECDSA P-256 host key for new.example:443 is known by the following other names/addresses:\n    old.example:443\n    10.0.0.5:443\n"
	if !strings.Contains(out, want) || strings.Contains(out, "not known by any other names") || strings.Contains(out, k.Randomart()) {
		t.Errorf("got\n%s", out)
	}
	out = ask(Terminal{Visual: true}, UnknownHost{Addr: "new.example:443", Key: k})
	if !strings.Contains(out, "This key is not known by any other names.\n") ||
		!strings.Contains(out, "key fingerprint is "+k.Fingerprint()+".\n"+k.Randomart()+"\nKey ID: ") {
		t.Errorf("got\n%s", out)
	}
}
