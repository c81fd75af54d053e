package bench

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/keytool/keytool/jwk"
)

// BenchmarkAdmin times the admin commands as a real keytool process (built
// from this tree), in a home with one entry and in one with BENCH_ADMIN_KEYS
// (100,000) entries in each of authorized_keys.d and trusted_hosts.d, one
// file per key. Each command is run with its undo, so that every round
// starts from the same state:
//
//	authorize        authorize --name bench-new FILE      then authorize --remove bench-new
//	authorize-remove (the undo above)
//	revoke           revoke FILE                          then revoke --remove FINGERPRINT
//	revoke-remove    (its undo)
//	trust-host       trust-host new.example:443 --key FILE then trust-host --remove new.example:443
//	trust-host-remove (its undo)
//	invite           invite --name bench-inv              then invite --remove bench-inv
//
// Before the rounds each home runs every command once, which builds the
// admin index (docs/design.md, "The admin index"); BENCH_ROUNDS rounds
// (default 15) then alternate the homes in a random order per round. The
// metrics are medians in milliseconds and the ratio of the large home's
// median to the one-entry home's, of wall time and of CPU time (user and
// system, the process's own accounting: what the machine's other load
// changes least).
//
//	go test -run '^$' -bench Admin -benchtime 1x -timeout 30m
//
// For the removals, each round also times, after each home's, their
// floor in this process: a listing of the directory and a stat of every
// file on GOMAXPROCS goroutines, what a removal's check cannot do
// without (metrics floor-ms, cpu-floor-ms, and floor-ratio: the removal's
// median over the floor's), and the time from the removal's start to its
// deletion of the removed entry's file (enforced-ms-…: the event a
// watching server applies within about a millisecond, Reload/latency).
//
// BENCH_ADMIN_STEPS (comma-separated step names) runs only those steps and
// their undos: BENCH_ADMIN_STEPS=authorize-remove,trust-host-remove times
// the two removals (with the additions they undo).
func BenchmarkAdmin(b *testing.B) {
	rounds := envInt("BENCH_ROUNDS", 15)
	big := envInt("BENCH_ADMIN_KEYS", 100_000)
	bin := buildKeytool(b)
	sizes := []int{1, big}
	homes := map[int]string{}
	for _, n := range sizes {
		homes[n] = adminHome(b, bin, n)
	}
	newKey := filepath.Join(scratch, "admin-new.json")
	pk := ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)
	writeFile(b, newKey, fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":"%s"}`, base64.RawURLEncoding.EncodeToString(pk)))
	keys, err := jwk.ReadFile(newKey)
	if err != nil {
		b.Fatal(err)
	}
	fp := keys[0].Fingerprint()
	type step struct {
		name string
		args []string
	}
	steps := []step{
		{"authorize", []string{"authorize", "--name", "bench-new", newKey}},
		{"authorize-remove", []string{"authorize", "--remove", "bench-new"}},
		{"revoke", []string{"revoke", newKey}},
		{"revoke-remove", []string{"revoke", "--remove", fp}},
		{"trust-host", []string{"trust-host", "new.example:443", "--key", newKey}},
		{"trust-host-remove", []string{"trust-host", "--remove", "new.example:443"}},
		{"invite", []string{"invite", "--name", "bench-inv", "--address", "127.0.0.1:7443"}},
		{"invite-remove", []string{"invite", "--remove", "bench-inv"}},
	}
	if only := os.Getenv("BENCH_ADMIN_STEPS"); only != "" {
		steps = adminSteps(steps, strings.Split(only, ","), func(s step) string { return s.name })
	}
	cpu := map[string]map[int][]time.Duration{} // user + system time of each run
	// enforced: for the removals, from the command's start to the
	// deletion of the removed entry's file, the event a watching server
	// applies within about a millisecond (Reload/latency).
	enforced := map[string]map[int][]time.Duration{}
	floorDir := map[string]string{"authorize-remove": "authorized_keys.d", "trust-host-remove": "trusted_hosts.d"}
	run := func(home string, s step) time.Duration {
		cmd := exec.Command(bin, append([]string{"-H", home}, s.args...)...)
		var deleted func() time.Time
		if d, ok := floorDir[s.name]; ok && cpu[s.name] != nil {
			deleted = firstDeletion(b, filepath.Join(home, d))
		}
		start := time.Now()
		out, err := cmd.CombinedOutput()
		took := time.Since(start)
		if err != nil {
			b.Fatalf("keytool %v: %v\n%s", s.args, err, out)
		}
		if cpu[s.name] != nil {
			n := 1
			if home != homes[1] {
				n = big
			}
			cpu[s.name][n] = append(cpu[s.name][n], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			if deleted != nil {
				at := deleted()
				if at.IsZero() {
					b.Fatalf("keytool %v deleted no file of %s", s.args, floorDir[s.name])
				}
				enforced[s.name][n] = append(enforced[s.name][n], at.Sub(start))
			}
		}
		return took
	}
	for _, n := range sizes {
		start := time.Now()
		for _, s := range steps {
			run(homes[n], s)
		}
		b.Logf("%d entries: first run of every command (builds the index) took %v", n, time.Since(start))
	}
	// The floor of a removal's check (docs/design.md, "The admin index"):
	// list the directory and stat every file, in parallel, in this
	// process (no process start, no index), in each round beside the
	// removal.
	floor, floorCPU := map[string][]time.Duration{}, map[string][]time.Duration{}
	times := map[string]map[int][]time.Duration{}
	for _, s := range steps {
		times[s.name] = map[int][]time.Duration{}
		cpu[s.name] = map[int][]time.Duration{}
		enforced[s.name] = map[int][]time.Duration{}
	}
	for round := range rounds {
		order := rand.New(rand.NewPCG(uint64(round), 0x61646d696e)).Perm(len(sizes))
		for _, i := range order {
			n := sizes[i]
			for _, s := range steps {
				times[s.name][n] = append(times[s.name][n], run(homes[n], s))
				// The floor after each removal, whichever home's: a stat
				// of 100,000 files costs the next process about a
				// millisecond, whatever it is, and timed after the large
				// home's removal alone it fell on the large home's next
				// command alone (revoke, invite).
				if d, ok := floorDir[s.name]; ok {
					wall, cpu := statFloor(b, filepath.Join(homes[big], d))
					floor[s.name] = append(floor[s.name], wall)
					floorCPU[s.name] = append(floorCPU[s.name], cpu)
				}
			}
		}
	}
	for _, s := range steps {
		b.Run("cmd="+s.name, func(b *testing.B) {
			if f := floor[s.name]; f != nil {
				b.ReportMetric(ms(median(f)), "floor-ms")
				b.ReportMetric(ms(median(floorCPU[s.name])), "cpu-floor-ms")
				b.ReportMetric(float64(median(times[s.name][big]))/float64(median(f)), "floor-ratio")
				b.ReportMetric(ms(median(enforced[s.name][1])), "enforced-ms-1-entry")
				b.ReportMetric(ms(median(enforced[s.name][big])), fmt.Sprintf("enforced-ms-%d-entries", big))
			}
			one, many := median(times[s.name][1]), median(times[s.name][big])
			b.ReportMetric(ms(one), "ms-1-entry")
			b.ReportMetric(ms(many), fmt.Sprintf("ms-%d-entries", big))
			b.ReportMetric(float64(many)/float64(one), "ratio")
			b.ReportMetric(ms(slices.Min(times[s.name][big])), "min-ms-big")
			b.ReportMetric(ms(slices.Max(times[s.name][big])), "max-ms-big")
			cpuOne, cpuMany := median(cpu[s.name][1]), median(cpu[s.name][big])
			b.ReportMetric(ms(cpuOne), "cpu-ms-1-entry")
			b.ReportMetric(ms(cpuMany), fmt.Sprintf("cpu-ms-%d-entries", big))
			b.ReportMetric(float64(cpuMany)/float64(cpuOne), "cpu-ratio")
		})
	}
}

// statFloor lists dir and stats every entry relative to it, as a
// removal's check does: GOMAXPROCS goroutines stat each batch of 256
// names as the listing gives it. It returns the wall time and the
// process's CPU time it took.
func statFloor(tb testing.TB, dir string) (wall, cpu time.Duration) {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	f, err := os.Open(dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	batches := make(chan []string, 64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var st unix.Stat_t
			for names := range batches {
				for _, name := range names {
					unix.Fstatat(int(f.Fd()), name, &st, 0)
				}
			}
		})
	}
	for {
		names, err := f.Readdirnames(256)
		batches <- names
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	close(batches)
	wg.Wait()
	wall = time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	return wall, time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
}

// firstDeletion watches directory dir for a file deleted from it; the
// function it returns stops watching and gives the time the first such
// deletion was seen (zero if none was).
func firstDeletion(tb testing.TB, dir string) func() time.Time {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		tb.Fatal(err)
	}
	wd, err := unix.InotifyAddWatch(fd, dir, unix.IN_DELETE)
	if err != nil {
		tb.Fatal(err)
	}
	first := make(chan time.Time, 1)
	go func() {
		defer close(first)
		var at time.Time
		buf := make([]byte, 64<<10)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				return
			}
			now := time.Now()
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
				switch {
				case ev.Mask&unix.IN_IGNORED != 0: // the watch removed: the end
					first <- at
					return
				case ev.Mask&unix.IN_DELETE != 0 && at.IsZero():
					at = now
				}
				off += unix.SizeofInotifyEvent + int(ev.Len)
			}
		}
	}()
	return func() time.Time {
		unix.InotifyRmWatch(fd, uint32(wd))
		at := <-first
		unix.Close(fd)
		return at
	}
}

// adminSteps keeps the steps named in only, each with its pair (a command
// and its undo are the steps 2k and 2k+1), so that every round still
// starts from the same state.
func adminSteps[S any](steps []S, only []string, name func(S) string) []S {
	var out []S
	for i := 0; i+1 < len(steps); i += 2 {
		if slices.Contains(only, name(steps[i])) || slices.Contains(only, name(steps[i+1])) {
			out = append(out, steps[i], steps[i+1])
		}
	}
	return out
}

// buildKeytool builds the keytool command of this tree into the scratch
// directory, once per process, and returns its path; BENCH_KEYTOOL names
// another binary to time instead (one of an earlier commit, for a
// comparison).
func buildKeytool(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv("BENCH_KEYTOOL"); bin != "" {
		return bin
	}
	bin := filepath.Join(scratch, "keytool")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/keytool")
	build.Dir = ".." // keytool's own module
	if out, err := build.CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func writeFile(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// adminHome makes a home with an identity and n authorized keys and n
// pinned hosts, one file each (Ed25519 keys: any 32 bytes will do).
func adminHome(tb testing.TB, bin string, n int) string {
	home := filepath.Join(scratch, fmt.Sprintf("admin-home-%d", n))
	if _, err := os.Stat(home); err == nil {
		return home // made earlier in this process (the admin and bundle benchmarks share it)
	}
	if err := os.MkdirAll(home, 0o700); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(bin, "-H", home, "gen", "-t", "ed25519").CombinedOutput(); err != nil {
		tb.Fatalf("gen: %v\n%s", err, out)
	}
	for _, d := range []string{"authorized_keys.d", "trusted_hosts.d"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		var b [9]byte
		binary.BigEndian.PutUint64(b[1:], uint64(i))
		b[0] = 'a'
		x := sha256.Sum256(b[:])
		key := base64.RawURLEncoding.EncodeToString(x[:])
		writeFile(tb, filepath.Join(home, "authorized_keys.d", fmt.Sprintf("k%07d.json", i)),
			fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":"%s","name":"k%07d"}`+"\n", key, i))
		b[0] = 'h'
		x = sha256.Sum256(b[:])
		writeFile(tb, filepath.Join(home, "trusted_hosts.d", fmt.Sprintf("h%07d.example_443.json", i)),
			fmt.Sprintf(`{"kty":"OKP","crv":"Ed25519","x":"%s","address":["h%07d.example:443"]}`+"\n", base64.RawURLEncoding.EncodeToString(x[:]), i))
	}
	return home
}
