package cli

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// enrollServer serves enrollment for a keytool home on 127.0.0.1, in this
// process, as keytool proxy --enroll does: a tlsbridge.Server in
// AllowUnknown mode, with the home's identity, authorized keys and
// invitations. It returns the address and the server's log.
func enrollServer(t *testing.T, home string) (string, *pxBuf) {
	t.Helper()
	id, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clients := authkeys.Load(authkeys.HomeOptions(home))
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients, AllowUnknown: true})
	if err != nil {
		t.Fatal(err)
	}
	logs := &pxBuf{}
	h, err := enroll.NewHandler(enroll.HandlerOptions{Dir: enroll.InvitesDir(home), Clients: clients, ServerKey: id.Key,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: enroll.WithEnrollment(srv, h, http.NotFoundHandler()), ConnContext: tlsbridge.ConnContext}
	done := make(chan struct{})
	go func() { defer close(done); _ = hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close(); <-done })
	return ln.Addr().String(), logs
}

// homeFiles lists the files under a home with their contents, to show
// that a failed join wrote nothing.
func homeFiles(t *testing.T, home string) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.Walk(home, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			out[strings.TrimPrefix(p, home)] = fi.Mode().String() + " " + string(b)
		} else if err == nil {
			out[strings.TrimPrefix(p, home)+"/"] = fi.Mode().String()
		}
		return nil
	})
	return out
}

func sameFiles(t *testing.T, home string, before map[string]string) {
	t.Helper()
	after := homeFiles(t, home)
	if len(after) != len(before) {
		t.Errorf("%s changed: %d files before, %d after", home, len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %s changed", home, k)
		}
	}
}

// inviteToken runs keytool invite and returns the token: the last line of
// its standard output, alone.
func inviteToken(t *testing.T, home string, args ...string) string {
	t.Helper()
	out, e, code := keytoolIn(t, home, append([]string{"invite"}, args...)...)
	if code != 0 {
		t.Fatalf("invite: exit %d\n%s", code, e)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	tok := lines[len(lines)-1]
	if !strings.HasPrefix(tok, enroll.TokenPrefix) || strings.ContainsAny(tok, " \t") {
		t.Fatalf("the last line of stdout is not a token alone: %q", out)
	}
	return tok
}

// TestInviteJoin is the whole flow through real processes: keytool invite
// in the server's home, keytool join in the client's, against a server
// serving that same home.
//
// seed 000: "the user must enter the trust password for that server, if it
// matches, the client certificate is added to the server's trust store" —
// a one-time token in keytool, which also carries the server's
// fingerprint; a used token does not work again.
func TestInviteJoin(t *testing.T) {
	srvHome, cliHome := joinHome(t), joinHome(t)
	addr, logs := enrollServer(t, srvHome)
	tok := inviteToken(t, srvHome, "--name", "laptop", "--address", addr, "--expires", "10m")
	srvKey := homeKey(t, srvHome)
	cliKey := homeKey(t, cliHome)

	out, e, code := keytoolIn(t, cliHome, "join", tok)
	if code != 0 {
		t.Fatalf("join: exit %d\n%s%s", code, out, e)
	}
	pin := pinFile(cliHome, addr)
	for _, want := range []string{
		"Server " + addr + " presented key " + srvKey.Fingerprint() + ", as the token says.",
		"Pinned " + keyPhrase(srvKey) + " for " + addr + " in " + pin,
		"Enrolled: the server authorized this client's key " + cliKey.Fingerprint() + ` as "laptop"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("join's output lacks %q:\n%s", want, out)
		}
	}
	if k := pinnedKey(t, cliHome, addr); k == nil || !k.Equal(srvKey) {
		t.Error("the server's key is not pinned")
	}
	keys, err := jwk.ReadFile(filepath.Join(srvHome, "authorized_keys.d", "laptop.json"))
	if err != nil || len(keys) != 1 || !keys[0].Equal(cliKey) {
		t.Fatalf("the client's key is not authorized as laptop: %v", err)
	}
	if !strings.Contains(logs.String(), "enrolled") {
		t.Errorf("server log:\n%s", logs)
	}

	// invite --list shows it used, by whom.
	out, _, _ = keytoolIn(t, srvHome, "invite", "--list", "--full")
	if !strings.Contains(out, "laptop") || !strings.Contains(out, "used") || !strings.Contains(out, cliKey.Fingerprint()) {
		t.Errorf("list after use:\n%s", out)
	}

	// The same token again, from another client: already used; nothing
	// written on either side.
	other := joinHome(t)
	sb, cb := homeFiles(t, srvHome), homeFiles(t, other)
	_, e, code = keytoolIn(t, other, "join", tok)
	if code != 1 || !strings.Contains(e, "already_used") || !strings.Contains(e, "a token works once") || !strings.Contains(e, "nothing was written") ||
		!strings.Contains(e, "\nA new token is made on the server with: keytool invite --name laptop --address "+addr+"\n") {
		t.Fatalf("second join: exit %d\n%s", code, e)
	}
	sameFiles(t, srvHome, sb)
	sameFiles(t, other, cb)
}

// fastExit spares each keytool process of a -race test binary the race
// runtime's one-second sleep at exit.
func fastExit(t *testing.T) { t.Setenv("GORACE", "atexit_sleep_ms=0") }

// joinHome makes a keytool home with an identity, in this process (as
// keytool gen would, faster).
func joinHome(t *testing.T) string {
	t.Helper()
	fastExit(t)
	home := filepath.Join(t.TempDir(), "home")
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(home, "pub_key.json"), k, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	return home
}

func homeKey(t *testing.T, home string) *jwk.Key {
	t.Helper()
	keys, err := jwk.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	return keys[0]
}

// TestJoinFailuresCLI: each failure exits 1 with its message and leaves
// both homes as they were.
func TestJoinFailuresCLI(t *testing.T) {
	srvHome := joinHome(t)
	addr, _ := enrollServer(t, srvHome)
	for _, tc := range []struct {
		name  string
		token func(t *testing.T) string
		stdin bool
		want  []string
	}{
		{"mangled", func(t *testing.T) string {
			tok := inviteToken(t, srvHome, "--address", addr)
			i := len(tok) - 20
			c := "A"
			if tok[i] == 'A' {
				c = "B"
			}
			return tok[:i] + c + tok[i+1:]
		}, false, []string{"mangled in copying", "checksum mismatch", "Copy it again"}},
		{"revoked", func(t *testing.T) string {
			tok := inviteToken(t, srvHome, "--name", "gone", "--address", addr)
			if out, e, code := keytoolIn(t, srvHome, "invite", "--remove", "gone"); code != 0 || !strings.Contains(out, `Removed invitation "gone"`) {
				t.Fatalf("revoke: %d %s%s", code, out, e)
			}
			return tok
		}, true, []string{"unknown_invitation", `no invitation named "gone" for this token: it was removed or made again, or never made here`}},
		{"unreachable", func(t *testing.T) string {
			return inviteToken(t, srvHome, "--address", testnet.RefusedAddr(t))
		}, false, []string{"could not reach the server", "connection refused", "nothing was written"}},
		{"interception", func(t *testing.T) string {
			// The token names this home's key, but another server (another
			// key) answers at the address.
			impostor := joinHome(t)
			iaddr, _ := enrollServer(t, impostor)
			return inviteToken(t, srvHome, "--address", iaddr)
		}, false, []string{"presented key", "but the token names key", "man-in-the-middle", "secret was not sent"}},
		{"not a token", func(t *testing.T) string { return "hello" }, false, []string{"not a join token", "printed by keytool invite"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cliHome := joinHome(t)
			tok := tc.token(t)
			sb, cb := homeFiles(t, srvHome), homeFiles(t, cliHome)
			var e string
			var code int
			if tc.stdin {
				cmd := exec.Command("keytool", "-H", cliHome, "join", "-")
				cmd.Stdin = strings.NewReader(tok + "\n")
				var eb strings.Builder
				cmd.Stderr = &eb
				err := cmd.Run()
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				}
				e = eb.String()
			} else {
				_, e, code = keytoolIn(t, cliHome, "join", tok)
			}
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(e, w) {
					t.Errorf("stderr lacks %q:\n%s", w, e)
				}
			}
			sameFiles(t, srvHome, sb)
			sameFiles(t, cliHome, cb)
		})
	}
}

// TestJoinRaceProcesses: two keytool join processes race for one token;
// exactly one wins.
func TestJoinRaceProcesses(t *testing.T) {
	srvHome := joinHome(t)
	addr, _ := enrollServer(t, srvHome)
	tok := inviteToken(t, srvHome, "--name", "race", "--address", addr)
	homes := []string{joinHome(t), joinHome(t)}
	cmds := make([]*exec.Cmd, len(homes))
	outs := make([]strings.Builder, len(homes))
	for i, h := range homes {
		cmds[i] = exec.Command("keytool", "-H", h, "join", "-")
		cmds[i].Stdin = strings.NewReader(tok)
		cmds[i].Stderr = &outs[i]
		noTerminal(cmds[i])
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	wins := 0
	for i, c := range cmds {
		err := c.Wait()
		if err == nil {
			wins++
			continue
		}
		if !strings.Contains(outs[i].String(), "already_used") {
			t.Errorf("loser %d: %v\n%s", i, err, outs[i].String())
		}
		if _, err := os.Stat(filepath.Join(homes[i], "trusted_hosts.d")); err == nil {
			t.Errorf("loser %d pinned the server", i)
		}
	}
	if wins != 1 {
		t.Fatalf("%d winners", wins)
	}
	entries, _ := keyDirEntries(filepath.Join(srvHome, "authorized_keys.d"))
	if len(entries) != 1 {
		t.Fatalf("authorized_keys.d holds %d files", len(entries))
	}
}

// TestProxyEnroll: keytool proxy --enroll serves enrollment on its
// listening port; after keytool join, the client goes through the proxy
// to the target.
func TestProxyEnroll(t *testing.T) {
	fastExit(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from the target\n"))
			c.Close()
		}
	}()
	srvHome, cliHome := joinHome(t), joinHome(t)
	cmd := exec.Command("keytool", "-H", srvHome, "proxy", "--enroll", "--listen", "127.0.0.1:0", "--target", target.Addr().String())
	noTerminal(cmd)
	logs := &pxBuf{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addrRE := regexp.MustCompile(`msg=listening addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("the proxy never said where it listens:\n%s", logs)
		}
	}

	tok := inviteToken(t, srvHome, "--name", "laptop", "--address", addr)
	out, e, code := keytoolIn(t, cliHome, "join", tok)
	if code != 0 || !strings.Contains(out, `as "laptop"`) {
		t.Fatalf("join through the proxy: exit %d\n%s%s\nproxy:\n%s", code, out, e, logs)
	}
	// Now authorized and pinned: the proxy lets the client through.
	id, err := tlsbridge.LoadHomeIdentity(cliHome, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hosts := knownhosts.Load(knownhosts.HomeOptions(cliHome))
	cl, err := tlsbridge.NewClient(id, tlsbridge.ClientOptions{Hosts: hosts, Policy: tlsbridge.Strict})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := cl.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	got, _ := io.ReadAll(conn)
	if string(got) != "hello from the target\n" {
		t.Fatalf("through the proxy after enrolling: %q\nproxy:\n%s", got, logs)
	}

	// Joining again, with a new invitation: the proxy now sends this
	// client's connections to the target, which does not speak the
	// enrollment protocol. The error says the client is enrolled already,
	// and nothing is written.
	tok2 := inviteToken(t, srvHome, "--name", "laptop-again", "--address", addr)
	before, srvBefore := homeFiles(t, cliHome), homeFiles(t, srvHome)
	out, e, code = keytoolIn(t, cliHome, "join", tok2)
	if code != 1 || !strings.Contains(e, "this client is already enrolled with "+addr) || !strings.Contains(e, "keytool -H "+cliHome+" connect "+addr) || !strings.Contains(e, "nothing was written") {
		t.Fatalf("join while already authorized: exit %d\n%s%s", code, out, e)
	}
	sameFiles(t, cliHome, before)
	sameFiles(t, srvHome, srvBefore)
}
