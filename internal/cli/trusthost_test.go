package cli

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// keytoolServer runs a keytool TLS server (no client authorized) on
// 127.0.0.1 and returns its address and key.
func keytoolServer(t *testing.T) (string, *jwk.Key) { return tlsTestServer(t) }

// tlsTestServer runs a keytool TLS server on 127.0.0.1 that authorizes
// the clients' keys given and says "hello" to them; it returns its
// address and key.
func tlsTestServer(t *testing.T, authorized ...*jwk.Key) (string, *jwk.Key) {
	t.Helper()
	home := t.TempDir()
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
	if err != nil {
		t.Fatal(err)
	}
	clients := authkeys.Load(authkeys.HomeOptions(home))
	for i, c := range authorized {
		if _, err := clients.Add(c, fmt.Sprintf("client%d", i), authkeys.AddNew); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := tlsbridge.NewServer(id, tlsbridge.ServerOptions{Clients: clients})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					_, _ = io.WriteString(c, "hello\n")
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String(), k
}

// keytoolIn runs keytool with the home, without a controlling terminal.
func keytoolIn(t *testing.T, home string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return pxRun(t, "", "keytool", append([]string{"-H", home}, args...)...)
}

func newClientHome(t *testing.T) string {
	t.Helper()
	home := filepath.Join(t.TempDir(), "client")
	if _, e, code := keytoolIn(t, home, "gen"); code != 0 {
		t.Fatalf("gen: %s", e)
	}
	return home
}

func pinFile(home, addr string) string {
	return filepath.Join(home, "trusted_hosts.d", strings.ReplaceAll(addr, ":", "_")+".json")
}

func pinnedKey(t *testing.T, home, addr string) *jwk.Key {
	t.Helper()
	keys, err := jwk.ReadFile(pinFile(home, addr))
	if err != nil {
		return nil
	}
	return keys[0]
}

func TestTrustHostFingerprint(t *testing.T) {
	addr, key := keytoolServer(t)
	sum := key.SPKIHash()
	for _, form := range []string{key.Fingerprint(), key.KeyID(), "sha256//" + strings.TrimPrefix(key.Fingerprint(), "SHA256:") + "=", strings.ToUpper(hexOf(sum[:]))} {
		home := newClientHome(t)
		out, e, code := keytoolIn(t, home, "trust-host", addr, "--fingerprint", form)
		if code != 0 || !strings.Contains(out, "Pinned "+keyPhrase(key)+" for "+addr) {
			t.Fatalf("--fingerprint %s: exit %d\n%s%s", form, code, out, e)
		}
		// The server does not authorize this client; pinning works all the same.
		if k := pinnedKey(t, home, addr); k == nil || !k.Equal(key) {
			t.Fatalf("--fingerprint %s: pin file does not hold the server's key", form)
		}
	}

	t.Run("mismatch", func(t *testing.T) {
		home := newClientHome(t)
		other, _ := jwk.Generate(jwk.EC256)
		_, e, code := keytoolIn(t, home, "trust-host", addr, "--fingerprint", other.Fingerprint())
		if code != 1 || !strings.Contains(e, "the key of "+addr+" is "+key.Fingerprint()) || !strings.Contains(e, "nothing saved") {
			t.Fatalf("exit %d:\n%s", code, e)
		}
		if _, err := os.Stat(pinFile(home, addr)); !os.IsNotExist(err) {
			t.Error("a mismatched key was saved")
		}
	})
	t.Run("yes", func(t *testing.T) {
		home := newClientHome(t)
		out, e, code := keytoolIn(t, home, "trust-host", addr, "--yes")
		if code != 0 || !strings.Contains(e, "on first use") || pinnedKey(t, home, addr) == nil {
			t.Fatalf("exit %d:\n%s%s", code, out, e)
		}
		// One warning, trust-host's: not the client's log line too.
		if strings.Contains(e, "msg=") || strings.Count(e, "\n") != 1 {
			t.Errorf("trust-host --yes warned more than once:\n%s", e)
		}
	})
	t.Run("no terminal", func(t *testing.T) {
		home := newClientHome(t)
		_, e, code := keytoolIn(t, home, "trust-host", addr)
		if code != 1 || !strings.Contains(e, "keytool -H "+home+" trust-host "+addr+" --fingerprint "+key.Fingerprint()) {
			t.Fatalf("exit %d:\n%s", code, e)
		}
	})
	t.Run("no terminal, pinned elsewhere", func(t *testing.T) {
		// The key is pinned for another address of the host: the advice
		// says so, as the terminal's question would have ("known by the
		// following other names").
		home := newClientHome(t)
		keyFile := filepath.Join(t.TempDir(), "server.json")
		if err := jwk.WritePublicKeyFile(keyFile, key, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
		if _, e, code := keytoolIn(t, home, "trust-host", "db.internal:7443", "--key", keyFile); code != 0 {
			t.Fatal(e)
		}
		_, e, code := keytoolIn(t, home, "trust-host", addr)
		if want := "\nThis key is already pinned here for db.internal:7443 (the same host under another name or port, or a key copied between hosts).\nAfter checking"; code != 1 || !strings.Contains(e, want) {
			t.Fatalf("exit %d, want 1 and %q:\n%s", code, want, e)
		}
		// A key pinned nowhere else says nothing of the kind.
		_, e, _ = keytoolIn(t, newClientHome(t), "trust-host", addr)
		if strings.Contains(e, "already pinned") {
			t.Errorf("a key pinned nowhere is said to be pinned:\n%s", e)
		}
	})
	t.Run("changed key", func(t *testing.T) {
		home := newClientHome(t)
		other, _ := jwk.Generate(jwk.EC256)
		otherFile := filepath.Join(t.TempDir(), "other.json")
		if err := jwk.WritePublicKeyFile(otherFile, other, jwk.JWK, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
		if _, e, code := keytoolIn(t, home, "trust-host", addr, "--key", otherFile); code != 0 {
			t.Fatal(e)
		}
		before, _ := os.ReadFile(pinFile(home, addr))
		_, e, code := keytoolIn(t, home, "trust-host", addr, "--yes")
		if code != 1 || !strings.Contains(e, "has changed") || !strings.Contains(e, key.Fingerprint()) || !strings.Contains(e, other.Fingerprint()) {
			t.Fatalf("exit %d:\n%s", code, e)
		}
		if after, _ := os.ReadFile(pinFile(home, addr)); string(after) != string(before) {
			t.Error("the pin was overwritten")
		}
	})
}

func hexOf(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

// TestTrustHostPromptInTerminal drives the interactive question through a
// real terminal: tmux runs keytool in a pane, the test reads the screen
// and types the answers.
//
// seed 000: "when the user adds a new server with "lxc remote add", the
// server will be contacted over HTTPs, its certificate downloaded and the
// fingerprint will be shown to the user. The user will then be asked to
// confirm that this is indeed the server's fingerprint" — "a workflow
// that's very similar to that of ssh where an initial connection to an
// unknown server triggers a prompt".
func TestTrustHostPromptInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	addr, key := keytoolServer(t)
	other, _ := jwk.Generate(jwk.EC256)
	for _, tc := range []struct {
		name    string
		answers []string
		pinned  bool
		screen  string
	}{
		{"yes", []string{"yes"}, true, "Pinned " + keyPhrase(key)},
		{"no", []string{"no"}, false, "EXIT=1"},
		{"typed fingerprint", []string{key.Fingerprint()}, true, "Pinned " + keyPhrase(key)},
		{"wrong fingerprint", []string{other.Fingerprint()}, false, "does not match"},
		{"nonsense, then yes", []string{"maybe", "yes"}, true, "Please type 'yes', 'no' or the fingerprint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newClientHome(t)
			screen := runInTmux(t, []string{"keytool", "-H", home, "trust-host", addr}, "Are you sure you want to continue connecting (yes/no/[fingerprint])? ", tc.answers)
			for _, want := range []string{
				"The authenticity of host '" + addr + "' can't be established.",
				"ECDSA P-256 key fingerprint is " + key.Fingerprint() + ".",
				"Key ID: " + key.KeyID(),
				tc.screen,
			} {
				if !strings.Contains(screen, want) {
					t.Errorf("screen lacks %q:\n%s", want, screen)
				}
			}
			if got := pinnedKey(t, home, addr) != nil; got != tc.pinned {
				t.Errorf("pinned = %v, want %v\n%s", got, tc.pinned, screen)
			}
		})
	}
}

// runInTmux runs argv in a detached tmux session on a private socket,
// waits for prompt, types each answer followed by Enter, and returns the
// screen once the command has exited.
func runInTmux(t *testing.T, argv []string, prompt string, answers []string) string {
	t.Helper()
	return runInTmuxThen(t, argv, prompt, nil, answers)
}

// runInTmuxThen is runInTmux calling then (if not nil) once the prompt is
// on the screen, before the answers are typed: what happens while the
// question waits for the user.
func runInTmuxThen(t *testing.T, argv []string, prompt string, then func(), answers []string) string {
	t.Helper()
	dir := t.TempDir()
	sock := filepath.Join(dir, "tmux.sock")
	tmux := func(args ...string) string {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = append(os.Environ(), "TERM=xterm")
		out, err := cmd.CombinedOutput()
		if err != nil && args[0] != "kill-server" {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var quoted []string
	for _, a := range argv {
		quoted = append(quoted, shellQuote(a))
	}
	tmux("new-session", "-d", "-x", "220", "-y", "50", strings.Join(quoted, " ")+"; echo EXIT=$?; sleep 60")
	t.Cleanup(func() { tmux("kill-server") })
	capture := func() string { return tmux("capture-pane", "-p", "-J") }
	waitFor := func(what string) string {
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := capture()
			if strings.Contains(s, what) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("the screen never showed %q:\n%s", what, s)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(strings.TrimSpace(prompt))
	if then != nil {
		then()
	}
	for _, a := range answers {
		tmux("send-keys", "-l", a)
		tmux("send-keys", "Enter")
		time.Sleep(200 * time.Millisecond)
	}
	return waitFor("EXIT=")
}

// TestRefusedHostInTerminal: answering no, to trust-host and to connect,
// says what ssh says, "Host key verification failed.", and exits 1 with
// nothing pinned; a typed fingerprint that does not match is a no too.
func TestRefusedHostInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	addr, _ := keytoolServer(t)
	other, _ := jwk.Generate(jwk.EC256)
	for _, tc := range []struct {
		name, prompt string
		args         []string
		answer       string
	}{
		{"trust-host", "(yes/no/[fingerprint])? ", []string{"trust-host", addr}, "no"},
		{"trust-host, wrong fingerprint", "(yes/no/[fingerprint])? ", []string{"trust-host", addr}, other.Fingerprint()},
		{"connect", "(yes/no/once/[fingerprint])? ", []string{"connect", addr}, "no"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newClientHome(t)
			screen := runInTmux(t, append([]string{"keytool", "-H", home}, tc.args...), tc.prompt, []string{tc.answer})
			_, after, _ := strings.Cut(screen, tc.prompt+tc.answer+"\n")
			if !strings.Contains(after, "Host key verification failed.\nEXIT=1") {
				t.Errorf("after the answer, the screen shows:\n%s", screen)
			}
			if pinnedKey(t, home, addr) != nil {
				t.Error("a refused key was pinned")
			}
		})
	}
}

// TestPromptOtherNamesInTerminal: a key already pinned for other
// addresses is not "known by no other names": trust-host and connect list
// those addresses, one per line, indented, as ssh does; with
// --visual-host-key the question shows the key's randomart, and without it
// none.
func TestPromptOtherNamesInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	addr, key := keytoolServer(t)
	keyFile := filepath.Join(t.TempDir(), "server.json")
	if err := jwk.WritePublicKeyFile(keyFile, key, jwk.JWK, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	art := key.Randomart()
	for _, tc := range []struct {
		name, prompt string
		args         []string
		visual       bool
	}{
		{"trust-host", "(yes/no/[fingerprint])? ", []string{"trust-host", addr}, false},
		{"trust-host --visual-host-key", "(yes/no/[fingerprint])? ", []string{"trust-host", "--visual-host-key", addr}, true},
		{"connect --visual-host-key", "(yes/no/once/[fingerprint])? ", []string{"connect", "--visual-host-key", addr}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := newClientHome(t)
			for _, other := range []string{"old.example:443", "*.lab.example"} {
				if _, e, code := keytoolIn(t, home, "trust-host", other, "--key", keyFile); code != 0 {
					t.Fatal(e)
				}
			}
			screen := runInTmux(t, append([]string{"keytool", "-H", home}, tc.args...), tc.prompt, []string{"no"})
			want := "ECDSA P-256 key fingerprint is " + key.Fingerprint() + ".\n"
			if tc.visual {
				want += art + "\n"
			}
			want += "Key ID: " + key.KeyID() + "\n" +
				"The ECDSA P-256 host key for " + addr + " is known by the following other names/addresses:\n"
			_, names, _ := strings.Cut(screen, want)
			names, _, _ = strings.Cut(names, "Are you sure")
			if lines := strings.Split(names, "\n"); len(lines) != 3 || !slices.Contains(lines, "    old.example:443") || !slices.Contains(lines, "    *.lab.example") ||
				strings.Contains(screen, "not known by any other names") {
				t.Errorf("the screen lacks\n%s\nit shows:\n%s", want, screen)
			}
			if !tc.visual && strings.Contains(screen, "[SPKI SHA256]") {
				t.Errorf("a randomart without --visual-host-key:\n%s", screen)
			}
		})
	}
}

// TestTrustHostHostileAddressOutcomes gives `keytool trust-host --key` the
// addresses of TestTrustHostHostileAddresses (which only logs what became
// of the ones it accepts) and a few more, each with its expected outcome:
// refused as bad usage (exit 2) with exactly the given message and nothing
// written anywhere, or pinned (exit 0) in exactly one new file, of exactly
// the given name, directly inside HOME/trusted_hosts.d, holding one key
// whose address list is exactly the given normal form. Nothing is ever
// written outside
// the home (the home sits a few directories below the watched root, and the
// working directory is inside the root too, so "../" or a relative path
// would show), and no pin file holds a line or a control character that the
// input brought in.
func TestTrustHostHostileAddressOutcomes(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "up1", "up2", "up3", "home")
	hostDir := filepath.Join(home, "trusted_hosts.d")
	keyFile := filepath.Join(root, "host.json")
	key := writePublicKey(t, keyFile, nil)
	for _, d := range []string{hostDir, filepath.Join(root, "cwd")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(filepath.Join(root, "cwd"))

	// A pin of a plain address, to compare the others with.
	if _, e, code := runKeytool(t, "", "-H", home, "trust-host", "control.example:22", "--key", keyFile); code != 0 {
		t.Fatalf("control pin: exit %d: %s", code, e)
	}
	controlFile := filepath.Join(hostDir, "control.example_22.json")
	control, err := os.ReadFile(controlFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(controlFile); err != nil {
		t.Fatal(err)
	}

	const onlyChars = "the host may hold only letters, digits, '.', '-', '_', ':' (IPv6), '%' (IPv6 zone) and the wildcards '*' and '?', not "
	const badLabel = "a host name's labels must hold 1 to 63 characters"
	const badPort = "the port must be a number from 1 to 65535, or *"
	for _, tc := range []struct {
		addr string
		// Refused: the reason after `address pattern "ADDR": `. A reason
		// ending in "not " checks only that far (see below).
		reason string
		// Pinned: the file name in trusted_hosts.d and the address it holds.
		file, pinned string
	}{
		{addr: "../../etc/passwd:22", reason: onlyChars + "'/'"},
		{addr: "..:22", reason: badLabel},
		{addr: ".:22", reason: "empty host"},
		{addr: "./x:22", reason: onlyChars + "'/'"},
		{addr: "a/b:22", reason: onlyChars + "'/'"},
		{addr: "/abs:443", reason: onlyChars + "'/'"},
		{addr: `a\b:22`, reason: onlyChars + `'\\'`},
		{addr: "x/../../y", reason: onlyChars + "'/'"},
		{addr: "a\nb:22", reason: onlyChars + `'\n'`},
		{addr: "host:22\n*", reason: badPort},
		{addr: "evil\naddress: *", reason: badPort},
		{addr: `evil","address":["*"],"x":"`, reason: onlyChars + `'"'`},
		{addr: "a\rb:22", reason: onlyChars + `'\r'`},
		{addr: "a\tb:22", reason: onlyChars + `'\t'`},
		{addr: "a\x00b:22", reason: onlyChars + `'\x00'`},
		{addr: "\x1b[31mred:22", reason: onlyChars + `'\x1b'`},
		// The refusal names the character typed (U+FFFD for the invalid
		// byte, which lower-casing has already replaced).
		{addr: "a\u2028b:22", reason: onlyChars + `'\u2028'`},
		{addr: "bad\xffutf8:22", reason: onlyChars + `'�'`},
		{addr: ".hidden:22", reason: badLabel},
		{addr: "host:22/../../x", reason: badPort},
		{addr: "[::1/../x]:22", reason: onlyChars + "'/'"},
		{addr: "[fe80::1%eth0/..]:22", reason: badLabel},
		{addr: "!host:22"}, // refused with its own message, below
		{addr: strings.Repeat("n", 300) + ":22", reason: badLabel},
		{addr: " host:22", reason: onlyChars + "' '"},
		{addr: "*..:22", reason: badLabel},                              // would be "*" were trailing dots dropped
		{addr: "%2A:22", reason: "'%' may appear only in an IPv6 zone"}, // would collide with "*:22"'s file
		{addr: "*", file: "%2A.json", pinned: "*"},
		{addr: "*.:22", file: "%2A._22.json", pinned: "*.:22"}, // every rooted name
		{addr: "*.example.com", file: "%2A.example.com.json", pinned: "*.example.com"},
		{addr: "?.example:22", file: "%3F.example_22.json", pinned: "?.example:22"},
		{addr: "HOST.Example:22", file: "host.example_22.json", pinned: "host.example:22"},
		{addr: "HOST.Example.:22", file: "host.example._22.json", pinned: "host.example.:22"}, // rooted: another name
		{addr: "[fe80::1%eth0]:22", file: "fe80__1%25eth0_22.json", pinned: "[fe80::1%eth0]:22"},
		{addr: "host:*", file: "host.json", pinned: "host"},
	} {
		before := filesUnder(t, root)
		stdout, stderr, code := runKeytool(t, "", "-H", home, "trust-host", tc.addr, "--key", keyFile)
		var added []string
		for _, f := range filesUnder(t, root) {
			if !slices.Contains(before, f) {
				added = append(added, f)
			}
		}
		if tc.file == "" { // refused
			if code != 2 {
				t.Errorf("%q: exit %d, want 2 (refused as bad usage)\nstdout: %q\nstderr: %q", tc.addr, code, stdout, stderr)
			}
			if len(added) != 0 {
				t.Errorf("%q: refused, but written: %q", tc.addr, added)
			}
			if stdout != "" {
				t.Errorf("%q: refused, but stdout is %q", tc.addr, stdout)
			}
			line, rest, _ := strings.Cut(stderr, "\n")
			want := "keytool trust-host: address pattern " + strconv.Quote(tc.addr) + ": " + tc.reason
			if tc.addr == "!host:22" {
				want = `keytool trust-host: address "!host:22": a negated pattern cannot be pinned on its own`
			}
			if line != want && !(strings.HasSuffix(want, "not ") && strings.HasPrefix(line, want)) {
				t.Errorf("%q: refused with\n  %q\nwant\n  %q", tc.addr, line, want)
			}
			if rest != "Run 'keytool trust-host --help' for usage.\n" {
				t.Errorf("%q: stderr after the refusal: %q", tc.addr, rest)
			}
			if strings.ContainsAny(line, "\r\x00\x1b\u2028") || !utf8.ValidString(line) {
				t.Errorf("%q: the raw address reached the terminal: %q", tc.addr, line)
			}
			continue
		}
		// Pinned.
		path := filepath.Join(hostDir, tc.file)
		rel, _ := filepath.Rel(root, path)
		if code != 0 || len(added) != 1 || added[0] != rel {
			t.Errorf("%q: exit %d, written %q; want exit 0 and only %s\nstdout: %q\nstderr: %q", tc.addr, code, added, rel, stdout, stderr)
			for _, f := range added {
				os.Remove(filepath.Join(root, f))
			}
			continue
		}
		if want := "Pinned ECDSA P-256 key " + key.Fingerprint() + " for " + tc.addr + " in " + path + "\n"; stdout != want || stderr != "" {
			t.Errorf("%q: stdout %q, stderr %q; want stdout %q", tc.addr, stdout, stderr, want)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// Byte for byte the control pin with the address replaced: no line,
		// member or character more that the input could have brought in.
		quoted := func(a string) string { b, _ := json.Marshal(a); return string(b) }
		if want := strings.Replace(string(control), quoted("control.example:22"), quoted(tc.pinned), 1); string(content) != want {
			t.Errorf("%q: %s holds\n%s\nwant\n%s", tc.addr, tc.file, content, want)
		}
		if i := bytes.IndexFunc(content, func(r rune) bool {
			return r != '\n' && (r < 0x20 || r == 0x7f || r == utf8.RuneError || r == '\u2028' || r == '\u2029')
		}); i >= 0 {
			t.Errorf("%q: %s holds a control character at byte %d: %q", tc.addr, tc.file, i, content)
		}
		var members map[string]json.RawMessage
		if err := json.Unmarshal(content, &members); err != nil {
			t.Errorf("%q: %s is not one JSON object: %v", tc.addr, tc.file, err)
		}
		if got := slices.Sorted(maps.Keys(members)); !slices.Equal(got, []string{"address", "crv", "kty", "x", "y"}) {
			t.Errorf("%q: %s has members %q", tc.addr, tc.file, got)
		}
		keys, err := jwk.ReadFile(path)
		if err != nil || len(keys) != 1 || !keys[0].Equal(key) {
			t.Errorf("%q: %s holds %d keys (%v), want the host's key", tc.addr, tc.file, len(keys), err)
		} else if addrs, _ := keys[0].Attrs.List(jwk.AttrAddress); !slices.Equal(addrs, []string{tc.pinned}) {
			t.Errorf("%q: %s pins %q, want [%q]", tc.addr, tc.file, addrs, tc.pinned)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTrustHostPurposeInTerminal: trust-host --purpose asks as for any
// host, names the purposes in the question, and the answer yes pins the
// key for them only; --fingerprint pins for them too.
func TestTrustHostPurposeInTerminal(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux not installed (.ci/run installs it)")
	}
	addr, key := keytoolServer(t)
	purposesOf := func(home string) string {
		k := pinnedKey(t, home, addr)
		if k == nil {
			return "not pinned"
		}
		ps, err := k.Attrs.List(jwk.AttrPurpose)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(ps, ",")
	}

	home := newClientHome(t)
	screen := runInTmux(t, []string{"keytool", "-H", home, "trust-host", addr, "--purpose", "ldap", "--purpose", "pool"},
		"Are you sure you want to continue connecting (yes/no/[fingerprint])? ", []string{"yes"})
	for _, want := range []string{
		"ECDSA P-256 key fingerprint is " + key.Fingerprint() + ".",
		"Connection purposes: ldap, pool (yes pins the key for these purposes only).",
		"Pinned " + keyPhrase(key),
	} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	if got := purposesOf(home); got != "ldap,pool" {
		t.Errorf("the pin's purposes: %s", got)
	}

	home = newClientHome(t)
	out, e, code := keytoolIn(t, home, "trust-host", addr, "--fingerprint", key.Fingerprint(), "--purpose", "ldap")
	if code != 0 {
		t.Fatalf("--fingerprint --purpose: exit %d\n%s%s", code, out, e)
	}
	if got := purposesOf(home); got != "ldap" || !strings.Contains(out, "For connections of purpose ldap only.") {
		t.Errorf("--fingerprint --purpose ldap: the pin's purposes: %s", got)
	}
	// Pinned for ldap only, the key is not yet pinned for pool: --yes pins
	// it beside, instead of answering "already trusted".
	out, e, code = keytoolIn(t, home, "trust-host", addr, "--yes", "--purpose", "pool")
	if code != 0 || !strings.Contains(out, "Pinned "+keyPhrase(key)) {
		t.Fatalf("--yes --purpose pool beside ldap: exit %d\n%s%s", code, out, e)
	}
	out, e, code = keytoolIn(t, home, "trust-host", addr, "--fingerprint", key.Fingerprint(), "--purpose", "pool,ldap")
	if code != 0 || !strings.Contains(out, "is already trusted") {
		t.Fatalf("--purpose pool,ldap, both pinned: exit %d\n%s%s", code, out, e)
	}
}
