package tlsbridge

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/jwk"
)

// goneIdentityHome fills home with what an identity removed by hand
// leaves: its public half, pub_key.json, and, all set, pub_key.pem beside
// it and a pub_key.next.json of a next key removed with it — public
// halves of keys the home no longer holds.
func goneIdentityHome(t *testing.T, home string, all bool) {
	t.Helper()
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	gone, goneNext := mustGenerate(t, jwk.EC256), mustGenerate(t, jwk.EC256)
	halves := []struct {
		name string
		k    *jwk.Key
		f    jwk.Format
	}{{"pub_key.json", gone, jwk.JWK}, {"pub_key.pem", gone, jwk.PEM}, {"pub_key.next.json", goneNext, jwk.JWK}}
	if !all {
		halves = halves[:1]
	}
	for _, f := range halves {
		if err := jwk.WritePublicKeyFile(filepath.Join(home, f.name), f.k, f.f, jwk.CreateNew); err != nil {
			t.Fatal(err)
		}
	}
}

// goneHalves names goneIdentityHome's cases.
var goneHalves = map[string]bool{"pub_key.json": false, "pub_key.json,pem,next": true}

// checkFirstKeyHome checks a home a first run (LoadOrGenerateHomeIdentity)
// was killed in, or raced on: it holds no identity, or one that loads —
// every public half it holds that key's — and, with no identity, no
// public half of the key that is gone. It returns the key's fingerprint,
// or "" for no identity.
func checkFirstKeyHome(t *testing.T, home string) string {
	t.Helper()
	id, err := LoadHomeIdentity(home, CertOptions{})
	var none *jwk.NoIdentityError
	switch {
	case errors.As(err, &none):
		return ""
	case err != nil:
		t.Fatalf("the home does not load: %v (holds %v)", err, dirNames(home))
	}
	return id.Key.Fingerprint()
}

// firstKeyHoldEnv makes the test binary a first run that stops in a write
// (TestFirstKeyHeldProcess): "N:STEP HOME", the Nth write from 1 and a
// step of atomicfile's, as internal/cli's KEYTOOL_TEST_HOLD.
const firstKeyHoldEnv = "KEYTOOL_TEST_FIRST_KEY_HOLD"

const firstKeyHolding = "first-key-test: holding at "

func TestFirstKeyHeldProcess(t *testing.T) {
	v := os.Getenv(firstKeyHoldEnv)
	if v == "" {
		t.Skip("a helper process of TestFirstKeyKilledAtEveryWrite")
	}
	at, home, _ := strings.Cut(v, " ")
	nth, step, _ := strings.Cut(at, ":")
	n, err := strconv.Atoi(nth)
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	atomicfile.Hook = func(s, path string) {
		if s == atomicfile.StepCreated {
			writes++
		}
		if writes == n && s == step {
			fmt.Fprintf(os.Stderr, "%s%s of write %d: %s\n", firstKeyHolding, s, n, path)
			time.Sleep(time.Hour)
		}
	}
	if _, _, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{}); err != nil {
		t.Fatal(err)
	}
}

// holdFirstKey runs a first run on home in a process of its own, stopped
// at the write and step at, and kills it there. It reports whether the
// process held; false, it ran to its end.
func holdFirstKey(t *testing.T, home, at string) bool {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestFirstKeyHeldProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), firstKeyHoldEnv+"="+at+" "+home, "GORACE=atexit_sleep_ms=0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	held := make(chan bool, 1)
	var out strings.Builder
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), firstKeyHolding) {
				held <- true
				return
			}
			fmt.Fprintln(&out, sc.Text())
		}
		held <- false
	}()
	select {
	case h := <-held:
		if !h {
			if err := cmd.Wait(); err != nil {
				t.Fatalf("the first run, to hold at %s, failed: %v\n%s", at, err, out.String())
			}
			return false
		}
	case <-time.After(time.Minute):
		t.Errorf("the first run neither held at %s nor ended in a minute", at)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	return true
}

// TestFirstKeyKilledAtEveryWrite: a first run (LoadOrGenerateHomeIdentity)
// on a home whose identity was removed by hand, its public halves left,
// killed at each step of each of its writes (real processes). The home
// then holds no identity, or its new key with its own public half or
// none, never another key's: it loads, and the next run ends with the
// key and its public half alone. Before, key.json was written, then
// pub_key.json over the old one: killed between, the home held the new
// key beside the gone key's public halves, and every load refused it
// (*PublicKeyError) — a server that did not start again, and a first
// run that did not make a new key either.
//
// Left in another format (pub_key.pem) or for a next key (pub_key.next.*),
// a gone identity's public half was not replaced at all, and the home a
// first run made never loaded: those are removed as well.
func TestFirstKeyKilledAtEveryWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for name, all := range goneHalves {
		t.Run(name, func(t *testing.T) { firstKeyKilledAtEveryWrite(t, all) })
	}
}

// firstKeyKilledAtEveryWrite is TestFirstKeyKilledAtEveryWrite in a home
// goneIdentityHome(all) made.
func firstKeyKilledAtEveryWrite(t *testing.T, all bool) {
	writes := 0
runs:
	for n := 1; ; n++ {
		for _, step := range []string{atomicfile.StepCreated, atomicfile.StepFilled, atomicfile.StepPlaced} {
			home := filepath.Join(t.TempDir(), "home")
			goneIdentityHome(t, home, all)
			at := fmt.Sprint(n, ":", step)
			if !holdFirstKey(t, home, at) {
				if step != atomicfile.StepCreated {
					t.Fatalf("the first run was not held at %s and ended", at)
				}
				writes = n - 1
				break runs
			}
			fp := checkFirstKeyHome(t, home)
			t.Logf("killed at %s: identity %q, files %v", at, fp, dirNames(home))
			// The killed write's temporary file, which the next write of
			// its name removes once it is old (atomicfile.RemoveStale).
			temps, _ := filepath.Glob(filepath.Join(home, ".*.tmp"))
			for _, tmp := range temps {
				if err := os.Remove(tmp); err != nil {
					t.Fatal(err)
				}
			}
			id, generated, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
			if err != nil {
				t.Fatalf("the run after the kill at %s: %v", at, err)
			}
			if generated != (fp == "") || fp != "" && id.Key.Fingerprint() != fp {
				t.Fatalf("the run after the kill at %s: generated %v, key %s; the killed run left %q", at, generated, id.Key.Fingerprint(), fp)
			}
			if fp != "" {
				// The killed run's key, which its public half may lack:
				// made by the command line's fix, not by a load.
				if err := jwk.WritePublicKeyFile(filepath.Join(home, "pub_key.json"), id.Key, jwk.JWK, jwk.Overwrite); err != nil {
					t.Fatal(err)
				}
			}
			checkOneIdentity(t, home, id.Key.Fingerprint())
		}
	}
	if writes != 2 {
		t.Fatalf("a first run wrote %d files, want the key and its public half", writes)
	}
}

// TestFirstKeyRacesBesideAGoneIdentity: eight goroutines make the first
// key of a home whose identity was removed by hand, its public halves
// left. With the lock of the identity's writers they come one after the
// other: one makes the key and its public half, the others load them.
// With a lock file that cannot be used (open to others: each goes ahead
// unlocked) one of them still wins the create-only write, and every one
// of them loads that key; the home holds it with its own public half or
// none. Before, a goroutine that lost the write, or loaded between the
// winner's key and its public half, found the gone key's pub_key.json
// beside the new key and failed (*PublicKeyError).
func TestFirstKeyRacesBesideAGoneIdentity(t *testing.T) {
	for _, locked := range []bool{true, false} {
		for name, all := range goneHalves {
			t.Run(fmt.Sprintf("locked=%v/%s", locked, name), func(t *testing.T) {
				firstKeyRaces(t, locked, all)
			})
		}
	}
}

// firstKeyRaces is TestFirstKeyRacesBesideAGoneIdentity in a home
// goneIdentityHome(all) made; locked, with a lock that can be had.
func firstKeyRaces(t *testing.T, locked, all bool) {
	for round := range 20 {
		home := filepath.Join(t.TempDir(), "home")
		goneIdentityHome(t, home, all)
		if !locked {
			if err := os.WriteFile(filepath.Join(home, ".keytool.lock"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Join(home, ".keytool.lock"), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, unlocked, err := LockIdentity(home); unlocked == nil || err != nil {
				t.Fatalf("the lock was to be unusable: %v, %v", unlocked, err)
			}
		}
		fps, made := raceFirstKey(t, home, 8)
		if made != 1 {
			t.Fatalf("round %d: %d goroutines made a key, want 1", round, made)
		}
		for i, fp := range fps {
			if fp != fps[0] {
				t.Fatalf("round %d: goroutine %d has key %s, goroutine 0 %s", round, i, fp, fps[0])
			}
		}
		if fp := checkFirstKeyHome(t, home); fp != fps[0] {
			t.Fatalf("round %d: the home holds %q, the goroutines %s", round, fp, fps[0])
		}
		names := dirNames(home)
		if locked || len(names) > 1 {
			checkOneIdentity(t, home, fps[0])
		} else if strings.Join(names, " ") != "key.json" {
			t.Fatalf("round %d: the home holds %v", round, names)
		}
	}
}

// raceFirstKey runs n first runs on home at once, and returns the key
// each loaded and how many made it.
func raceFirstKey(t *testing.T, home string, n int) (fps []string, made int) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	fps, gens, errs := make([]string, n), make([]bool, n), make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			id, gen, err := LoadOrGenerateHomeIdentity(home, jwk.EC256, CertOptions{})
			if err == nil {
				fps[i] = id.Key.Fingerprint()
			}
			gens[i], errs[i] = gen, err
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if gens[i] {
			made++
		}
	}
	return fps, made
}
