package authkeys

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/keytool/keytool/internal/keydir"
)

// Two processes (copies of this test binary) run admin commands on one
// home at once, each revoking keys and authorizing others through
// LoadFor, as two `keytool revoke` and `keytool authorize` would: the
// index's lock, its log and the stale marks must leave every revocation
// and every name where a narrowed load finds them afterwards — a
// revocation missed would let authorize write a revoked key without a
// word, a name missed would let a second key take it (review of the
// admin index, session 22).
func TestLoadForConcurrentProcesses(t *testing.T) {
	const rounds = 12
	if home := os.Getenv("KEYTOOL_TEST_IDX_HOME"); home != "" {
		keydir.IndexMinFiles = 0
		w, _ := strconv.Atoi(os.Getenv("KEYTOOL_TEST_IDX_WORKER"))
		opts := HomeOptions(home)
		for i := range rounds {
			r, a := key(t, 200+w*100+i), key(t, 250+w*100+i)
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{r.SPKIHash()}})
			if _, err := s.Revoke(r); err != nil {
				t.Fatal(err)
			}
			finish()
			name := fmt.Sprintf("p%d-%d", w, i)
			s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{a.SPKIHash()}, Names: []string{name}})
			if _, err := s.Add(a, name, AddNew); err != nil {
				t.Fatal(err)
			}
			finish()
		}
		return
	}
	opts := fillHome(t, 10)
	s, finish := LoadFor(opts, Lookups{})
	if _, err := s.Revoke(key(t, 190)); err != nil {
		t.Fatal(err)
	}
	finish()
	_, finish = LoadFor(opts, Lookups{}) // both directories indexed
	finish()
	var wg sync.WaitGroup
	for w := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLoadForConcurrentProcesses$")
		cmd.Env = append(os.Environ(), "KEYTOOL_TEST_IDX_HOME="+opts.Home, "KEYTOOL_TEST_IDX_WORKER="+strconv.Itoa(w))
		wg.Go(func() {
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("worker: %v\n%s", err, out)
			}
		})
	}
	wg.Wait()
	for w := range 2 {
		for i := range rounds {
			r, a := key(t, 200+w*100+i), key(t, 250+w*100+i)
			s, finish := LoadFor(opts, Lookups{Keys: [][32]byte{r.SPKIHash()}})
			if _, err := s.Add(r, "again", AddNew); !errors.As(err, new(*RevokedError)) {
				t.Errorf("authorize of key %d, revoked by one of two processes: %v, want *RevokedError", 200+w*100+i, err)
			}
			finish()
			name := fmt.Sprintf("p%d-%d", w, i)
			s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{key(t, 180).SPKIHash()}, Names: []string{name}})
			if _, err := s.Add(key(t, 180), name, AddNew); !errors.As(err, new(*NameExistsError)) {
				t.Errorf("a second key under %s, authorized by one of two processes: %v, want *NameExistsError", name, err)
			}
			finish()
			s, finish = LoadFor(opts, Lookups{Keys: [][32]byte{a.SPKIHash()}})
			if _, err := s.LookupKey(a, netip.Addr{}); err != nil {
				t.Errorf("%s: %v", name, err)
			}
			finish()
		}
	}
}
