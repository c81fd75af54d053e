package tlsbridge

import (
	"bytes"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// The address in a question is what the caller dialled — for an HTTP
// client, a redirect's Location, whose host net/url takes with any
// printable-looking Unicode, a bidi override included (a resolver that
// sends the name to DNS as it is reaches it). Written as it is, a
// right-to-left override makes the question show another host
// ("lpt\u202emoc.elpmaxe…" reads as "…example.com"), which the user then
// answers about; so the address is printed as every other text keytool
// did not write (termtext.Safe): quoted, with the override escaped.
func TestTerminalQuotesTheAddress(t *testing.T) {
	const addr = "lpt\u202emoc.elpmaxe.attacker.example:443"
	k := mustGenerate(t, jwk.EC256)
	var out bytes.Buffer
	a, err := Terminal{In: strings.NewReader("no\n"), Out: &out}.AskUnknownHost(UnknownHost{Addr: addr, Key: k.PublicKey(), OtherAddresses: []string{"db.example:443"}})
	if a != No || err != nil {
		t.Fatalf("answer %v, %v", a, err)
	}
	out2 := bytes.Buffer{}
	if _, err := (Terminal{In: strings.NewReader("no\n"), Out: &out2}).AskAnnouncedKey(AnnouncedKey{Addr: addr, Current: k.PublicKey(), Next: mustGenerate(t, jwk.EC256).PublicKey()}); err != nil {
		t.Fatal(err)
	}
	for what, s := range map[string]string{"the unknown-host question": out.String(), "the announced-key question": out2.String()} {
		if strings.ContainsRune(s, '\u202e') || !strings.Contains(s, `\u202e`) {
			t.Errorf("%s shows the address as it is:\n%s", what, s)
		}
	}
}
