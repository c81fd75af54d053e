// Command earlydecision measured what docs/design.md ("Early decisions")
// proposed before authkeys.OpenEarly was built: a server deciding its
// first handshake from the admin index, proved complete by every file's
// stamp as a removal proves it (authkeys.LoadFor, then
// keydir.Loader.ReloadComplete), against deciding it after a full load
// (authkeys.Load), each in a fresh process, timed from its start to the
// decision, rounds alternated. BenchmarkColdStart's "early" measures
// OpenEarly itself.
//
//	go run ./cmd/earlydecision -home DIR -keytool BIN -make 100000
//	go run ./cmd/earlydecision -home DIR -rounds 7
//	go run ./cmd/earlydecision -home DIR -storm 200
//	go run ./cmd/earlydecision -home DIR -revoked 5000
//	go run ./cmd/earlydecision -home DIR -storm 1 -index CACHE
//
// -storm N measures OpenEarly itself as a server's restart meets its
// clients coming back: in this process, from the start, N distinct
// authorized keys decided one after the other — when the first was
// decided, how many before the full load was published, and the time of
// each early decision after the first (which waits for the proof).
//
// -index CACHE has -storm's server keep an admin index of its own in
// CACHE (keytool proxy --index-dir) instead of using the home's: its
// first run finds none and writes it, the runs after decide from it.
//
// -revoked N writes N revocation files (of keys no entry holds) into
// DIR's revoked_keys.d: a revocation directory that large is read whole
// at the proof, and then through its links only.
//
// -make writes DIR (a keytool home with that many single-key files in
// authorized_keys.d, as BenchmarkAdmin's) and lets keytool build its
// index; the files must be older than keydir.StampRacy (2 s) when the
// index records their stamps, so it waits before. Without -make it runs
// the rounds on DIR.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"flag"
	"fmt"
	"log"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/keytool/keytool/authkeys"
)

// keyX is the Ed25519 public key of entry i, as BenchmarkAdmin's.
func keyX(i int) []byte {
	var b [9]byte
	binary.BigEndian.PutUint64(b[1:], uint64(i))
	b[0] = 'a'
	x := sha256.Sum256(b[:])
	return x[:]
}

func spki(x []byte) [32]byte {
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(x))
	if err != nil {
		log.Fatal(err)
	}
	return sha256.Sum256(der)
}

func main() {
	home := flag.String("home", "", "the keytool home")
	mk := flag.Int("make", 0, "write a home of this many entries first")
	bin := flag.String("keytool", "keytool", "the keytool binary, for -make")
	rounds := flag.Int("rounds", 7, "rounds, each timing both ways")
	decide := flag.String("decide", "", "(internal) early or full: decide once and exit")
	entry := flag.Int("entry", 0, "the entry whose key is decided on")
	storm := flag.Int("storm", 0, "decide this many distinct keys with authkeys.OpenEarly from the start")
	revoked := flag.Int("revoked", 0, "write this many revocation files (of keys no entry holds) into the home, then exit")
	index := flag.String("index", "", "with -storm: the server's own admin index directory, instead of the home's")
	flag.Parse()
	if *home == "" {
		log.Fatal("earlydecision: -home is required")
	}
	switch {
	case *mk > 0:
		makeHome(*home, *bin, *mk)
	case *revoked > 0:
		makeRevoked(*home, *revoked)
	case *decide != "":
		decideOnce(*home, *decide, spki(keyX(*entry)))
	case *storm > 0:
		decideMany(*home, *index, *storm)
	default:
		run(*home, *rounds)
	}
}

func makeHome(home, bin string, n int) {
	dir := filepath.Join(home, "authorized_keys.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		log.Fatal(err)
	}
	for i := range n {
		data := fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":"%s","name":"k%07d"}`+"\n", base64.RawURLEncoding.EncodeToString(keyX(i)), i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("k%07d.json", i)), []byte(data), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	time.Sleep(3 * time.Second) // the files older than keydir.StampRacy
	key := filepath.Join(home, "..", "earlydecision-key.json")
	data := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(keyX(-1)) + `"}`
	if err := os.WriteFile(key, []byte(data), 0o644); err != nil {
		log.Fatal(err)
	}
	// An authorize builds the index; its removal records every file's stamp.
	for _, args := range [][]string{{"authorize", "--name", "earlydecision", key}, {"authorize", "--remove", "earlydecision"}} {
		if out, err := exec.Command(bin, append([]string{"-H", home}, args...)...).CombinedOutput(); err != nil {
			log.Fatalf("keytool %v: %v\n%s", args, err, out)
		}
	}
	fmt.Printf("%s: %d entries, index built\n", home, n)
}

// makeRevoked writes n revocation files into home's revoked_keys.d, of
// keys far past any -make writes.
func makeRevoked(home string, n int) {
	dir := filepath.Join(home, "revoked_keys.d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	for i := range n {
		data := `{"kty":"OKP","crv":"Ed25519","x":"` + base64.RawURLEncoding.EncodeToString(keyX(1<<40+i)) + `"}` + "\n"
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("r%07d.json", i)), []byte(data), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("%s: %d revocations\n", dir, n)
}

func decideOnce(home, how string, sum [32]byte) {
	opts := authkeys.HomeOptions(home)
	var s *authkeys.Store
	switch how {
	case "early":
		s, _ = authkeys.LoadFor(opts, authkeys.Lookups{Keys: [][32]byte{sum}})
		s.Loader().ReloadComplete()
	case "full":
		s = authkeys.Load(opts)
	default:
		log.Fatalf("earlydecision: -decide %q", how)
	}
	d := s.Decide(sum, netip.MustParseAddr("127.0.0.1"))
	fmt.Printf("%v, %d entries read\n", d.Verdict, len(s.Entries()))
}

func decideMany(home, index string, n int) {
	files, err := os.ReadDir(filepath.Join(home, "authorized_keys.d"))
	if err != nil {
		log.Fatal(err)
	}
	sums := make([][32]byte, n)
	for i := range sums {
		sums[i] = spki(keyX(i * (len(files) / n)))
	}
	addr := netip.MustParseAddr("127.0.0.1")
	start := time.Now()
	opts := authkeys.HomeOptions(home)
	if index != "" {
		opts.Index = index
	}
	s := authkeys.OpenEarly(context.Background(), opts)
	var first time.Duration
	var took []time.Duration // the early decisions after the first
	for i, sum := range sums {
		t0 := time.Now()
		if d := s.Decide(sum, addr); d.Verdict != authkeys.Authorized {
			log.Fatalf("key %d: %v", i, d.Verdict)
		}
		select {
		case <-s.Loaded():
		default:
			if i == 0 {
				first = time.Since(start)
			} else {
				took = append(took, time.Since(t0))
			}
		}
	}
	done := time.Since(start)
	early := len(took)
	if first > 0 {
		early++
	}
	<-s.Loaded()
	loaded := time.Since(start)
	s.Close()
	slices.Sort(took)
	at := func(p float64) time.Duration {
		if len(took) == 0 {
			return 0
		}
		return took[int(p*float64(len(took)-1))].Round(time.Microsecond)
	}
	fmt.Printf("first decided early at %v (0: not early); %d of %d early; after the first p50 %v p90 %v max %v; all done at %v; full load published at %v\n",
		first.Round(time.Millisecond), early, n, at(0.5), at(0.9), at(1), done.Round(time.Millisecond), loaded.Round(time.Millisecond))
}

func run(home string, rounds int) {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	n, err := os.ReadDir(filepath.Join(home, "authorized_keys.d"))
	if err != nil {
		log.Fatal(err)
	}
	entry := len(n) / 2
	took := map[string][]time.Duration{}
	for r := range rounds {
		order := []string{"early", "full"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, how := range order {
			start := time.Now()
			out, err := exec.Command(self, "-home", home, "-decide", how, "-entry", fmt.Sprint(entry)).CombinedOutput()
			took[how] = append(took[how], time.Since(start))
			if err != nil {
				log.Fatalf("%s: %v\n%s", how, err, out)
			}
			if r == 0 {
				fmt.Printf("%s: %s", how, out)
			}
		}
	}
	median := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	e, f := median(took["early"]), median(took["full"])
	fmt.Printf("early %v (%v)\nfull  %v (%v)\nearly/full %.2f×\n", e, took["early"], f, took["full"], float64(e)/float64(f))
}
