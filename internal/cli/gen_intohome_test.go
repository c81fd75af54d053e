package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/tlsbridge"
)

// TestGenIdentityFileOfTheHome: keytool -i key.pem gen run in the home
// directory — the command keytool's own advice gives for gen -f key.pem
// (ssh-keygen's -f) — names a file of the home's identity by -i, which
// gen writes as any key file: beside key.json a second identity, which
// nothing loads, with pub_key.json rewritten to the new key's public
// half, no longer the identity's. gen refuses it, writing nothing, with
// the command that makes the home's identity. Before (found by review,
// 2026-12-05): exit 0, and a home of two identities.
func TestGenIdentityFileOfTheHome(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	keytoolOK(t, "-H", home, "gen")
	pub := filepath.Join(home, "pub_key.json")
	before, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-i", "key.pem", "gen"},
		{"-i", "key.next.json", "gen"},
		{"-i", filepath.Join(home, "key.jwk"), "gen", "--force"},
	} {
		cmd := keytoolCmd(append([]string{"-H", home}, args...)...)
		cmd.Dir = home
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "keytool -H "+home+" gen") {
			t.Errorf("keytool %s in the home: exit %d, want 1 with the command that makes the home's identity:\n%s", strings.Join(args, " "), code, out)
		}
		for _, name := range []string{"key.pem", "key.jwk", "key.next.json", "pub_key.pem", "pub_key.next.json"} {
			if _, err := os.Lstat(filepath.Join(home, name)); err == nil {
				t.Errorf("keytool %s wrote %s", strings.Join(args, " "), name)
				os.Remove(filepath.Join(home, name))
			}
		}
		if now, _ := os.ReadFile(pub); !bytes.Equal(now, before) {
			t.Errorf("keytool %s rewrote pub_key.json", strings.Join(args, " "))
			os.WriteFile(pub, before, 0o644)
		}
	}
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home does not load: %v", err)
	}
}

// TestGenIdentityFileOfAnotherHome: the same command run in a home that
// is not the one keytool uses — a service's home, with KEYTOOL_HOME (or
// no -H) naming another: the file -i names is of that home's identity
// all the same, and beside its key.json it made a second identity and
// rewrote its pub_key.json with the new key's public half. Before (found
// by review, 2026-12-05): only the home keytool used was looked at, and
// the service's home loaded nowhere. A directory holding no key of a
// home's takes a key.json, as any file -i names.
func TestGenIdentityFileOfAnotherHome(t *testing.T) {
	dir := t.TempDir()
	svc := filepath.Join(dir, "svc")
	keytoolOK(t, "-H", svc, "gen")
	pub := filepath.Join(svc, "pub_key.json")
	before, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-i", "key.pem", "gen"},
		{"-i", "key.jwk", "gen", "--force"},
		{"-i", "key.next.pem", "gen", "-f", "pem"},
		{"-i", "key.json", "gen", "--force"},
	} {
		cmd := keytoolCmd(args...)
		cmd.Dir = svc
		cmd.Env = append(os.Environ(), "KEYTOOL_HOME="+filepath.Join(dir, "default"))
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "keytool -H . gen") {
			t.Errorf("keytool %s in a home not used: exit %d, want 1 with the command that makes its identity:\n%s", strings.Join(args, " "), code, out)
		}
		for _, name := range []string{"key.pem", "key.jwk", "key.next.pem", "pub_key.pem", "pub_key.next.pem"} {
			if _, err := os.Lstat(filepath.Join(svc, name)); err == nil {
				t.Errorf("keytool %s wrote %s", strings.Join(args, " "), name)
				os.Remove(filepath.Join(svc, name))
			}
		}
		if now, _ := os.ReadFile(pub); !bytes.Equal(now, before) {
			t.Errorf("keytool %s rewrote pub_key.json", strings.Join(args, " "))
			os.WriteFile(pub, before, 0o644)
		}
	}
	if _, err := tlsbridge.LoadHomeIdentity(svc, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home does not load: %v", err)
	}
	keytoolOK(t, "-i", filepath.Join(dir, "ids", "key.json"), "gen")
}

// TestGenIdentityFileWhosePublicHalfIsTheHomes: -i key, key.txt or
// key.next in a home — no key file name of the home's, but gen writes its
// public half beside it as pub_ and its name without extension:
// pub_key.json, the public half of the home's identity (key.next.txt:
// pub_key.next.json, the next key's) — is refused, nothing written,
// naming the public half it would replace. Before (found by review,
// 2026-12-06): exit 0, pub_key.json the new key's, and the home no longer
// loaded (tlsbridge.PublicKeyError). Elsewhere the same names are written.
func TestGenIdentityFileWhosePublicHalfIsTheHomes(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	keytoolOK(t, "-H", home, "gen")
	keytoolOK(t, "-H", home, "gen", "--next")
	before, err := os.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"key", "key.txt", "key.next", "key.next.txt"} {
		file := filepath.Join(home, name)
		cmd := keytoolCmd("-H", home, "-i", file, "gen")
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(string(out), "public half of the home") {
			t.Errorf("keytool -i %s gen: exit %d, want 1 naming the home's public half:\n%s", name, code, out)
		}
		if _, err := os.Lstat(file); err == nil {
			t.Errorf("keytool -i %s gen wrote it", name)
		}
	}
	if now, _ := os.ReadFile(filepath.Join(home, "pub_key.json")); !bytes.Equal(now, before) {
		t.Error("pub_key.json was rewritten")
	}
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home does not load: %v", err)
	}
	keytoolOK(t, "-i", filepath.Join(t.TempDir(), "key"), "gen")
}
