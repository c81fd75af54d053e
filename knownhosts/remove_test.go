package knownhosts

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/keydir/keydirtest"
	"github.com/keytool/keytool/jwk"
)

// Remove by fingerprint takes every form the other stores take — the one
// matcher, keydir.Loader.Find — and every copy: RFC 7638 thumbprints used to be
// refused here while authorize --remove took them.
func TestRemoveByEveryFingerprintForm(t *testing.T) {
	k := key(t, 1)
	forms := map[string]string{
		"SHA256":     k.Fingerprint(),
		"key ID":     k.KeyID(),
		"thumbprint": k.Thumbprint(),
	}
	for form, fp := range forms {
		t.Run(form, func(t *testing.T) {
			s, opts := load(t, map[string]*jwk.Key{"a.json": pinned(t, 1, "a.example:1"), "b.json": pinned(t, 1, "b.example:1"), "c.json": pinned(t, 2, "c.example:1")})
			removed, err := s.Remove(fp)
			if err != nil || len(removed) != 2 {
				t.Fatalf("Remove(%s) = %v, %v; want both copies", fp, removed, err)
			}
			var unknown *UnknownHostError
			if err := s.Check("a.example:1", k); !errors.As(err, &unknown) {
				t.Errorf("a.example after Remove: %v", err)
			}
			if err := s.Check("c.example:1", key(t, 2)); err != nil {
				t.Errorf("the other key: %v", err)
			}
			_ = opts
		})
	}
}

// ssh-keygen's own fingerprint of an OpenSSH key names it too.
func TestRemoveBySSHKeygenFingerprint(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen not installed (.ci/run installs it)")
	}
	home := t.TempDir()
	opts := HomeOptions(home)
	k := pinned(t, 3, "ssh.example:22")
	line := keydirtest.SSH(t, k)
	file := filepath.Join(t.TempDir(), "k.pub")
	keydirtest.Write(t, file, line)
	out, err := exec.Command("ssh-keygen", "-lf", file).Output()
	if err != nil {
		t.Fatal(err)
	}
	fp := strings.Fields(string(out))[1]
	keydirtest.Write(t, filepath.Join(opts.Dirs[0], "ssh.json"), keydirtest.JWK(t, k))
	s := Load(opts)
	if removed, err := s.Remove(fp); err != nil || len(removed) != 1 {
		t.Fatalf("Remove(%s) = %v, %v", fp, removed, err)
	}
}
