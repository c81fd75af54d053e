// Package dnstest runs real DNS software for the tests of DANE host keys
// (package dane, tlsbridge, the command line): nsd serving a zone signed
// with ldns-signzone, and unbound validating it with the zone's trust
// anchor, both on the loopback interface on ports of their own, in a
// test's temporary directory. Nothing here is mocked: the answers, the
// signatures and the AD bit are those of the Debian packages nsd,
// ldnsutils and unbound (.ci/run installs them).
package dnstest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/keytool/keytool/dane"
	"github.com/keytool/keytool/internal/freeport"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/toolpath"
)

// Origin is the test zone: "localhost", because Go and every tool
// resolve it to the loopback interface without DNS, so that a client
// dials it while its TLSA records come from the zone served here.
const Origin = "localhost."

// tools are the programs a DNS test needs, and their Debian packages.
var tools = []struct{ name, pkg string }{
	{"nsd", "nsd"}, {"unbound", "unbound"}, {"ldns-keygen", "ldnsutils"}, {"ldns-signzone", "ldnsutils"},
}

// path finds a tool, also in the sbin directories a user's PATH may lack
// (the one lookup of the tests, internal/toolpath: TestDocs runs the
// walk-through of docs/dns.md with the same programs).
func path(name string) (string, error) {
	p, err := toolpath.Find(name)
	if err != nil {
		return "", fmt.Errorf("%w (Debian: apt-get install %s)", err, name)
	}
	return p, nil
}

// Require skips t, saying why, when a tool is missing: on a developer's
// machine only; .ci/run installs them all.
func Require(t testing.TB) {
	t.Helper()
	var missing, pkgs []string
	for _, tool := range tools {
		if _, err := path(tool.name); err != nil {
			missing = append(missing, tool.name)
			pkgs = append(pkgs, tool.pkg)
		}
	}
	if len(missing) > 0 {
		t.Skipf("SKIPPED, NOT PASSED: %s not installed (Debian: apt-get install %s); DANE against real DNS software is untested",
			strings.Join(missing, ", "), strings.Join(pkgs, " "))
	}
}

// TLSA is the zone-file line publishing the key whose DER
// SubjectPublicKeyInfo is spki for the TLS service on port of Origin,
// with the matching type given (dane.MatchSHA256…), as keytool
// dns-record prints it.
func TLSA(t testing.TB, port string, spki []byte, matchingType uint8) string {
	t.Helper()
	r, err := dane.RecordFor(spki, matchingType)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("_%s._tcp IN TLSA %s", port, r)
}

// CATLSA are the zone-file lines publishing the SHA-256 of spki for port
// of Origin under each usage that names a CA rather than the host's key —
// 0 (PKIX-TA), 1 (PKIX-EE), 2 (DANE-TA) — with selector 1: the very data
// of the key's own record, which only a reader that misreads the usage
// would take for the key.
func CATLSA(t testing.TB, port string, spki []byte) []string {
	t.Helper()
	r, err := dane.RecordFor(spki, dane.MatchSHA256)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, usage := range []uint8{0, 1, 2} {
		r.Usage = usage
		lines = append(lines, fmt.Sprintf("_%s._tcp IN TLSA %s", port, r))
	}
	return lines
}

// Zone is the test zone to serve.
type Zone struct {
	// Records are zone-file lines under Origin, such as
	// "_8443._tcp IN TLSA 3 1 1 HEX".
	Records []string
	// Signed signs the zone (ECDSA P-256, one key) and gives unbound its
	// trust anchor: answers are validated, with the AD bit.
	Signed bool
	// Tamper changes the last digit of every TLSA record after signing:
	// the signatures no longer verify, and unbound answers SERVFAIL
	// (bogus).
	Tamper bool
}

// DNS is a running authoritative server and validating resolver.
type DNS struct {
	Resolver      string // unbound: 127.0.0.1:PORT
	Authoritative string // nsd: 127.0.0.1:PORT
	logs          map[string]*testlog.Buffer
}

// Start serves z and starts a validating resolver for it; both stop when
// the test ends. It skips (Require) when a tool is missing.
func Start(t testing.TB, z Zone) *DNS {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, "zone.db")
	if err := os.WriteFile(zoneFile, []byte(zoneText(z.Records)), 0o644); err != nil {
		t.Fatal(err)
	}
	anchor := ""
	if z.Signed {
		zoneFile, anchor = sign(t, dir, zoneFile)
		if z.Tamper {
			tamper(t, zoneFile)
		}
	}
	d := &DNS{logs: map[string]*testlog.Buffer{}}
	nsdPort := freeport.Port(t)
	d.Authoritative = fmt.Sprintf("127.0.0.1:%d", nsdPort)
	conf := filepath.Join(dir, "nsd.conf")
	write(t, conf, fmt.Sprintf(nsdConf, nsdPort, dir, dir, dir, dir, dir, strings.TrimSuffix(Origin, "."), zoneFile))
	d.start(t, "nsd", "-d", "-c", conf)
	d.wait(t, d.Authoritative, "nsd")

	ubPort := freeport.Port(t)
	d.Resolver = fmt.Sprintf("127.0.0.1:%d", ubPort)
	ta := ""
	if anchor != "" {
		ta = "trust-anchor-file: " + anchor
	}
	conf = filepath.Join(dir, "unbound.conf")
	write(t, conf, fmt.Sprintf(unboundConf, ubPort, dir, ta, Origin, Origin, nsdPort))
	d.start(t, "unbound", "-d", "-c", conf)
	d.wait(t, d.Resolver, "unbound")
	return d
}

const nsdConf = `server:
	ip-address: 127.0.0.1
	port: %d
	username: ""
	chroot: ""
	zonesdir: %q
	database: ""
	pidfile: "%s/nsd.pid"
	xfrdfile: "%s/xfrd.state"
	xfrdir: %q
	zonelistfile: "%s/zone.list"
	server-count: 1
	do-ip6: no
	verbosity: 1
remote-control:
	control-enable: no
zone:
	name: %q
	zonefile: %q
`

const unboundConf = `server:
	interface: 127.0.0.1
	port: %d
	do-ip6: no
	username: ""
	chroot: ""
	directory: %q
	pidfile: ""
	do-daemonize: no
	use-syslog: no
	logfile: ""
	verbosity: 1
	num-threads: 1
	so-reuseport: no
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: no
	module-config: "validator iterator"
	ede: yes
	val-log-level: 2
	%s
	local-zone: %q nodefault
remote-control:
	control-enable: no
stub-zone:
	name: %q
	stub-addr: 127.0.0.1@%d
`

// zoneText is the zone file: SOA, NS, the loopback address, the records.
func zoneText(records []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 60\n", Origin)
	fmt.Fprintf(&b, "@ IN SOA ns.%s hostmaster.%s 1 3600 600 86400 60\n", Origin, Origin)
	fmt.Fprintf(&b, "@ IN NS ns.%s\nns IN A 127.0.0.1\n@ IN A 127.0.0.1\n", Origin)
	for _, r := range records {
		b.WriteString(r + "\n")
	}
	return b.String()
}

// sign makes a key, signs zoneFile with it and returns the signed file
// and the trust anchor (the key's DS record).
func sign(t testing.TB, dir, zoneFile string) (signed, anchor string) {
	out := run(t, dir, "ldns-keygen", "-a", "ECDSAP256SHA256", "-k", strings.TrimSuffix(Origin, "."))
	base := strings.TrimSpace(out)
	run(t, dir, "ldns-signzone", "-o", Origin, zoneFile, base)
	return zoneFile + ".signed", filepath.Join(dir, base+".ds")
}

var tlsaData = regexp.MustCompile(`(?m)^(\S+\s+\d+\s+IN\s+TLSA\s+\d+ \d+ \d+ [0-9a-fA-F]*)([0-9a-fA-F])$`)

// tamper changes the last hex digit of every TLSA record of a signed zone.
func tamper(t testing.TB, zoneFile string) {
	data, err := os.ReadFile(zoneFile)
	if err != nil {
		t.Fatal(err)
	}
	changed := tlsaData.ReplaceAllStringFunc(string(data), func(line string) string {
		last := line[len(line)-1]
		if last == '0' {
			return line[:len(line)-1] + "1"
		}
		return line[:len(line)-1] + "0"
	})
	if changed == string(data) {
		t.Fatalf("no TLSA record to tamper with in %s:\n%s", zoneFile, data)
	}
	write(t, zoneFile, changed)
}

func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	p, err := path(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr)
	}
	return string(out)
}

func write(t testing.TB, file, data string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// start runs a server in the foreground until the test ends.
func (d *DNS) start(t testing.TB, name string, args ...string) {
	t.Helper()
	p, err := path(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p, args...)
	log := &testlog.Buffer{}
	d.logs[name] = log
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("%s's output:\n%s", name, log.String())
		}
	})
}

// wait returns once the server at addr answers for the zone.
func (d *DNS) wait(t testing.TB, addr, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := new(dns.Msg)
		q.SetQuestion(Origin, dns.TypeSOA)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		m, _, err := (&dns.Client{}).ExchangeContext(ctx, q, addr)
		cancel()
		if err == nil && m.Rcode == dns.RcodeSuccess {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s at %s is not answering after 30 s (%v, %v); its output:\n%s", name, addr, m, err, d.logs[name].String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Silent is for the resolver-down case: it returns an address on which no
// resolver answers (a UDP port bound and never answered, so that queries
// time out instead of being refused by an ICMP error).
func Silent(t testing.TB) string { return SilentHeard(t, nil) }

// SilentHeard is Silent, and calls heard (when not nil) once, when the
// first query arrives: for the tests of a lookup cut short while it waits
// for an answer.
func SilentHeard(t testing.TB, heard func()) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64<<10)
		if _, _, err := c.ReadFrom(buf); err == nil && heard != nil {
			heard()
		}
		for { // read and drop the retries, until the test ends
			if _, _, err := c.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return c.LocalAddr().String()
}
