package cli

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/dnstest"
	"github.com/keytool/keytool/jwk"
)

// dnsServer runs a TLS server on 127.0.0.1 that authorizes the client
// home's key and says "hello"; it returns its address as localhost:PORT
// (the name whose TLSA records dnstest serves), its port and its key.
func dnsServer(t *testing.T, clientHome string) (addr, port string, key *jwk.Key) {
	t.Helper()
	pub, err := jwk.ReadFile(filepath.Join(clientHome, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, key := tlsTestServer(t, pub[0])
	_, port, _ = net.SplitHostPort(a)
	return net.JoinHostPort("localhost", port), port, key
}

// tlsaFor is the zone-file line publishing k for port in dnstest.Origin.
func tlsaFor(t *testing.T, port string, k *jwk.Key) string {
	return dnstest.TLSA(t, port, k.SPKI(), dane.MatchSHA256)
}

// TestHostKeyDNSCommands: keytool connect and trust-host, as processes
// without a terminal, against a zone that nsd serves and unbound
// validates (internal/dnstest), in each case of docs/dns.md. The
// processes take the relative name localhost to be resolved with an empty
// search list, whatever the machine's (TestMain, dnsSearchEnv), or with
// the one a case gives.
func TestHostKeyDNSCommands(t *testing.T) {
	dnstest.Require(t)
	for _, tc := range []struct {
		name                  string
		signed, tamper, other bool
		silent                bool
		records               string // "none": a record for another port only; "ca": the key's hash under usages 0-2 only
		pinOther              bool
		pinned                bool   // pinned without a DNS comment (--yes)
		search                string // the keytool process's search list (dnsSearchEnv); none: an empty one
		args                  []string
		code                  int
		stdout, stderr        string
		pinComment            string
	}{
		{name: "signed: connect yes", signed: true, args: []string{"connect", "--verify-host-key-dns", "yes"}, stdout: "hello\n",
			stderr: `msg="host key found in DNS"`},
		{name: "signed: connect -v yes", signed: true, args: []string{"connect", "-v", "--verify-host-key-dns", "yes"}, stdout: "hello\n",
			stderr: `, DNS (DNSSEC-validated TLSA)` + "\n"},
		{name: "signed: trust-host yes pins", signed: true, args: []string{"trust-host", "--verify-host-key-dns", "yes"},
			stdout: "(pinned from a DNSSEC-validated TLSA record at _PORT._tcp.localhost.)\n", pinComment: "pinned from a DNSSEC-validated TLSA record at _PORT._tcp.localhost."},
		{name: "signed: connect no", signed: true, args: []string{"connect"}, code: 1, stderr: "there is no terminal to ask"},
		{name: "signed: connect ask", signed: true, args: []string{"connect", "--verify-host-key-dns", "ask"}, code: 1, stderr: "there is no terminal to ask"},
		{name: "unsigned: connect yes", args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: "not DNSSEC-validated: it proves nothing"},
		{name: "bogus: connect yes", signed: true, tamper: true, args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `level=WARN msg="host key not verified by DNS, falling back to the pins"`},
		{name: "bogus: trust-host yes", signed: true, tamper: true, args: []string{"trust-host", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: "DNSSEC Bogus"},
		{name: "another key: connect yes", signed: true, other: true, args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: "name another key"},
		{name: "another key: connect accept-new", signed: true, other: true, args: []string{"connect", "--verify-host-key-dns", "yes", "--strict-host-keys", "accept-new"}, code: 1,
			stderr: "which the DNSSEC-validated TLSA records at _PORT._tcp.localhost. do not name: not pinned\nEither the host has a new key and its DNS records are out of date"},
		{name: "another key pinned: connect yes", signed: true, pinOther: true, args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: "The host key of localhost:PORT has changed!"},
		// No record, and only records of CA usages: one line of note on
		// every path, and nothing accepted from DNS.
		{name: "no record: connect yes", signed: true, records: "none", args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `level=WARN msg="host key not verified by DNS, falling back to the pins" addr=localhost:PORT fingerprint=FP note="no TLSA record at _PORT._tcp.localhost."` + "\n"},
		{name: "no record: trust-host yes", signed: true, records: "none", args: []string{"trust-host", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `note="no TLSA record at _PORT._tcp.localhost."` + "\n"},
		{name: "no record: trust-host ask", signed: true, records: "none", args: []string{"trust-host", "--verify-host-key-dns", "ask"}, code: 1,
			stderr: `note="no TLSA record at _PORT._tcp.localhost."` + "\n"},
		{name: "no record: trust-host --yes", signed: true, records: "none", args: []string{"trust-host", "--yes", "--verify-host-key-dns", "yes"},
			stdout: "Pinned ECDSA P-256 key FP for localhost:PORT in ", stderr: `note="no TLSA record at _PORT._tcp.localhost."` + "\n", pinned: true},
		{name: "unsigned: trust-host --yes", args: []string{"trust-host", "--yes", "--verify-host-key-dns", "yes"},
			stdout: "Pinned ECDSA P-256 key FP for localhost:PORT in ", stderr: `note="a TLSA record at _PORT._tcp.localhost. matches the key, but the answer is not DNSSEC-validated: it proves nothing"` + "\n", pinned: true},
		{name: "CA usages only: connect yes", signed: true, records: "ca", args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `note="the TLSA records at _PORT._tcp.localhost. name no key (3 record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key)"` + "\n"},
		{name: "CA usages only: trust-host yes", signed: true, records: "ca", args: []string{"trust-host", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `(3 record(s) of a CA usage or certificate selector ignored: only usage 3, selector 1 names a key)"` + "\n"},
		// With a search list, the relative name localhost may be
		// resolved as localhost.svc.cluster.local: DNS is not asked, and
		// says so (docs/dns.md, "Relative names").
		{name: "search list: connect yes", signed: true, search: "svc.cluster.local cluster.local", args: []string{"connect", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `level=WARN msg="host key not verified by DNS, falling back to the pins" addr=localhost:PORT fingerprint=FP note="DNS not asked: relative name localhost: the system may resolve it through its search list (svc.cluster.local., cluster.local.) before trying it as given; write localhost. to use DNS"` + "\n"},
		{name: "search list: trust-host yes", signed: true, search: "corp.example", args: []string{"trust-host", "--verify-host-key-dns", "yes"}, code: 1,
			stderr: `note="DNS not asked: relative name localhost: the system may resolve it through its search list (corp.example.) before trying it as given; write localhost. to use DNS"` + "\n"},
		{name: "resolver down: connect yes", silent: true, args: []string{"connect", "--verify-host-key-dns", "yes", "--dns-timeout", "1s"}, code: 1,
			stderr: "no answer within 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.search != "" {
				t.Setenv(dnsSearchEnv, tc.search)
			}
			home := newClientHome(t)
			addr, port, key := dnsServer(t, home)
			published := key
			if tc.other {
				published, _ = jwk.Generate(jwk.EC256)
			}
			records := []string{tlsaFor(t, port, published)}
			switch tc.records {
			case "none":
				records = []string{tlsaFor(t, "1", published)}
			case "ca":
				records = dnstest.CATLSA(t, port, published.SPKI())
			}
			var resolver string
			if tc.silent {
				resolver = dnstest.Silent(t)
			} else {
				resolver = dnstest.Start(t, dnstest.Zone{Signed: tc.signed, Tamper: tc.tamper, Records: records}).Resolver
			}
			if tc.pinOther {
				other, _ := jwk.Generate(jwk.EC256)
				file := filepath.Join(t.TempDir(), "other.json")
				if err := jwk.WritePublicKeyFile(file, other, jwk.JWK, jwk.CreateNew); err != nil {
					t.Fatal(err)
				}
				if _, e, code := keytoolIn(t, home, "trust-host", addr, "--key", file); code != 0 {
					t.Fatal(e)
				}
			}
			args := append([]string{}, tc.args...)
			if len(args) > 1 { // --verify-host-key-dns given: the resolver too
				args = append(args, "--dns-resolver", resolver)
			}
			args = append(args, addr)
			start := time.Now()
			o, e, code := keytoolIn(t, home, args...)
			took := time.Since(start)
			fix := strings.NewReplacer("PORT", port, "FP", key.Fingerprint()).Replace
			if code != tc.code || !strings.Contains(o, fix(tc.stdout)) || !strings.Contains(e, fix(tc.stderr)) {
				t.Fatalf("keytool %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s\nwant %q and %q", strings.Join(args, " "), code, tc.code, o, e, fix(tc.stdout), fix(tc.stderr))
			}
			if n := strings.Count(e, "host key not verified by DNS"); n > 1 {
				t.Errorf("%d notes about DNS, want at most one:\n%s", n, e)
			}
			if tc.pinComment != "" || tc.pinned {
				pinned := pinnedKey(t, home, addr)
				if pinned == nil || !pinned.Equal(key) || pinned.Attrs.Comment() != fix(tc.pinComment) {
					t.Errorf("pin %v with comment %q", pinned, pinned.Attrs.Comment())
				}
			} else if !tc.pinOther {
				if _, err := os.Stat(pinFile(home, addr)); err == nil {
					t.Errorf("%s was pinned", addr)
				}
			}
			if tc.silent && took > time.Second+10*time.Second { // the bound, and slack for a loaded machine and a process start
				t.Errorf("with the resolver down, keytool took %v", took)
			}
		})
	}
}

// TestHostKeyDNSPromptInTerminal: under ask, the question in a real
// terminal (tmux) says what DNS said: OpenSSH's lines for a validated
// match and for no record, a note for an unsigned zone's.
func TestHostKeyDNSPromptInTerminal(t *testing.T) {
	dnstest.Require(t)
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	for _, tc := range []struct {
		name     string
		signed   bool
		noRecord bool // the record is for another port
		args     []string
		want     string
	}{
		{"connect, signed", true, false, []string{"connect", "--verify-host-key-dns", "ask"}, "Key ID: KEYID\nMatching host key fingerprint found in DNS.\n"},
		{"trust-host, signed", true, false, []string{"trust-host", "--verify-host-key-dns", "ask"}, "Matching host key fingerprint found in DNS.\n"},
		{"connect, unsigned, yes", false, false, []string{"connect", "--verify-host-key-dns", "yes"},
			"A matching host key fingerprint was found in DNS, but the answer is not DNSSEC-validated: it proves nothing.\n"},
		{"trust-host, no record", true, true, []string{"trust-host", "--verify-host-key-dns", "ask"}, "Key ID: KEYID\nNo matching host key fingerprint found in DNS.\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newClientHome(t)
			addr, port, key := dnsServer(t, home)
			recordPort := port
			if tc.noRecord {
				recordPort = "1"
			}
			d := dnstest.Start(t, dnstest.Zone{Signed: tc.signed, Records: []string{tlsaFor(t, recordPort, key)}})
			prompt := "(yes/no/once/[fingerprint])? "
			if tc.args[0] == "trust-host" {
				prompt = "(yes/no/[fingerprint])? "
			}
			argv := append([]string{"keytool", "-H", home}, tc.args...)
			argv = append(argv, "--dns-resolver", d.Resolver, addr)
			screen := runInTmux(t, argv, prompt, []string{"no"})
			want := strings.ReplaceAll(tc.want, "KEYID", key.KeyID())
			if !strings.Contains(screen, want) || !strings.Contains(screen, "Host key verification failed.\nEXIT=1") {
				t.Errorf("the screen lacks %q:\n%s", want, screen)
			}
			if pinnedKey(t, home, addr) != nil {
				t.Error("pinned after the answer no")
			}
		})
	}
}

// TestHostKeyDNSProxyClient: proxy --client checks its target at start
// against a validated TLSA record, with no terminal and no pin; the DNS
// flags are bad usage in server mode.
func TestHostKeyDNSProxyClient(t *testing.T) {
	dnstest.Require(t)
	home := newClientHome(t)
	addr, port, key := dnsServer(t, home)
	d := dnstest.Start(t, dnstest.Zone{Signed: true, Records: []string{tlsaFor(t, port, key)}})
	p := pxStart(t, "keytool", "-H", home, "proxy", "--client", "--listen", "127.0.0.1:0", "--target", addr,
		"--verify-host-key-dns", "yes", "--dns-resolver", d.Resolver)
	p.waitFor(t, `msg="host key found in DNS" addr=`+regexpQuote(addr)+` fingerprint=`+regexpQuote(key.Fingerprint()), 15*time.Second)
	p.waitFor(t, `msg="target verified" target=`+regexpQuote(addr)+` fingerprint=`+regexpQuote(key.Fingerprint())+` trust="DNS \(DNSSEC-validated TLSA\)"`, 15*time.Second)
	p.waitFor(t, `msg=listening`, 15*time.Second)
	p.stop(t)
	if _, err := os.Stat(pinFile(home, addr)); err == nil {
		t.Errorf("proxy --client pinned %s", addr)
	}

	_, e, code := keytoolIn(t, home, "proxy", "--listen", "127.0.0.1:0", "--target", addr, "--verify-host-key-dns", "yes")
	if code != 2 || !strings.Contains(e, "they are for --client") {
		t.Errorf("server mode with --verify-host-key-dns: exit %d\n%s", code, e)
	}
}
