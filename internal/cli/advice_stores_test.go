package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/keytool/keytool/knownhosts"
)

// A key pinned without an address, presented in a certificate that does
// not name the host dialled: the advice says how to pin it for the address
// here, with the user's own -H and -i, and — when the certificate names no
// host — how the server's identity saves names, a command for the server's
// home, which the user's -H and -i would point at this one (gen there
// would touch this home's identity): spelled bare, as the advice for the
// server's administrator in advice_enroll.go is.
func TestAdviseNameMismatch(t *testing.T) {
	c := &cli{home: "/srv/my home", homeGiven: "/srv/my home", identity: "id.json"}
	at := "keytool -H '/srv/my home' -i id.json "
	pin := "\n  " + at + "trust-host 127.0.0.1:8443 --fingerprint SHA256:s"
	for _, tc := range []struct {
		names []string
		want  string
	}{
		{nil, "Its certificate names no host (the server's identity can save names, keeping its key, with: keytool gen --host NAME --keep-key), or"},
		{[]string{"db.example"}, "Connect by a name its certificate names, or"},
	} {
		err := &knownhosts.NameMismatchError{Addr: "127.0.0.1:8443", Host: "127.0.0.1", Fingerprint: "SHA256:s", File: "f.json", Names: tc.names}
		got := c.advise(err)
		if !strings.Contains(got, tc.want) || !strings.HasSuffix(got, pin) || strings.Count(got, "keytool") != 1+strings.Count(tc.want, "keytool") {
			t.Errorf("names %q: advice\n%s\nwant %q and the pin command %q, and no other command", tc.names, got, tc.want, pin)
		}
	}
}

// proxy --enroll with --store is bad usage (enrollment writes to the
// home's authorized_keys.d), and the authorize command it gives instead is
// the user's own: with their -H and --store, as every command keytool
// suggests for the user's home (c.command). The core keytool refuses an
// etcd store before its flags are checked, so this is tested here rather
// than in a script.
func TestProxyEnrollWithStoreAdvice(t *testing.T) {
	c := &cli{home: "/srv/my home", homeGiven: "/srv/my home", store: storeFlags{url: "etcd://127.0.0.1:2379/fleet"}}
	err := checkProxyFlags(c, proxyOptions{enroll: true, logLevel: "info", logFormat: "text", listen: "127.0.0.1:0", target: "127.0.0.1:1"})
	want := "authorize with: keytool -H '/srv/my home' --store etcd://127.0.0.1:2379/fleet authorize --name NAME FILE"
	var usage *usageError
	if !errors.As(err, &usage) || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("got %v, want a usage error ending %q", err, want)
	}
}
