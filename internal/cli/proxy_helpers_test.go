package cli

// Helpers for the tests of proxy and connect, which run keytool and real
// peers (curl, OpenSSL, Python, nginx) as processes on 127.0.0.1. Every
// process runs in its own session (no controlling terminal, so keytool
// never prompts on the developer's terminal) and is killed in t.Cleanup.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/internal/toolpath"
	"github.com/keytool/keytool/jwk"
)

// pxBuf is an io.Writer safe for concurrent use, whose content can be
// awaited.
type pxBuf = testlog.Buffer

// pxProc is a running process.
type pxProc struct {
	name           string
	cmd            *exec.Cmd
	stdin          io.WriteCloser
	stdout, stderr pxBuf
	done           chan struct{}
	code           int // valid after done
}

// pxStart starts a program with a pipe on its standard input, and kills it
// (if it is still running) when the test ends.
func pxStart(t testing.TB, name string, args ...string) *pxProc {
	t.Helper()
	return pxLaunch(t, name, args, nil)
}

// pxLaunch is pxStart, with set, if not nil, changing the command before
// it starts.
func pxLaunch(t testing.TB, name string, args []string, set func(*exec.Cmd)) *pxProc {
	t.Helper()
	p := &pxProc{name: name, done: make(chan struct{})}
	if i := slices.Index(args, "proxy"); filepath.Base(name) == "keytool" && i >= 0 && !slices.Contains(args, "--log-level") {
		// The tests follow each connection by its lines, which a proxy
		// logs at debug (TestProxyLogFlags checks the default).
		args = slices.Insert(slices.Clone(args), i+1, "--log-level", "debug")
	}
	p.cmd = exec.Command(name, args...)
	noTerminal(p.cmd)
	if set != nil {
		set(p.cmd)
	}
	p.cmd.Env = pxEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	in, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.stdin = in
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode() // -1 when killed by a signal
		} else if err != nil {
			p.code = -2
		}
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop kills the process and waits for it; its output is logged when the
// test failed.
func (p *pxProc) stop(t testing.TB) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (pid %d) did not die", p.name, p.cmd.Process.Pid)
		}
	}
	if t.Failed() {
		t.Logf("%s %s:\nstdout:\n%s\nstderr:\n%s", p.name, strings.Join(p.cmd.Args[1:], " "), p.stdout.String(), p.stderr.String())
	}
}

// terminate sends SIGTERM and waits (at most within) for the process to
// exit, and returns its standard error.
func (p *pxProc) terminate(t testing.TB, within time.Duration) string {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.wait(t, within)
	return p.stderr.String()
}

// waitFor waits until the regular expression matches the output (stdout
// and stderr are searched separately) and returns its submatches.
func (p *pxProc) waitFor(t testing.TB, expr string, timeout time.Duration) []string {
	t.Helper()
	re := regexp.MustCompile(expr)
	deadline := time.Now().Add(timeout)
	for {
		for _, out := range []string{p.stderr.String(), p.stdout.String()} {
			if m := re.FindStringSubmatch(out); m != nil {
				return m
			}
		}
		select {
		case <-p.done:
			for _, out := range []string{p.stderr.String(), p.stdout.String()} {
				if m := re.FindStringSubmatch(out); m != nil {
					return m
				}
			}
			t.Fatalf("%s exited (status %d) without printing %q\nstdout:\n%s\nstderr:\n%s", p.name, p.code, expr, p.stdout.String(), p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not print %q within %v\nstdout:\n%s\nstderr:\n%s", p.name, expr, timeout, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the process to exit and returns its status.
func (p *pxProc) wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v\nstdout:\n%s\nstderr:\n%s", p.name, timeout, p.stdout.String(), p.stderr.String())
		return 0
	}
}

// pxRun runs a program to completion (at most 30 s) with stdin as its
// input and returns its output and exit status.
func pxRun(t testing.TB, stdin string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return pxRunStuck(t, 30*time.Second, nil, stdin, name, args...)
}

// pxRunStuck is pxRun with its own limit, past which the program is taken
// to hang and is killed, failing the test — a limit on a hang, never
// reached by a program that works, however slow the machine —, and
// stuck, when not nil, called at that limit before the kill: what it
// returns, which says where the program hangs, ends the failure's first
// line.
func pxRunStuck(t testing.TB, limit time.Duration, stuck func() string, stdin string, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	where := "" // written by cmd.Cancel, which Run waits for
	if stuck != nil {
		cmd.Cancel = func() error {
			where = stuck()
			return cmd.Process.Kill()
		}
	}
	noTerminal(cmd)
	cmd.Env = pxEnv()
	cmd.Stdin = strings.NewReader(stdin)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: still running after %v, killed%s\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), limit, where, o.String(), e.String())
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), code
}

// pxMust runs a program that must succeed and returns its standard output.
func pxMust(t testing.TB, stdin string, name string, args ...string) string {
	t.Helper()
	o, e, code := pxRun(t, stdin, name, args...)
	if code != 0 {
		t.Fatalf("%s %s: exit status %d\n%s%s", name, strings.Join(args, " "), code, o, e)
	}
	return o
}

// pxEnv is the environment of the processes the tests start. Under the
// race detector, keytool is the race-enabled test binary, which sleeps a
// second before exiting unless told not to.
func pxEnv() []string {
	race := "atexit_sleep_ms=0"
	if v := os.Getenv("GORACE"); v != "" {
		race = v + " " + race
	}
	return append(os.Environ(), "GORACE="+race)
}

// pxNeed fails the test if a program the tests talk to is missing: .ci/run
// installs them, so a missing one is a broken setup, not a reason to skip.
func pxNeed(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("%s is not installed (.ci/run installs it): %v", p, err)
		}
	}
}

// pxGen makes a keytool home with a new identity.
func pxGen(t testing.TB, args ...string) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	pxMust(t, "", "keytool", append([]string{"-H", home, "gen"}, args...)...)
	return home
}

// pxFingerprint is the fingerprint of a home's identity, from keytool show --json.
func pxFingerprint(t testing.TB, home string) string {
	t.Helper()
	var infos []struct {
		Fingerprint string `json:"fingerprint"`
	}
	out := pxMust(t, "", "keytool", "-H", home, "show", "--json")
	if err := json.Unmarshal([]byte(out), &infos); err != nil || len(infos) != 1 {
		t.Fatalf("keytool show --json: %v\n%s", err, out)
	}
	return infos[0].Fingerprint
}

// pxOpenSSLKey makes a P-256 key and a self-signed certificate for it with
// OpenSSL, and returns the files and the key's SPKI SHA-256 in base64 as
// OpenSSL computes it (padded: "…=").
func pxOpenSSLKey(t *testing.T, dir, name string) (certFile, keyFile, spkiB64 string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	pxMust(t, "", "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", keyFile, "-out", certFile, "-subj", "/CN="+name, "-days", "2")
	pub := pxMust(t, "", "openssl", "x509", "-in", certFile, "-pubkey", "-noout")
	der := pxMust(t, pub, "openssl", "pkey", "-pubin", "-outform", "DER")
	sum := pxMust(t, der, "openssl", "dgst", "-sha256", "-binary")
	spkiB64 = strings.TrimSpace(pxMust(t, sum, "openssl", "base64"))
	return certFile, keyFile, spkiB64
}

// pxPython serves dir with Python's http.server and returns its address.
func pxPython(t *testing.T, dir string) string {
	t.Helper()
	p := pxStart(t, "python3", "-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, "0")
	m := p.waitFor(t, `Serving HTTP on 127\.0\.0\.1 port (\d+)`, 10*time.Second)
	return "127.0.0.1:" + m[1]
}

// pxNginx is the path of nginx (Debian puts it in /usr/sbin, often not in
// a user's PATH); a developer machine without it skips the test, saying so.
func pxNginx(t *testing.T) string {
	t.Helper()
	if nginx, err := toolpath.Find("nginx", "/usr/local/nginx/sbin"); err == nil {
		return nginx
	}
	t.Skip("SKIPPED, NOT PASSED: nginx is not installed (Debian: apt-get install nginx); the keytool ↔ nginx interoperability is untested")
	return ""
}

// pxNginxStart writes an nginx.conf in dir whose http block holds body,
// and starts nginx on it in the foreground; addr is where body listens.
func pxNginxStart(t *testing.T, dir, addr, body string) *pxProc {
	t.Helper()
	nginx := pxNginx(t)
	pxWrite(t, filepath.Join(dir, "nginx.conf"), fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
http {
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, body))
	p := pxStart(t, nginx, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off; master_process off;")
	pxWaitListening(t, p, addr, 10*time.Second)
	return p
}

// pxProxy starts keytool proxy on 127.0.0.1:0 and returns it with the
// address it reports.
func pxProxy(t *testing.T, home string, args ...string) (*pxProc, string) {
	t.Helper()
	p := pxStart(t, "keytool", append([]string{"-H", home, "proxy", "--listen", "127.0.0.1:0"}, args...)...)
	m := p.waitFor(t, `msg=listening addr=(127\.0\.0\.1:\d+)`, 15*time.Second)
	return p, m[1]
}

// pxWaitListening waits until something accepts connections on addr.
func pxWaitListening(t *testing.T, p *pxProc, addr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited (status %d)\nstdout:\n%s\nstderr:\n%s", p.name, p.code, p.stdout.String(), p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pxWrite writes a file, creating its directory.
func pxWrite(t testing.TB, file, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pxUntil calls f every 20 ms until it returns true or timeout passes, and
// returns how long it took (or -1).
func pxUntil(timeout time.Duration, f func() bool) time.Duration {
	start := time.Now()
	for {
		if f() {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			return -1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func regexpQuote(s string) string { return regexp.QuoteMeta(s) }

// spkiFingerprint is the fingerprint of the key a TLS peer presented.
func spkiFingerprint(conn *tls.Conn) string {
	cs := conn.ConnectionState()
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return jwk.FormatFingerprint(sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo))
}
