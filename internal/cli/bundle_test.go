package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// chooseAll is a chooseFunc that yields cands.
func chooseAll(cands []bundleCandidate) chooseFunc {
	return func(yield func(bundleCandidate) bool) error {
		for _, c := range cands {
			if !yield(c) {
				return nil
			}
		}
		return nil
	}
}

// streamBundle writes the chosen keys in the order chosen, whichever of
// its workers makes them: 200 files, one of them holding two keys chosen
// in a row (one job), plus a chosen key its file no longer holds (left
// out). A file gone is an error.
func TestStreamBundleOrder(t *testing.T) {
	dir := t.TempDir()
	var cands []bundleCandidate
	var want []*jwk.Key
	for i := range 200 {
		file := filepath.Join(dir, "k"+strconv.Itoa(i)+".json")
		k := writePublicKey(t, file, nil)
		cands = append(cands, bundleCandidate{file, k.SPKIHash()})
		want = append(want, k)
		if i == 10 {
			other, err := jwk.Generate(jwk.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			set, err := jwk.MarshalPublicSet([]*jwk.Key{k, other.PublicKey()}, jwk.JWK)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, set, 0o644); err != nil {
				t.Fatal(err)
			}
			cands = append(cands, bundleCandidate{file, other.SPKIHash()})
			want = append(want, other)
		}
		if i == 20 {
			cands = append(cands, bundleCandidate{file, [32]byte{1}}) // not in the file
		}
	}
	var out bytes.Buffer
	n, err := streamBundle(&out, chooseAll(cands), trustfile.Rule{Top: dir}.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("wrote %d keys, want %d", n, len(want))
	}
	rest := out.Bytes()
	for i, k := range want {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			t.Fatalf("certificate %d missing", i)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.RawSubjectPublicKeyInfo, k.SPKI()) {
			t.Fatalf("certificate %d is not key %d's: out of order", i, i)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Errorf("more after the last key: %q", rest)
	}

	if err := os.Remove(cands[150].file); err != nil {
		t.Fatal(err)
	}
	if _, err := streamBundle(&out, chooseAll(cands), trustfile.Rule{Top: dir}.ReadFile); err == nil {
		t.Error("a chosen file gone: no error")
	}
}

// TestStreamBundleChoosesAsItWrites: the keys are chosen as the bundle is
// written, not listed first — choose has yielded only a few jobs' keys
// ahead of the writer when the writer sees its first certificate — and
// choose's error comes after the keys it yielded before it, with nothing
// after.
func TestStreamBundleChoosesAsItWrites(t *testing.T) {
	dir := t.TempDir()
	// Many more keys than can be ahead (most, below), whatever the CPUs.
	var cands []bundleCandidate
	for i := range 12*runtime.GOMAXPROCS(0) + 300 {
		file := filepath.Join(dir, "k"+strconv.Itoa(i)+".json")
		cands = append(cands, bundleCandidate{file, writePublicKey(t, file, nil).SPKIHash()})
	}
	var yielded atomic.Int64
	ahead := int64(-1)
	boom := errors.New("boom")
	choose := func(yield func(bundleCandidate) bool) error {
		for i, c := range cands {
			if i == len(cands)-50 {
				return boom
			}
			yielded.Add(1)
			if !yield(c) {
				return nil
			}
		}
		return nil
	}
	w := writerFunc(func(p []byte) (int, error) {
		if ahead < 0 {
			ahead = yielded.Load()
		}
		return len(p), nil
	})
	n, err := streamBundle(w, choose, trustfile.Rule{Top: dir}.ReadFile)
	if want := len(cands) - 50; !errors.Is(err, boom) || n != want {
		t.Errorf("choose failed at its key %d: wrote %d keys, error %v; want %d and its error", want+1, n, err, want)
	}
	// One job a key here: at most the workers' jobs, the jobs waiting in
	// order and the one being grouped are ahead of the first written.
	if most := int64(6*runtime.GOMAXPROCS(0) + 2); ahead < 1 || ahead > most {
		t.Errorf("%d keys chosen when the first certificate was written; want 1 to %d (chosen as written)", ahead, most)
	}
}

// TestStreamBundleReadsThroughTheRule: the keys chosen from a store are
// read from their files under the rule the store loaded them with
// (keydir.Loader.ReadFile): a file made writable by others since it was
// loaded is refused, naming it, and no certificate is written. They were
// read with jwk.ReadFile, which checks neither owner, nor mode, nor a
// link's directories — harmless only as long as every key is matched by
// its SPKI hash (found by review: the comment said "through the
// trust-file rule").
func TestStreamBundleReadsThroughTheRule(t *testing.T) {
	home := t.TempDir()
	opts := authkeys.HomeOptions(home)
	if err := os.MkdirAll(opts.Dirs[0], 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(opts.Dirs[0], "alice.json")
	writePublicKey(t, file, nil)
	auth := authkeys.Load(opts)
	defer auth.Close()
	var cands []bundleCandidate
	for _, e := range auth.Entries() {
		cands = append(cands, bundleCandidate{e.File, e.SPKIHash})
	}
	if len(cands) != 1 {
		t.Fatalf("%d entries loaded, want 1 (%v)", len(cands), auth.Problems())
	}
	if err := os.Chmod(file, 0o666); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	n, err := streamBundle(&out, chooseAll(cands), auth.Loader().ReadFile)
	var pe *trustfile.PermissionError
	if !errors.As(err, &pe) || pe.Path != file {
		t.Errorf("a chosen file made writable by others: %v; want a *trustfile.PermissionError naming %s", err, file)
	}
	if n != 0 || out.Len() != 0 {
		t.Errorf("wrote %d keys (%d bytes) from a file the rule refuses", n, out.Len())
	}
}

// TestBundleHelpSaysWhatATrustedBundleDrops: a bundle of trusted host
// keys drops each pin's addresses and its purposes, and --help says both.
// (Found by review: it said addresses only.)
func TestBundleHelpSaysWhatATrustedBundleDrops(t *testing.T) {
	stdout, stderr, _ := runKeytool(t, "", "bundle", "--help")
	help := strings.Join(strings.Fields(stdout+stderr), " ")
	for _, want := range []string{"for any host and any purpose", "not only for its addresses and the purposes its pin is limited to"} {
		if !strings.Contains(help, want) {
			t.Errorf("bundle --help lacks %q:\n%s", want, help)
		}
	}
}

// firstChosen knows whether choose chooses a key, or fails, before the
// bundle has an output, and rest goes on where choose stopped: the key
// yielded first, the others, then choose's error; a bundle abandoned
// (rest stopped early, or never run) ends choose.
func TestFirstChosen(t *testing.T) {
	boom := errors.New("boom")
	keys := func(n int, err error, ended *bool) chooseFunc {
		return func(yield func(bundleCandidate) bool) error {
			defer func() { *ended = true }()
			for i := range n {
				if !yield(bundleCandidate{file: strconv.Itoa(i)}) {
					return nil
				}
			}
			return err
		}
	}
	var ended bool
	if _, ok, stop, err := firstChosen(keys(0, boom, &ended)); ok || err != boom || !ended {
		t.Errorf("choose failed before a key: ok %v, error %v, ended %v; want false, its error, true", ok, err, ended)
	} else {
		stop()
	}
	ended = false
	rest, ok, stop, err := firstChosen(keys(3, boom, &ended))
	if !ok || err != nil || ended {
		t.Fatalf("a key chosen: ok %v, error %v, ended %v; want true, none, false", ok, err, ended)
	}
	var got []string
	err = rest(func(c bundleCandidate) bool { got = append(got, c.file); return true })
	stop()
	if !slices.Equal(got, []string{"0", "1", "2"}) || err != boom || !ended {
		t.Errorf("rest yielded %q and %v (choose ended %v); want 0, 1, 2, then choose's error", got, err, ended)
	}
	for _, run := range []bool{false, true} {
		ended = false
		rest, _, stop, _ := firstChosen(keys(3, nil, &ended))
		if run {
			rest(func(bundleCandidate) bool { return false })
		}
		stop()
		if !ended {
			t.Errorf("rest run %v, then stop: choose did not end", run)
		}
	}
}

// Once the writer fails, choose is asked for no more keys, even keys of
// the file it is grouping (which send nothing to the workers): a bundle
// abandoned does not walk the rest of the store, printing "leaving out"
// lines after its error.
func TestStreamBundleStopsChoosingWhenTheWriterFails(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.json")
	ka := writePublicKey(t, a, nil)
	b := filepath.Join(dir, "b.json")
	kb := writePublicKey(t, b, nil)
	failed := make(chan struct{})
	w := writerFunc(func(p []byte) (int, error) {
		close(failed)
		return 0, errors.New("disk full")
	})
	const most = 10_000
	asked := 0
	choose := func(yield func(bundleCandidate) bool) error {
		if !yield(bundleCandidate{a, ka.SPKIHash()}) {
			return nil
		}
		for asked = 1; asked < most; asked++ {
			if asked == 2 {
				<-failed // a's job written (and failed) while b's are grouped
			}
			if !yield(bundleCandidate{b, kb.SPKIHash()}) {
				return nil
			}
			if asked >= 2 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		return nil
	}
	if _, err := streamBundle(w, choose, trustfile.Rule{Top: dir}.ReadFile); err == nil {
		t.Fatal("the writer failed: no error")
	}
	if asked == most {
		t.Errorf("choose was asked for all its %d keys after the writer failed", most)
	}
}

// TestStreamBundleStopsAmongKeysLeftOut: a writer that fails while the
// selection walks a run of keys it leaves out (here 200 expired ones
// after two kept) stops the selection there: no key is decided, nor
// reported left out, after the failure.
func TestStreamBundleStopsAmongKeysLeftOut(t *testing.T) {
	home := t.TempDir()
	opts := authkeys.HomeOptions(home)
	dir := opts.Dirs[0]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writePublicKey(t, filepath.Join(dir, "a.json"), nil)
	writePublicKey(t, filepath.Join(dir, "b.json"), nil)
	const expired = 200
	for i := range expired {
		writePublicKey(t, filepath.Join(dir, fmt.Sprintf("z%04d.json", i)), map[string]string{"expires": "2001-01-01T00:00:00Z"})
	}
	auth := authkeys.Load(opts)
	defer auth.Close()
	failed := make(chan struct{})
	var after atomic.Int64
	first := true
	stderr := writerFunc(func(p []byte) (int, error) {
		if first { // the first line left out waits for the writer's failure
			first = false
			select {
			case <-failed:
			case <-time.After(10 * time.Second):
				t.Error("the writer never failed")
			}
			return len(p), nil
		}
		select {
		case <-failed:
			after.Add(1)
		default:
		}
		return len(p), nil
	})
	c := &cli{home: home, stdout: io.Discard, stderr: stderr}
	sel := c.selectAuthorized(auth)
	w := writerFunc(func(p []byte) (int, error) {
		close(failed)
		return 0, errors.New("disk full")
	})
	if _, err := streamBundle(w, sel.choose, sel.read); err == nil {
		t.Fatal("the writer failed: no error")
	}
	if n := after.Load(); n > 0 {
		t.Errorf("%d keys reported left out (and decided) after the writer failed, want none", n)
	}
}
