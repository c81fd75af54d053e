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
	Expires bool                                      // the key's entry must expire soon (ExpiryAhead)
	Do      func(t testing.TB, w Withdrawn) time.Time // makes the change; returns when it took effect
	Reason  string                                    // a regexp of the reason the closing is logged with
	AllKeys bool                                      // every connection ends, not only the key's
}

// Withdrawn is what a Withdrawal acts on: the home's revocation directory
// (holding other.json, another key's revocation), the key, the file that
// authorizes it (under the name "alice") and, for Expires, its expiry.
type Withdrawn struct {
	RevokedDir string
	File       string
	Key        *jwk.Key
	Expires    time.Time
}

// ExpiryAhead is an expiry a few seconds ahead, on a whole second (as
// RFC 3339 in a key file keeps it).
func ExpiryAhead() time.Time {
	return time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
}

// Withdrawals are the ways a key stops being admitted: revoked, removed,
// expired, its "from" no longer matching, and a revocation input failing
// closed (unsafe modes, a dangling link), which ends every connection.
func Withdrawals() []Withdrawal {
	return []Withdrawal{
		{"revoked", false, func(t testing.TB, w Withdrawn) time.Time {
			Put(t, filepath.Join(w.RevokedDir, "alice.json"), JWK(t, w.Key.PublicKey()))
			return time.Now()
		}, `authkeys: key SHA256:\S+ is revoked`, false},
		{"removed", false, func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Remove(w.File); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `authkeys: key SHA256:\S+ is not authorized`, false},
		{"expired", true, func(t testing.TB, w Withdrawn) time.Time {
			time.Sleep(time.Until(w.Expires))
			return w.Expires
		}, `expired`, false},
		{"from no longer matching", false, func(t testing.TB, w Withdrawn) time.Time {
			k := WithAttrs(w.Key.PublicKey(), jwk.AttrName, "alice", jwk.AttrFrom, "192.0.2.0/24")
			Replace(t, w.File, JWK(t, k))
			return time.Now()
		}, `192\.0\.2\.0/24`, false},
		{"revocation file unsafe", false, func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Chmod(filepath.Join(w.RevokedDir, "other.json"), 0o666); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `a revocation list cannot be read, so every key is refused: \S+other\.json: permissions 0666`, true},
		{"revocation link dangling", false, func(t testing.TB, w Withdrawn) time.Time {
			if err := os.Symlink(filepath.Join(t.TempDir(), "gone.json"), filepath.Join(w.RevokedDir, "gone.json")); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}, `a revocation list cannot be read, so every key is refused: \S+gone\.json: \S+ is a symbolic link to a file that does not exist`, true},
	}
}
