package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestPublicHalfNotTheIdentitysFix: a home whose pub_key.json holds
// another key than its identity (another home's, copied over it) is
// refused by every command that loads the identity, and list names the
// file with the fix — a keytool pub into it — which, run as given,
// makes the home load again with pub_key.json its identity's. A rotation
// killed before it wrote the public half is finished by the next command
// instead: pub_key.json is the new identity's, and list says nothing.
func TestPublicHalfNotTheIdentitysFix(t *testing.T) {
	home, other := filepath.Join(t.TempDir(), "home"), filepath.Join(t.TempDir(), "other")
	keytoolOK(t, "-H", home, "gen")
	keytoolOK(t, "-H", other, "gen")
	pub := filepath.Join(home, "pub_key.json")
	data, err := os.ReadFile(filepath.Join(other, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := keytoolCmd("-H", home, "list").CombinedOutput()
	fix := regexp.MustCompile(`keytool -H \S+ pub > \S+`).FindString(string(out))
	if strings.Contains(string(out), "Problems: none") || !strings.Contains(string(out), pub) || fix == "" {
		t.Fatalf("list of a home whose pub_key.json is another key's:\n%s", out)
	}
	if _, e, code := keytoolIn(t, home, "cert", "-o", filepath.Join(t.TempDir(), "cert.pem")); code != 1 || !strings.Contains(e, "not the public half of the identity") {
		t.Errorf("cert: exit %d: %s", code, e)
	}
	if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", fix, err, out)
	}
	if out, _ := keytoolCmd("-H", home, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list after the fix:\n%s", out)
	}

	// A rotation cut short: the next key renamed over the identity, the
	// public halves not yet written.
	keytoolOK(t, "-H", home, "gen", "--next")
	next, err := jwk.ReadFile(filepath.Join(home, "pub_key.next.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(home, "key.json"), filepath.Join(home, "key.old.20261205T000000Z.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(home, "key.next.json"), filepath.Join(home, "key.json")); err != nil {
		t.Fatal(err)
	}
	if out, _ := keytoolCmd("-H", home, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list of a rotation cut short:\n%s", out)
	}
	if keys, err := jwk.ReadFile(pub); err != nil || len(keys) != 1 || !keys[0].Equal(next[0]) {
		t.Errorf("pub_key.json after the first command: %v, want the new identity's %s", err, next[0].Fingerprint())
	}
	if _, err := os.Lstat(filepath.Join(home, "pub_key.next.json")); err == nil {
		t.Error("pub_key.next.json is left")
	}

	// Cut short again; rotate run again finishes it, and says so.
	keytoolOK(t, "-H", home, "gen", "--next")
	next, err = jwk.ReadFile(filepath.Join(home, "pub_key.next.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(home, "key.json"), filepath.Join(home, "key.old.20261205T000001Z.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(home, "key.next.json"), filepath.Join(home, "key.json")); err != nil {
		t.Fatal(err)
	}
	if out := keytoolOK(t, "-H", home, "rotate"); !strings.Contains(out, "is finished") || !strings.Contains(out, next[0].Fingerprint()) {
		t.Errorf("rotate of a rotation cut short: %s", out)
	}
	if keys, err := jwk.ReadFile(pub); err != nil || len(keys) != 1 || !keys[0].Equal(next[0]) {
		t.Errorf("pub_key.json after rotate: %v, want the new identity's %s", err, next[0].Fingerprint())
	}
}

// TestNextPublicHalfNotTheNextKeysFix: a home whose pub_key.next.json
// holds another key than its next key (another home's, copied over it)
// is refused by every command that loads the identity, and list names
// the file with the fix — keytool pub of the next key into it — which,
// run as given, makes the home load again; a pub_key.next.json of a home
// with no next key is named with its rm. Before (found by review,
// 2026-12-05): pub_key.next.* was checked against nothing, and list said
// "Problems: none".
func TestNextPublicHalfNotTheNextKeysFix(t *testing.T) {
	home, other := filepath.Join(t.TempDir(), "home"), filepath.Join(t.TempDir(), "other")
	keytoolOK(t, "-H", home, "gen")
	keytoolOK(t, "-H", home, "gen", "--next")
	keytoolOK(t, "-H", other, "gen")
	nextPub := filepath.Join(home, "pub_key.next.json")
	copyInto := func() {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(other, "pub_key.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(nextPub, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyInto()
	out, _ := keytoolCmd("-H", home, "list").CombinedOutput()
	fix := regexp.MustCompile(`keytool -H \S+ pub \S+key\.next\.json > \S+`).FindString(string(out))
	if strings.Contains(string(out), "Problems: none") || !strings.Contains(string(out), nextPub) || fix == "" {
		t.Fatalf("list of a home whose pub_key.next.json is another key's:\n%s", out)
	}
	if _, e, code := keytoolIn(t, home, "cert", "-o", filepath.Join(t.TempDir(), "cert.pem")); code != 1 || !strings.Contains(e, "not the public half of the next key") {
		t.Errorf("cert: exit %d: %s", code, e)
	}
	if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", fix, err, out)
	}
	if out, _ := keytoolCmd("-H", home, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list after the fix:\n%s", out)
	}

	// No next key.
	if err := os.Remove(filepath.Join(home, "key.next.json")); err != nil {
		t.Fatal(err)
	}
	copyInto()
	out, _ = keytoolCmd("-H", home, "list").CombinedOutput()
	fix = regexp.MustCompile(`rm \S+pub_key\.next\.json`).FindString(string(out))
	if strings.Contains(string(out), "Problems: none") || !strings.Contains(string(out), "no next key") || fix == "" {
		t.Fatalf("list of a home with no next key and a pub_key.next.json:\n%s", out)
	}
	if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", fix, err, out)
	}
	if out, _ := keytoolCmd("-H", home, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list after the fix:\n%s", out)
	}
}

// TestPublicHalfBesideIdentityFileFix: keytool -i FILE gen writes the
// key's public half beside it (pub_NAME.json); one that holds another key
// is refused by every command that loads -i FILE, as a home's pub_key.*
// is, and list -i FILE names it with the fix, keytool -i FILE pub into
// it, which works as given. gen -i FILE --force -f pem removes the
// public half of the key it replaces in the other format. Before (found
// by review, 2026-12-05): nothing looked at it, and the file copied to
// peers named a key never presented.
func TestPublicHalfBesideIdentityFileFix(t *testing.T) {
	dir, other := t.TempDir(), filepath.Join(t.TempDir(), "other")
	keytoolOK(t, "-H", other, "gen")
	id := filepath.Join(dir, "id.json")
	keytoolOK(t, "-i", id, "gen")
	pub := filepath.Join(dir, "pub_id.json")
	data, err := os.ReadFile(filepath.Join(other, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, data, 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(t.TempDir(), "home")
	out, _ := keytoolCmd("-H", home, "-i", id, "list").CombinedOutput()
	fix := regexp.MustCompile(`keytool -i \S+ pub > \S+`).FindString(string(out))
	if strings.Contains(string(out), "Problems: none") || !strings.Contains(string(out), pub) || fix == "" {
		t.Fatalf("list -i of a key whose pub_ file is another key's:\n%s", out)
	}
	cmd := keytoolCmd("-H", home, "-i", id, "cert", "-o", filepath.Join(t.TempDir(), "cert.pem"))
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "not the public half of the identity") {
		t.Errorf("cert -i: exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
	if out, err := exec.Command("sh", "-c", fix).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", fix, err, out)
	}
	if out, _ := keytoolCmd("-H", home, "-i", id, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list -i after the fix:\n%s", out)
	}

	// A new key in another format: the old key's pub_id.json goes.
	pem := filepath.Join(dir, "id.pem")
	if err := os.Rename(id, pem); err != nil {
		t.Fatal(err)
	}
	keytoolOK(t, "-i", pem, "gen", "--force", "-f", "pem")
	if _, err := os.Lstat(pub); err == nil {
		t.Errorf("%s, the replaced key's public half, is left", pub)
	}
	if out, _ := keytoolCmd("-H", home, "-i", pem, "list").CombinedOutput(); !strings.Contains(string(out), "Problems: none") {
		t.Errorf("list -i after gen --force -f pem:\n%s", out)
	}
}
