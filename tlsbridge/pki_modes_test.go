package tlsbridge

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// pkiRefusal checks that PKI mode fails closed because of a file that
// breaks the strict-modes rule: the error is a *PKIFileError naming file,
// and the *trustfile.PermissionError names fault.
func pkiRefusal(t *testing.T, err error, file, fault string) {
	t.Helper()
	var fe *PKIFileError
	var pe *trustfile.PermissionError
	if !errors.As(err, &fe) || fe.File != file || !errors.As(err, &pe) || pe.Path != fault {
		t.Fatalf("err = %v, want a *PKIFileError for %s with a *trustfile.PermissionError naming %s", err, file, fault)
	}
	if !strings.HasPrefix(err.Error(), "tlsbridge: ") || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q: want one line, prefixed, naming %s", err, file)
	}
}

// ca.pem and crl.pem go through the same rule as every trust file: a
// running server in PKI mode admits a CA-signed client, refuses it from
// the handshake after ca.pem became writable by others (the check notices
// a change of mode, which leaves the modification time alone), and admits
// it again once the mode is fixed.
func TestPKIStrictModesServer(t *testing.T) {
	ca := newCA(t)
	srv := newHome(t, jwk.EC256)
	pki := ca.pki(t)
	ts := startServer(t, srv, ServerOptions{PKI: pki})
	cli := newHome(t, jwk.EC256)
	cli.id = ca.issue(t, cli.id.Key)
	cli.pin(t, ts.addr(), srv.id.Key)
	leaf := []*x509.Certificate{cli.id.Certificate.Leaf}
	admitted := func(why string) {
		t.Helper()
		pki.checkedAt.Store(0) // the next handshake checks the files
		if _, err := roundTrip(ts.addr(), mustConfig(t, cli.client(t, ClientOptions{}), ts.addr())); err != nil {
			t.Fatalf("%s: the CA-signed client was refused: %v", why, err)
		}
		if p := ts.lastPeer(t); !p.ViaCA {
			t.Fatalf("%s: the client was not admitted by the CA", why)
		}
	}
	refusedBecause := func(why, file, fault string) {
		t.Helper()
		pki.checkedAt.Store(0)
		refused(t, ts, mustConfig(t, cli.client(t, ClientOptions{}), ts.addr()))
		pkiRefusal(t, pki.Verify(leaf, x509.ExtKeyUsageClientAuth, ""), file, fault)
	}
	admitted("control")

	for _, file := range []string{ca.caFile(), ca.crlFile()} {
		if err := os.Chmod(file, 0o666); err != nil {
			t.Fatal(err)
		}
		refusedBecause(filepath.Base(file)+" mode 0666", file, file)
		if err := os.Chmod(file, 0o644); err != nil {
			t.Fatal(err)
		}
		admitted(filepath.Base(file) + " mode 0644 again")
	}

	// A directory between the file and the home that others may write to.
	// The file's own stat does not change: the check sees the rule's
	// verdict change.
	sub := filepath.Join(ca.dir, "pki")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ca.caFile(), filepath.Join(sub, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("pki", "ca.pem"), ca.caFile()); err != nil {
		t.Fatal(err)
	}
	admitted("ca.pem a link to pki/ca.pem")
	if err := os.Chmod(sub, 0o770); err != nil {
		t.Fatal(err)
	}
	refusedBecause("group-writable directory above the link's target", ca.caFile(), sub)
	if err := os.Chmod(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	admitted("directory mode 0700 again")

	// Another user's file, when this test may give one away.
	if os.Geteuid() == 0 {
		if err := os.Chown(ca.crlFile(), 4242, 4242); err != nil {
			t.Fatal(err)
		}
		refusedBecause("crl.pem owned by another user", ca.crlFile(), ca.crlFile())
		if err := os.Chown(ca.crlFile(), 0, 0); err != nil {
			t.Fatal(err)
		}
		admitted("crl.pem owned by root again")
	}
}

// LoadPKI refuses what the rule refuses, from the start: a file others
// may write, a group-writable directory between the file and the home, a
// link whose target others may write — unless NoStrictModes.
func TestLoadPKIStrictModes(t *testing.T) {
	ca := newCA(t)
	load := func(o PKIOptions) error {
		_, err := LoadPKI(o)
		return err
	}
	opts := PKIOptions{CA: ca.caFile(), CRL: ca.crlFile(), Home: ca.dir}
	if err := load(opts); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(ca.caFile(), 0o646); err != nil {
		t.Fatal(err)
	}
	pkiRefusal(t, load(opts), ca.caFile(), ca.caFile())
	if err := load(PKIOptions{CA: ca.caFile(), CRL: ca.crlFile(), Home: ca.dir, NoStrictModes: true}); err != nil {
		t.Errorf("NoStrictModes: %v", err)
	}
	if err := os.Chmod(ca.caFile(), 0o644); err != nil {
		t.Fatal(err)
	}

	// HOME/etc/ca.pem with HOME/etc group-writable; the home's own mode
	// is checked too.
	etc := filepath.Join(ca.dir, "etc")
	if err := os.Mkdir(etc, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(etc, 0o775); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(ca.caFile())
	if err != nil {
		t.Fatal(err)
	}
	inner := filepath.Join(etc, "ca.pem")
	if err := os.WriteFile(inner, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pkiRefusal(t, load(PKIOptions{CA: inner, Home: ca.dir}), inner, etc)
	if err := os.Chmod(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := load(PKIOptions{CA: inner, Home: ca.dir}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(ca.dir, 0o777); err != nil {
		t.Fatal(err)
	}
	pkiRefusal(t, load(PKIOptions{CA: inner, Home: ca.dir}), inner, ca.dir)
	if err := os.Chmod(ca.dir, 0o700); err != nil {
		t.Fatal(err)
	}

	// A link from the home to a CA bundle in a directory anyone may write.
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(open, "ca.pem")
	if err := os.WriteFile(target, data, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(ca.dir, "linked.pem")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	pkiRefusal(t, load(PKIOptions{CA: link, Home: ca.dir}), link, open)
}
