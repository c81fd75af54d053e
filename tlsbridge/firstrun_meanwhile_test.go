package tlsbridge

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// TestLoadOrGenerateSeesAnIdentityMadeMeanwhile: a server's first run
// finds no identity, makes a key, and waits for the lock of the home's
// identity writers, which a keytool gen -f pem holds while it writes
// key.pem. Once it has the lock, the home has an identity: it loads that
// one and writes nothing. Before (found by review, 2026-12-05): it wrote
// key.json beside gen's key.pem (its create-only write looked at
// key.json alone), and then failed on a home of two identities, which
// every command and every later start refused, though gen had said its
// key was made — the "never two keys" this function promises.
func TestLoadOrGenerateSeesAnIdentityMadeMeanwhile(t *testing.T) {
	home := t.TempDir()
	unlock, _, err := LockIdentity(home) // gen's, while it writes
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		id        *Identity
		generated bool
		err       error
	}
	done := make(chan result, 1)
	go func() {
		id, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
		done <- result{id, generated, err}
	}()
	// The first run has looked (no identity) and waits for the lock.
	time.Sleep(300 * time.Millisecond)
	k, err := jwk.Generate(jwk.EC256)
	if err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePrivateKeyFile(filepath.Join(home, "key.pem"), k, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	if err := jwk.WritePublicKeyFile(filepath.Join(home, "pub_key.pem"), k, jwk.PEM, jwk.CreateNew); err != nil {
		t.Fatal(err)
	}
	unlock()
	r := <-done
	if r.err != nil || r.generated || !r.id.Key.Equal(k) {
		t.Fatalf("first run beside a gen: %v, generated %v; want gen's key %s, nothing generated", r.err, r.generated, k.Fingerprint())
	}
	for _, name := range []string{"key.json", "pub_key.json"} {
		if _, err := os.Lstat(filepath.Join(home, name)); err == nil {
			t.Errorf("the first run wrote %s beside gen's key.pem", name)
		}
	}
}
