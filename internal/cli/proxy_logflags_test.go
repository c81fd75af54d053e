package cli

import (
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// By default the proxy logs no line per admitted connection (only at
// --log-level debug): 403,000 lines in one load test was the complaint.
// --log-format json writes one JSON object a line; a refusal is still
// logged at the default level; bad values are usage errors.
func TestProxyLogFlags(t *testing.T) {
	pxNeed(t, "openssl")
	dir := t.TempDir()
	home := pxGen(t)
	crt, key, _ := pxAuthorizedKey(t, home, dir, "alice")
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	roundTrip := func(addr string) {
		conn := pxTLSClient(t, addr, crt, key)
		if _, err := conn.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatal(err)
		}
		conn.Close()
	}
	for _, tc := range []struct {
		args     []string
		perConn  bool
		jsonLine bool
	}{
		{[]string{"--log-level", "info"}, false, false},
		{[]string{"--log-level", "debug", "--log-format", "json"}, true, true},
		{[]string{"--log-level", "info", "--log-format", "json"}, false, true},
	} {
		p := pxStart(t, "keytool", append([]string{"-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", echo.Addr().String()}, tc.args...)...)
		var addr string
		if tc.jsonLine {
			m := p.waitFor(t, `"msg":"listening","addr":"(127\.0\.0\.1:\d+)"`, 15*time.Second)
			addr = m[1]
		} else {
			addr = p.waitFor(t, `msg=listening addr=(127\.0\.0\.1:\d+)`, 15*time.Second)[1]
		}
		roundTrip(addr)
		// A refused client (no certificate) is logged at any level.
		if c, err := net.Dial("tcp", addr); err == nil {
			_, _ = c.Write([]byte("not TLS\r\n\r\n"))
			c.Close()
		}
		if tc.jsonLine {
			p.waitFor(t, `"msg":"refused"`, 10*time.Second)
		} else {
			p.waitFor(t, `msg=refused`, 10*time.Second)
		}
		p.stop(t)
		logs := p.stderr.String()
		if got := strings.Contains(logs, "accepted") && strings.Contains(logs, "alice"); got != tc.perConn {
			t.Errorf("%v: a line for alice's connection: %v, want %v\n%s", tc.args, got, tc.perConn, logs)
		}
		if tc.jsonLine {
			for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
				var v map[string]any
				if err := json.Unmarshal([]byte(line), &v); err != nil || v["msg"] == nil || v["level"] == nil {
					t.Errorf("%v: not a JSON log line: %q (%v)", tc.args, line, err)
				}
			}
		}
	}
	for _, bad := range [][]string{{"--log-level", "loud"}, {"--log-format", "xml"}} {
		_, e, code := keytoolIn(t, home, append([]string{"proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"}, bad...)...)
		if code != 2 || !strings.Contains(e, bad[0]) {
			t.Errorf("%v: exit %d, %q; want a usage error naming the flag", bad, code, e)
		}
	}
}

// --log-format json writes an entry's name that is not shown as it is (a
// file of an earlier version: "ad\u200bmin", a bidi override) quoted with
// the character escaped, as the text format does, and not as JSON's raw
// U+200B, which a log viewer shows as "admin"; other names and values as
// they are (docs/design.md, "Names").
func TestProxyJSONLogEscapesNames(t *testing.T) {
	for format, want := range map[string][]string{
		"text": {`name="ad\u200bmin"`, `name="x\u202eevil"`, `name="ünïcode 世界" file="a\u200bb"`},
		"json": {`"name":"\"ad\\u200bmin\""`, `"name":"\"x\\u202eevil\""`, "\"name\":\"ünïcode 世界\",\"file\":\"a\u200bb\""},
	} {
		var buf strings.Builder
		log, err := proxyLogger(&cli{stderr: &buf}, proxyOptions{logLevel: "info", logFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("accepted", "name", "ad\u200bmin")
		log.Info("accepted", "name", "x\u202eevil")
		log.Info("accepted", "name", "ünïcode 世界", "file", "a\u200bb")
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		if len(lines) != len(want) {
			t.Fatalf("%s: %d lines:\n%s", format, len(lines), buf.String())
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("%s: %s\nwant it to hold %s", format, lines[i], w)
			}
		}
	}
}
