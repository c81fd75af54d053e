package authkeys

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/keytool/keytool/jwk"
)

// TestConcurrentAddsOneKey adds one key under two names at once, from
// two Stores of one home and from one Store shared by two goroutines:
// exactly one Add writes it, the other is told the key is authorized
// already (*AlreadyAuthorizedError), and the key has one entry. Without
// the check and the write under one lock, both Adds checked before
// either wrote, and both succeeded: one key, two names.
func TestConcurrentAddsOneKey(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("sharedStore=%v", shared), func(t *testing.T) {
			for round := range 40 {
				home := t.TempDir()
				opts := HomeOptions(home)
				k := key(t, round)
				one := Load(opts)
				stores := []*Store{one, one}
				if !shared {
					stores[1] = Load(opts)
				}
				var (
					wg   sync.WaitGroup
					errs [2]error
				)
				start := make(chan struct{})
				for i := range 2 {
					wg.Go(func() {
						<-start
						_, errs[i] = stores[i].Add(k, fmt.Sprintf("n%d", i), AddNew)
					})
				}
				close(start)
				wg.Wait()
				ok, already := 0, 0
				for _, err := range errs {
					var ae *AlreadyAuthorizedError
					switch {
					case err == nil:
						ok++
					case errors.As(err, &ae):
						already++
					default:
						t.Fatalf("round %d: %v", round, err)
					}
				}
				fp, _ := jwk.ParseFingerprint(k.Fingerprint())
				n := len(Load(opts).FindKeys(fp, false)) // duplicates included
				if ok != 1 || already != 1 || n != 1 {
					t.Fatalf("round %d: %d Adds succeeded, %d refused as authorized already, %d entries of the key; want 1, 1, 1", round, ok, already, n)
				}
			}
		})
	}
}

// TestLoadForAddSeesAnotherCommandsAdd is the cross-process case in
// stores LoadFor narrowed through the admin index: two commands load for
// one key under two names, one adds it (not yet in the index: a command
// records its changes when it ends), then the other adds it. The second
// Add finds the first's file (the directory's stamp changed since its
// load: ReloadCurrent proves the index complete) and refuses it
// *AlreadyAuthorizedError; a plain Reload of the narrowed files did not
// see it, and wrote the key a second time.
func TestLoadForAddSeesAnotherCommandsAdd(t *testing.T) {
	opts := fillHome(t, 50)
	_, finish := LoadFor(opts, Lookups{})
	finish() // the index, built
	k := key(t, 100)
	a, finishA := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{"a"}})
	b, finishB := LoadFor(opts, Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{"b"}})
	if _, err := b.Add(k, "b", AddNew); err != nil {
		t.Fatal(err)
	}
	_, err := a.Add(k, "a", AddNew)
	var ae *AlreadyAuthorizedError
	if !errors.As(err, &ae) || ae.Entry.Name != "b" {
		t.Fatalf("the second Add: %v; want *AlreadyAuthorizedError naming b", err)
	}
	finishB()
	finishA()
	fp, _ := jwk.ParseFingerprint(k.Fingerprint())
	if n := len(Load(opts).FindKeys(fp, false)); n != 1 {
		t.Fatalf("%d entries of the key, want 1", n)
	}
}
