package faillog

import (
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
)

const msgFailed = "handshake failed"

// TestIntervalEndLogsCount: the end of the interval logs the count by
// itself, without a later failure or Flush.
func TestIntervalEndLogsCount(t *testing.T) {
	// (Two failures one call apart fall in one interval of a second, however loaded
	// the machine.)
	own := &testlog.Buffer{}
	fl := New(own.Logger())
	fl.interval = time.Second
	ip := netip.MustParseAddr("192.0.2.1")
	for range 2 {
		fl.Failed(ip, slog.LevelWarn, msgFailed, "reason", "EOF", "remote", ip.String()+":1234", "reason", "EOF")
	}
	re := regexp.MustCompile(`msg="handshake failed" remote=192\.0\.2\.1 reason=EOF repeated=1 in=\d+s\n`)
	for deadline := time.Now().Add(30 * time.Second); !re.MatchString(own.String()); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no count logged at the end of the interval:\n%s", own.String())
		}
	}
	fl.Flush()
}

// TestSources: the failure log counts per source and kind — a
// second source is logged at once while the first is counted — and
// remembers a bounded number of them: a source forgotten to make room
// has its count logged first.
func TestSources(t *testing.T) {
	logs := &testlog.Buffer{}
	f := New(logs.Logger())
	f.interval, f.max = time.Hour, 2
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	fail := func(ip netip.Addr) {
		f.Failed(ip, slog.LevelWarn, msgFailed, "reason", "EOF", "remote", ip.String()+":1234", "reason", "EOF")
	}
	for i := 0; i < 50; i++ {
		fail(a)
	}
	fail(b)
	fail(b)
	want := "msg=\"handshake failed\" remote=192.0.2.1:1234 reason=EOF\n" +
		"msg=\"handshake failed\" remote=192.0.2.2:1234 reason=EOF\n"
	if got := stripTime(logs.String()); got != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}
	fail(c) // the log is full: a, logged first, is forgotten, with its count
	want += `msg="handshake failed" remote=192.0.2.1 reason=EOF repeated=49 in=X` + "\n" +
		"msg=\"handshake failed\" remote=192.0.2.3:1234 reason=EOF\n"
	if got := stripTime(logs.String()); got != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}
	if len(f.m) != 2 {
		t.Errorf("%d sources remembered, want at most 2", len(f.m))
	}
	f.Flush()
	want += `msg="handshake failed" remote=192.0.2.2 reason=EOF repeated=1 in=X` + "\n"
	if got := stripTime(logs.String()); got != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}
}

// stripTime removes the time and level of log lines, and the length of
// a count's interval.
func stripTime(s string) string {
	s = regexp.MustCompile(`(?m)^time=\S+ level=\S+ `).ReplaceAllString(s, "")
	return regexp.MustCompile(` in=\S+\n`).ReplaceAllString(s, " in=X\n")
}

// TestSourceIsIPv6Slash64: an IPv6 client may send from any
// address of its /64 — one per connection — so the failures of a /64 are
// one source's: 30 addresses of one /64 make one line in full and one
// count (found by review: each address was a source of its own, logged in
// full); another /64 is another source.
func TestSourceIsIPv6Slash64(t *testing.T) {
	logs := &testlog.Buffer{}
	f := New(logs.Logger())
	f.interval = time.Hour
	fail := func(ip netip.Addr) {
		f.Failed(ip, slog.LevelWarn, msgFailed, "reason", "EOF", "remote", netip.AddrPortFrom(ip, 1234).String(), "reason", "EOF")
	}
	base := netip.MustParseAddr("2001:db8:1:2::").As16()
	for i := range 30 {
		a := base
		a[8], a[15] = byte(i), byte(i+1)
		fail(netip.AddrFrom16(a))
	}
	fail(netip.MustParseAddr("2001:db8:1:3::1"))
	f.Flush()
	want := "msg=\"handshake failed\" remote=[2001:db8:1:2::1]:1234 reason=EOF\n" +
		"msg=\"handshake failed\" remote=[2001:db8:1:3::1]:1234 reason=EOF\n" +
		"msg=\"handshake failed\" remote=2001:db8:1:2::/64 reason=EOF repeated=29 in=X\n"
	if got := stripTime(logs.String()); got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}

// TestFailedAll: failures counted for all sources together (FailedAll)
// are one line in full and one count, remote=all, from however many
// sources; a source's own failures of the same message and kind are
// counted apart.
func TestFailedAll(t *testing.T) {
	logs := &testlog.Buffer{}
	f := New(logs.Logger())
	f.interval = time.Hour
	for i := range 20 {
		ip := netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
		f.FailedAll(slog.LevelWarn, msgFailed, "reason", "busy", "remote", ip.String()+":1234", "reason", "busy")
	}
	own := netip.MustParseAddr("192.0.2.1")
	for range 2 {
		f.Failed(own, slog.LevelWarn, msgFailed, "reason", "busy", "remote", own.String()+":1234", "reason", "busy")
	}
	f.Flush()
	got := strings.Split(stripTime(logs.String()), "\n")
	slices.Sort(got[2:]) // the counts, in no order
	want := []string{
		`msg="handshake failed" remote=192.0.2.1:1234 reason=busy`,
		`msg="handshake failed" remote=192.0.2.1:1234 reason=busy`,
		"",
		`msg="handshake failed" remote=192.0.2.1 reason=busy repeated=1 in=X`,
		`msg="handshake failed" remote=all reason=busy repeated=19 in=X`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
