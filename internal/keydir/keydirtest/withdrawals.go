package keydirtest

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keytool/keytool/jwk"
)

// A Withdrawal is one way an authorized key stops being admitted while a
// connection it made is open: the live-revocation tests of the proxy and
// of tlsbridge each run every one.
type Withdrawal struct {
	Name    string
	Do      func(t testing.TB, w Withdrawn) time.Time // makes the change; returns when it took effect
	Reason  string                                    // a regexp of the reason the closing is logged with
	AllKeys bool                                      // every connection ends, not only the key's
}

// Withdrawn is what a Withdrawal acts on: the home's revocation directory
// (holding other.json, another key's revocation), the key, the file that
// authorizes it (under the name "alice") and Expiry, the expiry of the
// key's entry in the store under test (zero: none, or no entry).
type Withdrawn struct {
	RevokedDir string
	File       string
	Key        *jwk.Key
	Expiry     func() time.Time
}

// Withdrawals are the ways a key stops being admitted: revoked, removed,
// expired, its "from" no longer matching, and a revocation input failing
// closed (unsafe modes, a dangling link), which ends every connection.
func Withdrawals() []Withdrawal {
	return []Withdrawal{
		{"revoked", func(t testing.TB, w Withdrawn) time.Time {
			Put(t, filepath.Join(w.RevokedDir, "alice.json"), JWK(t, w.Key.PublicKey()))
			return time.Now()
		}, `authkeys: key SHA256:\S+ is revoked`, false},
		{"removed", func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Remove(w.File); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `authkeys: key SHA256:\S+ is not authorized`, false},
		{"expired", func(t testing.TB, w Withdrawn) time.Time {
			// The entry gets its expiry only now, when the key's
			// connections are open: written before them, it could pass
			// while a loaded machine still starts them (openssl s_client
			// has taken over 5 s), and the key would be refused at its
			// handshake instead. A few seconds ahead, on a whole second
			// (as RFC 3339 in a key file keeps it), leave the reload of
			// one small file ample time.
			exp := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
			Replace(t, w.File, JWK(t, WithAttrs(w.Key.PublicKey(), jwk.AttrName, "alice", jwk.AttrExpires, exp.UTC().Format(time.RFC3339))))
			for deadline := time.Now().Add(30 * time.Second); !w.Expiry().Equal(exp); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the store never had alice's entry expiring at %v (it has %v)", exp, w.Expiry())
				}
			}
			time.Sleep(time.Until(exp))
			return exp
		}, `expired`, false},
		{"from no longer matching", func(t testing.TB, w Withdrawn) time.Time {
			k := WithAttrs(w.Key.PublicKey(), jwk.AttrName, "alice", jwk.AttrFrom, "192.0.2.0/24")
			Replace(t, w.File, JWK(t, k))
			return time.Now()
		}, `192\.0\.2\.0/24`, false},
		{"revocation file unsafe", func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Chmod(filepath.Join(w.RevokedDir, "other.json"), 0o666); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `a revocation list cannot be read, so every key is refused: \S+other\.json: permissions 0666`, true},
		{"revocation link dangling", func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Symlink(filepath.Join(t.TempDir(), "gone.json"), filepath.Join(w.RevokedDir, "gone.json")); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `a revocation list cannot be read, so every key is refused: \S+gone\.json: \S+ is a symbolic link to a file that does not exist`, true},
	}
}
