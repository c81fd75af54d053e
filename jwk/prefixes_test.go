package jwk

import (
	"bytes"
	"strings"
	"testing"
)

// A from network with host bits set would widen silently when masked
// (127.0.0.1/0 is every address), and an IPv4-mapped IPv6 network never
// matches: both are refused with the form meant, in a key file as on the
// command line.
func TestParsePrefixesRefusesHostBitsAndMappedNetworks(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1/0", `"127.0.0.1/0" has host bits set: did you mean 0.0.0.0/0, or 127.0.0.1/32?`},
		{"10.1.2.3/8", `did you mean 10.0.0.0/8, or 10.1.2.3/32?`},
		{"fe80::1/64", `did you mean fe80::/64, or fe80::1/128?`},
		{"::ffff:127.0.0.0/104", `IPv4-mapped IPv6 network, which never matches (addresses are compared in their IPv4 form): use the IPv4 form 127.0.0.0/8`},
		{"::ffff:10.0.0.1/128", `use the IPv4 form 10.0.0.1/32`},
	} {
		_, err := ParsePrefixes([]string{"192.168.0.0/16", tc.in})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParsePrefixes(%s) = %v, want %q", tc.in, err, tc.want)
		}
	}
	for _, ok := range []string{"0.0.0.0/0", "::/0", "10.0.0.0/8", "10.1.2.3/32", "::ffff:10.0.0.1", "fe80::/64"} {
		if _, err := ParsePrefixes([]string{ok}); err != nil {
			t.Errorf("ParsePrefixes(%s): %v", ok, err)
		}
	}

	// A key file carrying such a from is refused when parsed, JWK and
	// OpenSSH alike, with the same reason.
	k := mustGenerate(t, EC256)
	pub, err := k.PublicKey().MarshalPublic(JWK)
	if err != nil {
		t.Fatal(err)
	}
	data := append(bytes.TrimSuffix(bytes.TrimSpace(pub), []byte("}")), `,"from":["127.0.0.1/0"]}`...)
	if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), "has host bits set") {
		t.Errorf("Parse(JWK with from 127.0.0.1/0) = %v, want the host-bits refusal", err)
	}
	line := `from="::ffff:127.0.0.0/104" ` + string(mustMarshalSSH(t, k))
	if _, err := Parse([]byte(line)); err == nil || !strings.Contains(err.Error(), "use the IPv4 form 127.0.0.0/8") {
		t.Errorf("Parse(%s) = %v, want the IPv4-mapped refusal", line, err)
	}
}
