package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// The home's writers of its identity — gen in every form, rotate — take
// the home's lock (HOME/.keytool.lock, docs/design.md "Concurrent
// writers"), held from their read to their last write: run at the same
// moment as real processes on one home, each one's key file and public
// half are written together, so that the private key and the public half
// always match. Without the lock, two gen --force interleaved one round
// in four on a 2-core machine (key.json from one run, pub_key.json from
// the other: found by review, 2026-12-03), and a gen --force during a
// rotate left pub_key.json the next key's beside gen's key, one round in
// ten (both measured by taking the lock out: tlsbridge.LockIdentity).
func TestConcurrentIdentityWritersMatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rounds int
		setup  [][]string // run first, one after the other, after -H HOME
		racers [][]string // run at once, after -H HOME
	}{
		{"gen --force ×3", 30, nil, [][]string{{"gen", "--force"}, {"gen", "--force"}, {"gen", "--force"}}},
		{"gen --force and rotate", 40, [][]string{{"gen", "--next", "--force"}}, [][]string{{"gen", "--force"}, {"rotate"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := filepath.Join(t.TempDir(), "home")
			keytoolOK(t, "-H", home, "gen")
			mismatched := 0
			for round := range tc.rounds {
				// Each rotation keeps the identity as key.old.<UTC second>:
				// one of the round before, in the same second, would stop it.
				olds, _ := filepath.Glob(filepath.Join(home, "key.old.*"))
				for _, old := range olds {
					if err := os.Remove(old); err != nil {
						t.Fatal(err)
					}
				}
				for _, args := range tc.setup {
					keytoolOK(t, append([]string{"-H", home}, args...)...)
				}
				errs := runAtOnce(home, tc.racers)
				for _, err := range errs {
					if err != nil {
						t.Errorf("round %d: %v", round, err)
					}
				}
				if why := identityMismatch(home); why != "" {
					mismatched++
					t.Errorf("round %d: %s", round, why)
				}
			}
			if mismatched > 0 {
				t.Errorf("%d of %d rounds left a key and a public half that do not match", mismatched, tc.rounds)
			}
		})
	}
}

// runAtOnce starts keytool -H home with each of cmds as a process, all at
// once, and returns each one's failure (nil when it exited 0).
func runAtOnce(home string, cmds [][]string) []error {
	errs := make([]error, len(cmds))
	var start, done sync.WaitGroup
	start.Add(1)
	for i, args := range cmds {
		done.Add(1)
		cmd := exec.Command("keytool", append([]string{"-H", home}, args...)...)
		noTerminal(cmd)
		cmd.Env = pxEnv()
		go func() {
			defer done.Done()
			start.Wait()
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("keytool %s: %v: %s", strings.Join(args, " "), err, out)
			}
		}()
	}
	start.Done()
	done.Wait()
	return errs
}

// identityMismatch says how the home's key files and their public halves
// do not match — the identity's (key.json, pub_key.json), and the next
// key's where there is one — or "" when they do.
func identityMismatch(home string) string {
	for _, pair := range [][2]string{{"key.json", "pub_key.json"}, {"key.next.json", "pub_key.next.json"}} {
		priv, errPriv := jwk.ReadFile(filepath.Join(home, pair[0]))
		pub, errPub := jwk.ReadFile(filepath.Join(home, pair[1]))
		switch {
		case errPriv != nil && errPub != nil && pair[0] == "key.next.json":
			continue // no next key, and no public half of one
		case errPriv != nil || errPub != nil:
			return fmt.Sprintf("%s: %v; %s: %v", pair[0], errPriv, pair[1], errPub)
		case len(priv) != 1 || len(pub) != 1:
			return fmt.Sprintf("%s holds %d keys, %s %d", pair[0], len(priv), pair[1], len(pub))
		case !priv[0].Equal(pub[0]):
			return fmt.Sprintf("%s holds %s, but %s %s", pair[0], priv[0].Fingerprint(), pair[1], pub[0].Fingerprint())
		}
	}
	return ""
}
