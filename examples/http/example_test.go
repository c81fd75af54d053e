package example_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/cli"
	"github.com/keytool/keytool/internal/freeport"
	"github.com/keytool/keytool/internal/testlog"
	"github.com/keytool/keytool/tlsbridge"
)

// TestMain lets the test binary act as keytool (EXAMPLE_HTTP_AS=keytool),
// so that the tests set the examples up with the commands a user would
// run, as processes; the examples themselves are built (go build) and run
// as their users run them.
func TestMain(m *testing.M) {
	if os.Getenv("EXAMPLE_HTTP_AS") == "keytool" {
		os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	// Under -race, a race-enabled keytool sleeps a second at exit unless told not to.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	bin, err := os.MkdirTemp("", "examples-http")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = bin
	code := m.Run()
	os.RemoveAll(bin)
	os.Exit(code)
}

var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// example is the path of the example program name (server or client),
// built once for the tests.
func example(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", binDir+string(os.PathSeparator), "./server", "./client").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, name)
}

// proc is a process the test started, killed when the test ends.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr testlog.Buffer
	done           chan struct{}
	err            error // valid after done
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(name, args...), done: make(chan struct{})}
	noTerminal(p.cmd)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s:\nstdout:\n%s\nstderr:\n%s", strings.Join(p.cmd.Args, " "), p.stdout.String(), p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to exit, and returns its error.
func (p *proc) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %v", p.cmd.Args[0], timeout)
		return nil
	}
}

// waitFor waits until expr matches the process's standard error, and
// returns how long that took.
func (p *proc) waitFor(t *testing.T, expr string, timeout time.Duration) time.Duration {
	t.Helper()
	re := regexp.MustCompile(expr)
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if re.MatchString(p.stderr.String()) {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s did not print %q within %v; stderr:\n%s", p.cmd.Args[0], expr, timeout, p.stderr.String())
		}
	}
}

// keytool runs keytool (this binary), which must succeed, and returns
// its standard output.
func keytool(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "EXAMPLE_HTTP_AS=keytool")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("keytool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// TestExampleServerLiveRevocation runs the example server (server/) as a process
// with two clients authorized, alice and bob, each holding a keep-alive
// connection from curl over HTTP/1.1 and another over HTTP/2 (curl asks
// twice, ten seconds apart, --rate). keytool revoke of alice's key closes
// both of hers within a second — the server logs each, naming her — so
// curl's second request needs a new connection, which the handshake
// refuses; bob's second requests go out on the connections they already
// have. Without live revocation (ConnState: live.ConnState) alice's
// connections would stay open and only RequireAuthenticated would turn
// her second requests away, on the same connection, with 403. The six
// first answers, keytool revoke (a process) and the closing all come
// between curl's two requests: five seconds apart, they left a loaded
// machine (-race, other packages' tests, two cores) little room, and a
// second request that went out before the revocation was applied would
// fail the test with no fault of live revocation's.
func TestExampleServerLiveRevocation(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is not installed (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	srv := filepath.Join(dir, "server")
	keytool(t, "-H", srv, "gen")
	type client struct{ name, cert, key string }
	var clients []client
	for _, name := range []string{"alice", "bob"} {
		home := filepath.Join(dir, name)
		keytool(t, "-H", home, "gen")
		c := client{name, filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")}
		keytool(t, "-H", home, "cert", "-o", c.cert, "--key-out", c.key)
		keytool(t, "-H", srv, "authorize", "--name", name, filepath.Join(home, "pub_key.json"))
		clients = append(clients, c)
	}
	var shown []struct {
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal([]byte(keytool(t, "-H", srv, "show", "--json")), &shown); err != nil || len(shown) != 1 {
		t.Fatalf("keytool show --json: %v", err)
	}
	pin := "sha256//" + strings.TrimPrefix(shown[0].Fingerprint, "SHA256:") + "="

	addr := fmt.Sprintf("127.0.0.1:%d", freeport.Port(t))
	server := start(t, example(t, "server"), "-home", srv, "-listen", addr)
	server.waitFor(t, "listening on "+regexp.QuoteMeta(addr), 15*time.Second)
	// The line comes just before the example binds its port.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		} else if time.Since(start) > 10*time.Second {
			t.Fatalf("the example server does not listen on %s: %v", addr, err)
		}
	}
	url := "https://" + addr + "/"

	// curl checks the server's key against its pin (--insecure turns off
	// only the CA checks), and presents the client's certificate.
	curl := func(c client, proto string) *proc {
		return start(t, "curl", "-sS", "-N", proto, "--insecure", "--pinnedpubkey", pin, "--cert", c.cert, "--key", c.key,
			"--rate", "6/m", "-w", "proto=%{http_version} status=%{http_code} new_connections=%{num_connects}\n", url, url)
	}
	type held struct {
		c     client
		proto string
		p     *proc
	}
	var all []held
	for _, c := range clients {
		for _, proto := range []string{"--http1.1", "--http2"} {
			all = append(all, held{c, proto, curl(c, proto)})
		}
	}
	// The first answers (curl writes its -w lines at exit).
	for _, h := range all {
		first := "hello, " + h.c.name + "\n"
		for start := time.Now(); h.p.stdout.String() != first; time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > 4*time.Second {
				t.Fatalf("curl %s as %s: %q, want %q first; stderr:\n%s", h.proto, h.c.name, h.p.stdout.String(), first, h.p.stderr.String())
			}
		}
	}

	keytool(t, "-H", srv, "revoke", filepath.Join(dir, "alice", "pub_key.json"))
	closed := `(?s)(WARN closing: key no longer admitted remote=127\.0\.0\.1:\d+ fingerprint=\S+ name=alice reason="authkeys: key \S+ is revoked.*){2}`
	if took := server.waitFor(t, closed, 5*time.Second); took > 1500*time.Millisecond {
		t.Errorf("alice's connections were closed %v after keytool revoke, want < 1 s (1.5 s for a busy machine)", took)
	}
	for _, h := range all {
		err := h.p.wait(t, 30*time.Second)
		out := h.p.stdout.String()
		v := strings.TrimPrefix(h.proto, "--http")
		if !strings.HasPrefix(out, "hello, "+h.c.name+"\nproto="+v+" status=200 new_connections=1\n") {
			t.Errorf("curl %s as %s: the first request:\n%s", h.proto, h.c.name, out)
		}
		if h.c.name == "alice" {
			if err == nil || strings.Count(out, "hello") != 1 || strings.Contains(out, "403") {
				t.Errorf("curl %s as alice after the revocation: %v, want a failed second connection:\n%s%s", h.proto, err, out, h.p.stderr.String())
			}
			continue
		}
		// bob's second request reuses his connection: no new one.
		if err != nil || !strings.HasSuffix(out, "hello, bob\nproto="+v+" status=200 new_connections=0\n") {
			t.Errorf("curl %s as bob: %v, want the second request on the open connection:\n%s%s", h.proto, err, out, h.p.stderr.String())
		}
	}
	if strings.Contains(server.stderr.String(), "name=bob") {
		t.Errorf("a connection of bob's was closed:\n%s", server.stderr.String())
	}
}

// TestExampleClientLiveRevocation runs the example client (client/) as
// two processes, each streaming a response from a server of its own (Go
// servers, HTTP/2) whose key its home pins. keytool trust-host --remove of
// the first server's address ends that stream within a second: the client
// logs the closing, naming the address, and exits 1. The second client's
// stream still carries what its server writes next.
func TestExampleClientLiveRevocation(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "client")
	keytool(t, "-H", home, "gen")
	type streaming struct {
		addr string
		more chan string // a line for the server to write on the open stream
		p    *proc
	}
	var servers []*streaming
	for _, name := range []string{"one", "two"} {
		srvHome := filepath.Join(dir, name)
		keytool(t, "-H", srvHome, "gen")
		keytool(t, "-H", srvHome, "authorize", "--name", "client", filepath.Join(home, "pub_key.json"))
		s := &streaming{more: make(chan string, 1)}
		s.addr = streamingServer(t, srvHome, s.more)
		keytool(t, "-H", home, "trust-host", s.addr, "--key", filepath.Join(srvHome, "pub_key.json"))
		s.p = start(t, example(t, "client"), "-home", home, "https://"+s.addr+"/")
		servers = append(servers, s)
	}
	for _, s := range servers {
		for start := time.Now(); s.p.stdout.String() != "streaming\n"; time.Sleep(10 * time.Millisecond) {
			if time.Since(start) > 10*time.Second {
				t.Fatalf("the client of %s printed %q; stderr:\n%s", s.addr, s.p.stdout.String(), s.p.stderr.String())
			}
		}
	}

	one, two := servers[0], servers[1]
	keytool(t, "-H", home, "trust-host", "--remove", one.addr)
	at := time.Now()
	err := one.p.wait(t, 10*time.Second)
	if took := time.Since(at); took > 1500*time.Millisecond {
		t.Errorf("the client's stream ended %v after trust-host --remove, want < 1 s (1.5 s for a busy machine)", took)
	}
	closing := `WARN closing: key no longer admitted addr=` + regexp.QuoteMeta(one.addr) + ` remote=\S+ fingerprint=\S+ reason="knownhosts: host ` + regexp.QuoteMeta(one.addr) + ` is unknown`
	if err == nil || !regexp.MustCompile(closing).MatchString(one.p.stderr.String()) {
		t.Errorf("the first client: %v, want exit status 1 and a line matching %q; stderr:\n%s", err, closing, one.p.stderr.String())
	}

	time.Sleep(1200 * time.Millisecond) // a sweep later
	two.more <- "still here\n"
	for start := time.Now(); two.p.stdout.String() != "streaming\nstill here\n"; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("the second client's stream: %q; stderr:\n%s", two.p.stdout.String(), two.p.stderr.String())
		}
	}
}

// streamingServer serves HTTPS as home's identity on 127.0.0.1, admitting
// the clients home authorizes, until the test ends: each response is
// "streaming\n", then each line sent on more, until the client goes.
func streamingServer(t *testing.T, home string, more <-chan string) string {
	t.Helper()
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: authkeys.Load(authkeys.HomeOptions(home))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{TLSConfig: srv.TLSConfig(), ConnContext: tlsbridge.ConnContext, Handler: srv.RequireAuthenticated(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "streaming\n")
		for {
			w.(http.Flusher).Flush()
			select {
			case line := <-more:
				io.WriteString(w, line)
			case <-r.Context().Done():
				return
			}
		}
	}))}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { hs.Close() })
	return ln.Addr().String()
}
