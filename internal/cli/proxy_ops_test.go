package cli

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// pxNotifySocket is a datagram socket where a test receives sd_notify
// messages, as systemd does for a Type=notify unit: NOTIFY_SOCKET names it
// in the environment of the processes the test starts.
func pxNotifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	// A short path: a unix socket's name is at most 107 bytes.
	dir, err := os.MkdirTemp("", "sd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return conn
}

// pxNotified waits for the next sd_notify datagram.
func pxNotified(t *testing.T, conn *net.UnixConn, timeout time.Duration) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no sd_notify message within %v: %v", timeout, err)
	}
	return string(buf[:n])
}

// pxGet fetches a URL and returns the status and body.
func pxGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// pxScrape fetches /metrics and parses it as Prometheus does.
func pxScrape(t *testing.T, base string) (string, map[string]*pxFamily) {
	t.Helper()
	code, body := pxGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v\n%s", err, body)
	}
	out := map[string]*pxFamily{}
	for name, f := range fams {
		pf := &pxFamily{values: map[string]float64{}}
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			pf.values[strings.Join(labels, ",")] = v
		}
		out[name] = pf
	}
	return body, out
}

// pxFamily is a metric's values by their labels ("reason=key,result=admitted").
type pxFamily struct{ values map[string]float64 }

func (f *pxFamily) get(labels string) float64 {
	if f == nil {
		return -1
	}
	v, ok := f.values[labels]
	if !ok {
		return -1
	}
	return v
}

// TestProxyOpsEndpointsAndSystemd runs keytool proxy --metrics-listen as
// systemd would run a Type=notify unit, with a datagram socket in
// NOTIFY_SOCKET: READY=1 arrives once the authorized keys are loaded;
// /healthz and /readyz answer; /metrics counts an admitted and a refused
// handshake, passes promtool check metrics, and is scraped during a load
// of 200 connections (every scrape parses, the counters only grow and end
// exact); a revocation file that cannot be read makes /readyz fail (503)
// and keytool_trust_revocation_failed 1, and its removal ready again; on
// SIGTERM, STOPPING=1 arrives and /readyz fails while an open connection
// drains, which still completes.
func TestProxyOpsEndpointsAndSystemd(t *testing.T) {
	pxNeed(t, "openssl", "python3", "promtool")
	const page = "observed\n"
	target := pxPython(t, pxServeFile(t, page))
	home := pxGen(t)
	dir := t.TempDir()
	crt, key, _ := pxAuthorizedKey(t, home, dir, "client")
	strangerCrt, strangerKey, _ := pxOpenSSLKey(t, dir, "stranger")
	notify := pxNotifySocket(t)

	px, addr := pxProxy(t, home, "--target", target, "--metrics-listen", "127.0.0.1:0")
	if msg := pxNotified(t, notify, 15*time.Second); msg != "READY=1\nSTATUS=listening" {
		t.Fatalf("first sd_notify message %q, want READY=1", msg)
	}
	// READY=1 comes after the first load of the trust: its line is
	// logged before.
	px.waitFor(t, `msg=identity .*authorized_keys=1`, time.Second)
	m := px.waitFor(t, `msg="serving health and metrics" addr=(127\.0\.0\.1:\d+)`, 5*time.Second)
	base := "http://" + m[1]
	if code, body := pxGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body := pxGet(t, base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz: %d %q", code, body)
	}

	dial := func(crt, key string) (*tls.Conn, error) { return pxDialTLS(t, addr, crt, key) }
	get := func() error {
		conn, err := dial(crt, key)
		if err != nil {
			return err
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /page.txt HTTP/1.0\r\n\r\n"); err != nil {
			return err
		}
		resp, err := io.ReadAll(conn)
		if err != nil || !strings.HasSuffix(string(resp), page) {
			return fmt.Errorf("response %q, %v", resp, err)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatal(err)
	}
	// The stranger's handshake fails (in TLS 1.3, on the first read).
	if conn, err := dial(strangerCrt, strangerKey); err == nil {
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if err == nil {
			t.Fatal("an unknown key got in")
		}
	}
	px.waitFor(t, `msg=refused .*is not authorized`, 5*time.Second)

	text, fams := pxScrape(t, base)
	hs := fams["keytool_proxy_handshakes_total"]
	if hs.get("reason=key,result=admitted") != 1 || hs.get("reason=unknown,result=refused") != 1 || hs.get("reason=revoked,result=refused") != 0 {
		t.Fatalf("handshakes: %v", hs.values)
	}
	if v := fams["keytool_trust_keys"].get("store=authorized"); v != 1 {
		t.Fatalf("keytool_trust_keys{store=authorized} = %v, want 1", v)
	}
	if v := fams["keytool_proxy_bytes_total"].get("direction=out"); v < float64(len(page)) {
		t.Fatalf("keytool_proxy_bytes_total{direction=out} = %v", v)
	}
	if out, msg, code := pxRun(t, text, "promtool", "check", "metrics"); code != 0 {
		t.Fatalf("promtool check metrics: exit %d\n%s%s", code, out, msg)
	}

	// Scraped during load: 200 connections from 10 workers.
	const workers, each = 10, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				if err := get(); err != nil {
					errs <- err
				}
			}
		})
	}
	loadDone := make(chan struct{})
	go func() { wg.Wait(); close(loadDone) }()
	scrapes, last := 0, 1.0
	for done := false; !done; {
		select {
		case <-loadDone:
			done = true
		case <-time.After(20 * time.Millisecond):
		}
		_, fams := pxScrape(t, base)
		v := fams["keytool_proxy_handshakes_total"].get("reason=key,result=admitted")
		if v < last {
			t.Fatalf("admitted handshakes went from %v to %v between scrapes", last, v)
		}
		last = v
		scrapes++
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if last != 1+workers*each {
		t.Fatalf("after the load: %v admitted handshakes, want %d", last, 1+workers*each)
	}
	// A connection is counted closed when the proxy has seen both sides
	// end, which may be just after the client saw its response.
	if pxUntil(10*time.Second, func() bool {
		_, fams = pxScrape(t, base)
		return fams["keytool_proxy_open_connections"].get("") == 0
	}) < 0 {
		t.Fatalf("open connections after the load: %v", fams["keytool_proxy_open_connections"].get(""))
	}
	t.Logf("%d scrapes during a load of %d connections", scrapes, workers*each)

	// A revocation file that cannot be read fails closed: not ready.
	broken := filepath.Join(home, "revoked_keys.d", "broken.json")
	pxWrite(t, broken, "{not json")
	// Seen through inotify within a second, or, when the machine has run
	// out of inotify instances (other test runs), by the rescan once a
	// minute: the wait allows for both.
	if pxUntil(90*time.Second, func() bool { code, _ := pxGet(t, base+"/readyz"); return code == 503 }) < 0 {
		t.Fatal("/readyz still ready with an unreadable revocation file")
	}
	code, body := pxGet(t, base+"/readyz")
	if !strings.Contains(body, "trust store authorized: a revocation input cannot be read") || strings.Contains(body, "broken.json") {
		t.Fatalf("/readyz: %d %q (want the reason, without the file's name)", code, body)
	}
	_, fams = pxScrape(t, base)
	if fams["keytool_trust_revocation_failed"].get("store=authorized") != 1 || fams["keytool_trust_reloads_total"].get("store=authorized") < 1 ||
		fams["keytool_trust_reload_duration_seconds"].get("store=authorized") < 1 || fams["keytool_trust_skipped_files"].get("store=authorized") != 1 {
		t.Fatalf("metrics with a broken revocation file:\n%v\n%v\n%v", fams["keytool_trust_revocation_failed"], fams["keytool_trust_reloads_total"], fams["keytool_trust_skipped_files"])
	}
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if pxUntil(90*time.Second, func() bool { code, _ := pxGet(t, base+"/readyz"); return code == 200 }) < 0 {
		t.Fatal("/readyz not ready again once the revocation file is gone")
	}

	// SIGTERM with a connection open: STOPPING=1, not ready, the
	// connection completes.
	conn, err := dial(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /page.txt HTTP/1.0\r\n"); err != nil {
		t.Fatal(err)
	}
	if pxUntil(5*time.Second, func() bool { return strings.Count(px.stderr.String(), "msg=accepted ") == 2+workers*each }) < 0 {
		t.Fatal("the proxy did not log the connection accepted")
	}
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if msg := pxNotified(t, notify, 10*time.Second); msg != "STOPPING=1\nSTATUS=draining" {
		t.Fatalf("sd_notify message on SIGTERM %q, want STOPPING=1", msg)
	}
	if code, body := pxGet(t, base+"/readyz"); code != 503 || !strings.Contains(body, "not accepting connections") {
		t.Fatalf("/readyz while draining: %d %q", code, body)
	}
	if _, err := io.WriteString(conn, "\r\n"); err != nil {
		t.Fatal(err)
	}
	if resp, err := io.ReadAll(conn); err != nil || !strings.HasSuffix(string(resp), page) {
		t.Fatalf("the draining connection: %q, %v", resp, err)
	}
	conn.Close()
	if code := px.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
}

// TestProxyDrainTimeoutCuts: on SIGTERM with --drain-timeout 1s, a
// connection that does not finish is cut when the drain timeout passes —
// not before — and the proxy exits 0.
func TestProxyDrainTimeoutCuts(t *testing.T) {
	pxNeed(t, "openssl", "python3")
	target := pxPython(t, pxServeFile(t, "never sent\n"))
	home := pxGen(t)
	dir := t.TempDir()
	crt, key, _ := pxAuthorizedKey(t, home, dir, "slow")
	px, addr := pxProxy(t, home, "--target", target, "--drain-timeout", "1s")
	conn := pxTLSClient(t, addr, crt, key)
	// Half a request: the connection stays open, waiting for the rest.
	if _, err := io.WriteString(conn, "GET /page.txt HTTP/1.0\r\n"); err != nil {
		t.Fatal(err)
	}
	px.waitFor(t, `msg=accepted`, 5*time.Second)
	signalled := time.Now()
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(conn)
	cut := time.Since(signalled)
	if err == nil && cut < 900*time.Millisecond {
		t.Fatalf("the connection ended %v after SIGTERM, before the drain timeout", cut)
	}
	if cut < 900*time.Millisecond || cut > 10*time.Second {
		t.Fatalf("the connection was cut %v after SIGTERM, want about 1s (--drain-timeout)", cut)
	}
	if code := px.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	px.waitFor(t, `level=WARN msg="drain timeout: cutting the connections still open" timeout=1s`, time.Second)
}

// TestProxyHTTPDrainClosesIdle: in --http mode, SIGTERM closes an idle
// keep-alive connection at once (Go's HTTP client sees it closed), so the
// proxy exits without waiting for --drain-timeout (30 s).
func TestProxyHTTPDrainClosesIdle(t *testing.T) {
	pxNeed(t, "openssl", "python3")
	target := pxPython(t, pxServeFile(t, "kept alive\n"))
	px, addr, crt, key, _ := pxHTTPProxy(t, t.TempDir(), target, "--drain-timeout", "30s")
	cert, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + addr + "/page.txt")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "kept alive\n" || resp.ProtoMajor != map[bool]int{false: 1, true: 2}[h2] {
			t.Fatalf("HTTP/2 %v: %s %q", h2, resp.Proto, body)
		}
	}
	// Two idle connections (HTTP/1.1 and HTTP/2) are open now.
	if pxUntil(5*time.Second, func() bool { return strings.Count(px.stderr.String(), "msg=accepted") == 2 }) < 0 {
		t.Fatal("two connections were not accepted")
	}
	signalled := time.Now()
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := px.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if took := time.Since(signalled); took > 10*time.Second {
		t.Fatalf("the proxy took %v to drain two idle keep-alive connections", took)
	}
	// Both are normally still open at the signal; on a loaded machine the
	// HTTP/1.1 one is now and then closed before it (the client's idle
	// connection going away is not what this test is about): at least one.
	px.waitFor(t, `msg="stopped accepting; draining open connections" signal=terminated open=[12] `, time.Second)
	px.waitFor(t, `msg="drained; exiting"`, time.Second)
}

// TestProxyWatchdog: under a unit with WatchdogSec= (WATCHDOG_USEC in the
// environment), the proxy sends WATCHDOG=1 at half the interval, after
// READY=1.
func TestProxyWatchdog(t *testing.T) {
	pxNeed(t, "python3")
	target := pxPython(t, pxServeFile(t, "-\n"))
	home := pxGen(t)
	notify := pxNotifySocket(t)
	t.Setenv("WATCHDOG_USEC", "400000") // 0.4 s: a message every 0.2 s
	start := time.Now()
	pxProxy(t, home, "--target", target)
	if msg := pxNotified(t, notify, 15*time.Second); msg != "READY=1\nSTATUS=listening" {
		t.Fatalf("first message %q, want READY=1", msg)
	}
	for i := range 3 {
		if msg := pxNotified(t, notify, 5*time.Second); msg != "WATCHDOG=1" {
			t.Fatalf("message %d after READY=1: %q, want WATCHDOG=1", i+1, msg)
		}
	}
	if took := time.Since(start); took < 600*time.Millisecond {
		t.Fatalf("three watchdog messages within %v: not every 0.2 s", took)
	}
}

// TestProxyWatchdogFollowsReadiness: the watchdog is told the proxy is
// healthy only while it is ready: a revocation file others may write
// (every key refused, /readyz failing) stops the WATCHDOG=1 messages and
// says so in the log; the file made safe again, they resume.
func TestProxyWatchdogFollowsReadiness(t *testing.T) {
	pxNeed(t, "python3")
	target := pxPython(t, pxServeFile(t, "-\n"))
	home := pxGen(t)
	notify := pxNotifySocket(t)
	t.Setenv("WATCHDOG_USEC", "400000") // 0.4 s: a message every 0.2 s
	px, _ := pxProxy(t, home, "--target", target)
	if msg := pxNotified(t, notify, 15*time.Second); msg != "READY=1\nSTATUS=listening" {
		t.Fatalf("first message %q, want READY=1", msg)
	}
	if msg := pxNotified(t, notify, 5*time.Second); msg != "WATCHDOG=1" {
		t.Fatalf("after READY=1: %q, want WATCHDOG=1", msg)
	}
	revoked := filepath.Join(home, "revoked_keys.d", "other.json")
	pxWrite(t, revoked, pxMust(t, "", "keytool", "-H", pxGen(t), "pub"))
	if err := os.Chmod(revoked, 0o666); err != nil {
		t.Fatal(err)
	}
	px.waitFor(t, `level=WARN msg="not ready: not telling systemd's watchdog the proxy is healthy" reason="trust store authorized: a revocation input cannot be read`, 10*time.Second)
	// Messages sent before the line are read; then none for 5 intervals.
	for {
		_ = notify.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := notify.Read(make([]byte, 64)); err != nil {
			break
		}
	}
	_ = notify.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := notify.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a message while not ready: %d bytes", n)
	}
	if err := os.Chmod(revoked, 0o644); err != nil {
		t.Fatal(err)
	}
	if msg := pxNotified(t, notify, 10*time.Second); msg != "WATCHDOG=1" {
		t.Fatalf("ready again: %q, want WATCHDOG=1", msg)
	}
	px.waitFor(t, `level=INFO msg="ready again: telling systemd's watchdog the proxy is healthy"`, 5*time.Second)
}

// TestProxyClientModeMetrics: keytool proxy --client --metrics-listen
// counts its handshakes with the target (admitted by the pin; changed once
// the target shows another key), and the pinned keys of its
// trusted_hosts store; /readyz is ready.
func TestProxyClientModeMetrics(t *testing.T) {
	pxNeed(t, "curl", "python3", "promtool")
	const page = "through both\n"
	target := pxPython(t, pxServeFile(t, page))
	server, client := pxGen(t), pxGen(t)
	pxWrite(t, filepath.Join(server, "authorized_keys.d", "laptop.json"), pxMust(t, "", "keytool", "-H", client, "pub"))
	_, serverAddr := pxProxy(t, server, "--target", target)
	pxMust(t, "", "keytool", "-H", client, "trust-host", serverAddr, "--fingerprint", pxFingerprint(t, server))
	p := pxStart(t, "keytool", "-H", client, "proxy", "--client", "--listen", "127.0.0.1:0", "--target", serverAddr, "--metrics-listen", "127.0.0.1:0")
	addr := p.waitFor(t, `msg=listening addr=(127\.0\.0\.1:\d+)`, 15*time.Second)[1]
	base := "http://" + p.waitFor(t, `msg="serving health and metrics" addr=(127\.0\.0\.1:\d+)`, 5*time.Second)[1]
	for range 2 {
		if body, msg, code := pxCurl(t, "http://"+addr+"/page.txt"); code != 0 || body != page {
			t.Fatalf("curl through both proxies: exit %d\n%s%s", code, body, msg)
		}
	}
	if code, body := pxGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz: %d %q", code, body)
	}
	text, fams := pxScrape(t, base)
	if v := fams["keytool_proxy_handshakes_total"].get("reason=key,result=admitted"); v != 2 {
		t.Errorf("admitted handshakes with the target: %v, want 2", v)
	}
	if v := fams["keytool_trust_keys"].get("store=trusted_hosts"); v != 1 {
		t.Errorf("keytool_trust_keys{store=trusted_hosts} = %v, want 1", v)
	}
	if out, msg, code := pxRun(t, text, "promtool", "check", "metrics"); code != 0 {
		t.Fatalf("promtool check metrics: exit %d\n%s%s", code, out, msg)
	}
	// Another key pinned for the target: the next connection is refused
	// as a changed key.
	other := pxGen(t)
	pxMust(t, "", "keytool", "-H", client, "trust-host", "--remove", serverAddr)
	pxMust(t, "", "keytool", "-H", client, "trust-host", serverAddr, "--key", filepath.Join(other, "pub_key.json"))
	if pxUntil(90*time.Second, func() bool { // inotify, or the minute's rescan (see above)
		_, fams := pxScrape(t, base)
		if fams["keytool_proxy_handshakes_total"].get("reason=changed,result=refused") >= 1 {
			return true
		}
		_, _, _ = pxCurl(t, "http://"+addr+"/page.txt")
		return false
	}) < 0 {
		_, fams := pxScrape(t, base)
		t.Fatalf("no refusal counted as changed: %v", fams["keytool_proxy_handshakes_total"].values)
	}
}
