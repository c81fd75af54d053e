package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/tlsbridge"
)

// TestKillAtEveryWrite kills a command (kill -9) at each step of each of
// its writes in turn — the temporary file just created, filled but not in
// place, in place but its directory not synced — where TestKillDuringWrites
// kills at random moments and cannot count on one landing inside a write.
// The process stops itself at the step (holdEnv) and says so; the test
// kills it there. After every kill the home holds only complete files (the
// old or the new, never a part: the moby key.json bug), an identity is
// never lost, the stores load without a problem, and the command run
// again succeeds: what the kill left does not stand in its way.
func TestKillAtEveryWrite(t *testing.T) {
	steps := []string{atomicfile.StepCreated, atomicfile.StepFilled, atomicfile.StepPlaced}
	for _, tc := range []struct {
		name string
		// setup prepares a home in root and returns the command's
		// arguments; check looks at the home after a kill.
		setup func(t *testing.T, root, home string) []string
		check func(t *testing.T, home string)
		again []string // the command run again, if not the same
		// final, if set, looks at the home once the command ran again.
		final func(t *testing.T, home string)
	}{{
		name:  "gen",
		again: []string{"gen", "--force"},
		setup: func(t *testing.T, root, home string) []string { return []string{"-H", home, "gen"} },
		check: func(t *testing.T, home string) { checkIdentity(t, home, "") },
	}, {
		name: "gen --force",
		setup: func(t *testing.T, root, home string) []string {
			keytoolOK(t, "-H", home, "gen")
			return []string{"-H", home, "gen", "--force"}
		},
		check: func(t *testing.T, home string) { checkIdentity(t, home, "the old identity or the new") },
		again: []string{"gen", "--force"},
	}, {
		// Killed at any step, the home loads: the next key has its own
		// public half or none. Before, killed once the new next key was
		// placed, pub_key.next.json was the replaced next key's, which
		// no file of the home keeps, and a load refused the home
		// (tlsbridge.PublicKeyError): no restart, and a watching
		// server announced the replaced next key.
		name:  "gen --next --force",
		setup: genNextForce(),
		check: checkNextForceKilled,
		final: func(t *testing.T, home string) { checkNextPublicHalf(t, home, false) },
	}, {
		// The same, with -f pem: key.next.json becomes key.next.pem,
		// pub_key.next.json pub_key.next.pem.
		name:  "gen --next --force -f pem",
		setup: genNextForce("-f", "pem"),
		check: checkNextForceKilled,
		final: func(t *testing.T, home string) { checkNextPublicHalf(t, home, false) },
	}, {
		name: "authorize",
		setup: func(t *testing.T, root, home string) []string {
			old := filepath.Join(root, "old.json")
			writePublicKey(t, old, nil)
			keytoolOK(t, "-H", home, "authorize", "--name", "old", old)
			pub := filepath.Join(root, "new.json")
			writePublicKey(t, pub, nil)
			return []string{"-H", home, "authorize", "--name", "new", pub}
		},
		check: func(t *testing.T, home string) {
			dir := filepath.Join(home, "authorized_keys.d")
			checkNoPartialFiles(t, dir, false)
			s := authkeys.Load(authkeys.HomeOptions(home))
			if len(s.Problems()) != 0 {
				t.Errorf("the store has problems: %v", s.Problems())
			}
			var names []string
			for _, e := range s.Entries() {
				names = append(names, e.Name)
			}
			if got := strings.Join(names, " "); got != "old" && got != "new old" && got != "old new" {
				t.Errorf("entries %q, want old, and new or not", got)
			}
		},
	}, {
		name: "revoke",
		setup: func(t *testing.T, root, home string) []string {
			old := filepath.Join(root, "old.json")
			writePublicKey(t, old, nil)
			keytoolOK(t, "-H", home, "revoke", old)
			pub := filepath.Join(root, "new.json")
			writePublicKey(t, pub, nil)
			return []string{"-H", home, "revoke", pub}
		},
		check: func(t *testing.T, home string) {
			dir := filepath.Join(home, "revoked_keys.d")
			if n := len(checkNoPartialFiles(t, dir, false)); n != 1 && n != 2 {
				t.Errorf("%d revocations, want the old one and the new one or not", n)
			}
			s := authkeys.Load(authkeys.HomeOptions(home))
			if len(s.Problems()) != 0 {
				t.Errorf("the store has problems: %v", s.Problems())
			}
			if n := len(s.Revoked()); n != 1 && n != 2 {
				t.Errorf("the store holds %d revocations, want the old one and the new one or not", n)
			}
		},
	}, {
		// Many keys are written at once (atomicfile.CreateAll): every
		// file made and synced before any is placed, the directory
		// synced once at the end. Killed at any step of any of them,
		// the revocations are complete files, some or none of the new.
		name: "revoke of a JWK Set",
		setup: func(t *testing.T, root, home string) []string {
			old := filepath.Join(root, "old.json")
			writePublicKey(t, old, nil)
			keytoolOK(t, "-H", home, "revoke", old)
			var members []string
			for i := range 3 {
				k := writePublicKey(t, filepath.Join(root, fmt.Sprintf("k%d.json", i)), nil)
				data, err := k.MarshalPublic(jwk.JWK)
				if err != nil {
					t.Fatal(err)
				}
				members = append(members, string(data))
			}
			set := filepath.Join(root, "set.json")
			if err := os.WriteFile(set, []byte(`{"keys": [`+strings.Join(members, ",")+`]}`), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"-H", home, "revoke", set}
		},
		check: func(t *testing.T, home string) {
			dir := filepath.Join(home, "revoked_keys.d")
			if n := len(checkNoPartialFiles(t, dir, false)); n < 1 || n > 4 {
				t.Errorf("%d revocations, want the old one and up to three new", n)
			}
			s := authkeys.Load(authkeys.HomeOptions(home))
			if len(s.Problems()) != 0 {
				t.Errorf("the store has problems: %v", s.Problems())
			}
			if n := len(s.Revoked()); n < 1 || n > 4 {
				t.Errorf("the store holds %d revocations, want the old one and up to three new", n)
			}
		},
		final: func(t *testing.T, home string) {
			if n := len(authkeys.Load(authkeys.HomeOptions(home)).Revoked()); n != 4 {
				t.Errorf("run again, the store holds %d revocations, want 4", n)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			writes := 0
		runs:
			for n := 1; ; n++ {
				for _, step := range steps {
					root := t.TempDir()
					home := filepath.Join(root, "home")
					mkHome(t, home) // commands that write refuse a home that is not there
					args := tc.setup(t, root, home)
					at := fmt.Sprint(n, ":", step)
					held, out := holdAndKill(t, at, args...)
					if held == "" {
						if step != atomicfile.StepCreated {
							t.Fatalf("%s: the write was not held at %s and the command ended: %s", tc.name, at, out)
						}
						writes = n - 1
						break runs
					}
					t.Logf("killed at %s", strings.TrimPrefix(held, holdingLine))
					tc.check(t, home)
					if t.Failed() {
						t.Fatalf("after the kill at %s", at)
					}
					if tc.again != nil {
						args = append([]string{"-H", home}, tc.again...)
					}
					if out, err := keytoolCmd(args...).CombinedOutput(); err != nil {
						t.Fatalf("run again after the kill at %s: %v\n%s", at, err, out)
					}
					if tc.again != nil {
						checkPublicHalf(t, home)
					}
					if tc.final != nil {
						tc.final(t, home)
					}
				}
			}
			if writes == 0 {
				t.Fatalf("%s wrote nothing: the test proved nothing", tc.name)
			}
		})
	}
}

// holdAndKill runs keytool with args, stopped at the write and step at
// (holdEnv), and kills it there. It returns the line the process said it
// held with, or "" and its output when it ran to its end without holding.
func holdAndKill(t *testing.T, at string, args ...string) (held, out string) {
	t.Helper()
	cmd := keytoolCmd(args...)
	cmd.Env = append(os.Environ(), holdEnv+"="+at)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	holding := make(chan string, 1)
	done := make(chan string)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, holdingLine) {
				holding <- line
			} else {
				fmt.Fprintln(&b, line)
			}
		}
		done <- b.String()
	}()
	select {
	case held = <-holding:
	case out = <-done:
		err := cmd.Wait()
		if err != nil {
			t.Fatalf("keytool %s (held at %s): %v\n%s", strings.Join(args, " "), at, err, out)
		}
		return "", out
	case <-time.After(time.Minute):
		t.Errorf("keytool %s did not hold at %s, nor end, in a minute", strings.Join(args, " "), at)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	out = <-done
	_ = cmd.Wait()
	if ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() {
		t.Fatalf("keytool %s was to be killed, held at %s; it ended: %v\n%s", strings.Join(args, " "), at, cmd.ProcessState, out)
	}
	return held, out
}

// checkIdentity checks that home holds only complete files, and an
// identity that is private to its owner; with what set, it must hold one.
func checkIdentity(t *testing.T, home, what string) {
	t.Helper()
	checkNoPartialFiles(t, home, true)
	path := filepath.Join(home, "key.json")
	fi, err := os.Stat(path)
	if err != nil {
		if what != "" {
			t.Errorf("%s was lost: %v", what, err)
		}
		return
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key.json has mode %04o", fi.Mode().Perm())
	}
	if _, err := jwk.ReadPrivateKeyFile(path); err != nil {
		t.Errorf("key.json: %v", err)
	}
}

// checkPublicHalf checks that home's pub_key.json is the public half of
// its key.json. A kill between the two writes leaves the previous key's
// (docs/design.md, "Concurrent writers"); the next gen puts it right.
func checkPublicHalf(t *testing.T, home string) {
	t.Helper()
	k, err := jwk.ReadPrivateKeyFile(filepath.Join(home, "key.json"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := jwk.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != 1 || pub[0].Fingerprint() != k.Fingerprint() {
		t.Errorf("pub_key.json is not the public half of key.json")
	}
}

// checkNextPublicHalf checks that home's next key (key.next.*) has its
// own public half as pub_key.next.* — or, if orNone, none — and no other.
func checkNextPublicHalf(t *testing.T, home string, orNone bool) {
	t.Helper()
	file, err := jwk.FindNextKey(home)
	if err != nil || file == "" {
		t.Errorf("no next key: %v", err)
		return
	}
	k, err := jwk.ReadPrivateKeyFile(file)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, name := range []string{"pub_key.next.json", "pub_key.next.jwk", "pub_key.next.pem"} {
		keys, err := jwk.ReadFile(filepath.Join(home, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		found++
		if err != nil || len(keys) != 1 || !keys[0].Equal(k) {
			t.Errorf("%s is not the public half of %s: %v", name, filepath.Base(file), err)
		}
	}
	if found == 0 && !orNone {
		t.Errorf("no public half of %s", filepath.Base(file))
	}
}

// genNextForce is TestKillAtEveryWrite's set-up of gen --next --force
// (with extra arguments): a home with an identity and a next key.
func genNextForce(extra ...string) func(t *testing.T, root, home string) []string {
	return func(t *testing.T, root, home string) []string {
		keytoolOK(t, "-H", home, "gen")
		keytoolOK(t, "-H", home, "gen", "--next")
		return append([]string{"-H", home, "gen", "--next", "--force"}, extra...)
	}
}

// checkNextForceKilled is what a gen --next --force killed at any step
// leaves: complete files, a home that loads, the next key with its own
// public half or none.
func checkNextForceKilled(t *testing.T, home string) {
	checkNoPartialFiles(t, home, true)
	if _, err := tlsbridge.LoadHomeIdentity(home, tlsbridge.CertOptions{}); err != nil {
		t.Errorf("the home does not load: %v", err)
	}
	checkNextPublicHalf(t, home, true)
}
