package tlsbridge

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/keytool/keytool/internal/atomicfile"
)

// UninstallCA syncs the directory of each file it removed — the CA's,
// its CRL's — once they are gone, before it returns: else a power loss
// seconds later could bring the CA back, trusted again.
func TestUninstallCAIsDurable(t *testing.T) {
	home, dir, caPEM, crlPEM := caDirHome(t)
	got, err := InstallCA(dir, CAInstall{CA: caPEM, CRL: crlPEM, Purpose: "ldap", Name: "corp"})
	if err != nil {
		t.Fatal(err)
	}
	var synced []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(d string) error {
		synced = append(synced, d)
		for _, f := range []string{got.File, got.CRLFile} {
			if _, err := os.Lstat(f); err == nil {
				t.Errorf("%s synced while %s is still there", d, f)
			}
		}
		return old(d)
	}
	if _, err := UninstallCA(dir, home, "ldap/corp"); err != nil {
		t.Fatal(err)
	}
	if want := []string{filepath.Join(dir, "ldap")}; !slices.Equal(synced, want) {
		t.Errorf("synced %v, want %v", synced, want)
	}
}

// A removal cut short by a failure syncs what it removed before it: the
// CAs gone, and the CA whose CRL could not be removed (found by review:
// an error returned before any sync).
func TestUninstallCACutShortIsDurable(t *testing.T) {
	home, dir, caPEM, crlPEM := caDirHome(t)
	var files []string
	for _, purpose := range []string{"a", "b"} {
		got, err := InstallCA(dir, CAInstall{CA: caPEM, CRL: crlPEM, Purpose: purpose, Name: "corp"})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, got.File)
	}
	// b's CRL cannot be removed: a directory with a file in it (even
	// root cannot remove that with unlink).
	crl := filepath.Join(dir, "b", "corp.crl.pem")
	if err := os.Remove(crl); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(crl, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	var synced []string
	old := atomicfile.SyncDir
	t.Cleanup(func() { atomicfile.SyncDir = old })
	atomicfile.SyncDir = func(d string) error {
		synced = append(synced, d)
		return old(d)
	}
	if _, err := UninstallCA(dir, home, "corp"); err == nil {
		t.Fatal("UninstallCA with a CRL that cannot be removed: no error")
	}
	for _, f := range files {
		if _, err := os.Lstat(f); err == nil {
			t.Fatalf("%s not removed: the test proves nothing", f)
		}
		if !slices.Contains(synced, filepath.Dir(f)) {
			t.Errorf("%s removed, its directory not synced (synced: %v)", f, synced)
		}
	}
}

// caDirHome is a home (mode 0700) whose CA directory is dir (not made
// yet), and a CA's certificate and CRL to install in it.
func caDirHome(t *testing.T) (home, dir string, caPEM, crlPEM []byte) {
	t.Helper()
	home = t.TempDir()
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := newCA(t)
	caPEM, _ = os.ReadFile(ca.caFile())
	crlPEM, _ = os.ReadFile(ca.crlFile())
	return home, filepath.Join(home, "ca.d"), caPEM, crlPEM
}
