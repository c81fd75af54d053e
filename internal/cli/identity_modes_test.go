package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestIdentityInAnUnsafeHomeRefused: `keytool proxy` and `keytool cert`
// (real processes) refuse the identity of a home that others can write,
// or a key.json owned by another user — anyone who can write the home
// can put a key of their own there, which the proxy, running as root,
// would read and present — naming the home or file and the fix, as for
// the trust files beside it. Before: the proxy served with that key. So
// do `keytool pub` and `dns-record`, which hand out the key the home
// presents: they printed that key.
func TestIdentityInAnUnsafeHomeRefused(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if out, err := keytoolCmd("-H", home, "gen").CombinedOutput(); err != nil {
		t.Fatalf("gen: %v\n%s", err, out)
	}
	if err := os.Chmod(home, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", "127.0.0.1:1"},
		{"-H", home, "cert"},
		{"-H", home, "pub"},
		{"-H", home, "dns-record", "--host", "db.example"},
	} {
		out, code := runUntilListening(t, keytoolCmd(args...))
		if code != 1 || !strings.Contains(out, "Fix with: chmod go-w "+home+"\n") {
			t.Errorf("keytool %s in a home of mode 0777: exit %d, %s; want exit 1 and the chmod", args[2], code, out)
		}
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := keytoolCmd("-H", home, "cert").CombinedOutput(); err != nil {
		t.Fatalf("cert once the home is fixed: %v\n%s", err, out)
	}
	if os.Geteuid() != 0 {
		return
	}
	key := filepath.Join(home, "key.json")
	if err := os.Chown(key, 65534, -1); err != nil {
		t.Fatal(err)
	}
	for _, command := range []string{"cert", "pub"} {
		cmd := keytoolCmd("-H", home, command)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "Fix with: chown 0 "+key+"\n") {
			t.Errorf("keytool %s with key.json owned by uid 65534: exit %d, %s; want exit 1 and the chown", command, code, out)
		}
	}
}

// TestRootInAServicesHome: root running keytool on a service's home (a
// home of uid 65534's) is refused, as any user's is in a home of
// another's, but the fix is not to take the home from the service
// (chown 0 would lock the service out of its own key): it is the same
// command run as the home's owner, repeated with every flag given, and
// chown 0 only for a home root is to own.
func TestRootInAServicesHome(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CI runs as root): a home of another user's")
	}
	home := filepath.Join(t.TempDir(), "svc home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := keytoolCmd("-H", home, "gen", "-t", "ed25519")
	out, _ := cmd.CombinedOutput()
	want := "Fix with: run the command as uid 65534, the home's owner: sudo -u '#65534' keytool -H " + shellQuote(home) + " gen -t ed25519 (or, for root to own it: chown 0 " + shellQuote(home) + ")\n"
	if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), want) {
		t.Errorf("root's gen in a home of uid 65534's: exit %d,\n%s\nwant exit 1 and\n%s", code, out, want)
	}
	if des, _ := os.ReadDir(home); len(des) != 0 {
		t.Errorf("the refused gen wrote %v", des)
	}
}

// runUntilListening runs cmd to its end and returns its standard error
// and exit code; a proxy that starts listening is killed (exit -1).
func runUntilListening(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=listening") {
			_ = cmd.Process.Kill()
		}
	}
	_ = cmd.Wait()
	return out.String(), cmd.ProcessState.ExitCode()
}
