package cli

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/testnet"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/proxy"
	"github.com/keytool/keytool/tlsbridge"
)

// keytoolCmd returns a keytool process (the test binary, see TestMain)
// without a controlling terminal.
func keytoolCmd(args ...string) *exec.Cmd {
	cmd := exec.Command("keytool", args...)
	noTerminal(cmd)
	return cmd
}

// TestParallelAuthorizeProcesses runs `keytool authorize` in several
// processes at once, with different names, into one home: every entry is
// present afterwards, complete, and nothing else is in the directory.
func TestParallelAuthorizeProcesses(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	mkHome(t, home) // commands that write refuse a home that is not there
	const rounds, procs = 5, 4
	var want []string
	for r := range rounds {
		var (
			wg   sync.WaitGroup
			errs = make([]error, procs)
			outs = make([][]byte, procs)
		)
		for p := range procs {
			name := fmt.Sprintf("r%d-p%d", r, p)
			file := filepath.Join(root, name+".json")
			k := writePublicKey(t, file, nil)
			want = append(want, k.Fingerprint())
			cmd := keytoolCmd("-H", home, "authorize", "--name", name, file)
			wg.Go(func() { outs[p], errs[p] = cmd.CombinedOutput() })
		}
		wg.Wait()
		for p := range procs {
			if errs[p] != nil {
				t.Errorf("round %d process %d: %v\n%s", r, p, errs[p], outs[p])
			}
		}
	}
	s := authkeys.Load(authkeys.HomeOptions(home))
	var got []string
	for _, e := range s.Entries() {
		got = append(got, e.Fingerprint)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(s.Problems()) != 0 {
		t.Fatalf("after %d parallel authorizations: %d entries, problems %v; want %d", rounds*procs, len(got), s.Problems(), len(want))
	}
	entries, _ := keyDirEntries(filepath.Join(home, "authorized_keys.d"))
	if len(entries) != rounds*procs {
		t.Errorf("%d files in authorized_keys.d, want %d", len(entries), rounds*procs)
	}
}

// TestParallelRemoveProcesses removes, in several processes at once,
// different keys from one file that holds them all (a team's JWK Set):
// every removal takes effect, and the keys nobody removed stay. Without
// serialising the rewrites, two processes would read the same old set and
// the second rename would bring back the key the first one removed.
func TestParallelRemoveProcesses(t *testing.T) {
	home := t.TempDir()
	file := filepath.Join(home, "authorized_keys.d", "team.json")
	const rounds, procs = 4, 6
	for r := range rounds {
		var keys []*jwk.Key
		for i := range procs + 1 {
			k, err := jwk.Generate(jwk.Ed25519)
			if err != nil {
				t.Fatal(err)
			}
			pk := k.PublicKey()
			pk.Attrs = jwk.Attributes{}
			pk.Attrs.SetString("name", fmt.Sprintf("r%d-m%d", r, i))
			keys = append(keys, pk)
		}
		data, err := jwk.MarshalPublicSet(keys, jwk.JWK)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var (
			wg   sync.WaitGroup
			errs = make([]error, procs)
			outs = make([][]byte, procs)
		)
		for p := range procs { // member p goes; member procs stays
			cmd := keytoolCmd("-H", home, "authorize", "--remove", fmt.Sprintf("r%d-m%d", r, p))
			wg.Go(func() { outs[p], errs[p] = cmd.CombinedOutput() })
		}
		wg.Wait()
		for p := range procs {
			if errs[p] != nil {
				t.Errorf("round %d process %d: %v\n%s", r, p, errs[p], outs[p])
			}
		}
		left, err := jwk.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, k := range left {
			n, _ := k.Attrs.String("name")
			names = append(names, n)
		}
		if want := fmt.Sprintf("r%d-m%d", r, procs); len(names) != 1 || names[0] != want {
			t.Fatalf("round %d: after %d parallel removals the file holds %v, want only %s", r, procs, names, want)
		}
	}
}

// checkNoPartialFiles asserts that every file in dir is either a temporary
// file the stores ignore (.NAME.*.tmp) or a complete key file, and returns
// the complete ones.
func checkNoPartialFiles(t *testing.T, dir string, private bool) []string {
	t.Helper()
	entries := readDirIfAny(t, dir)
	var complete []string
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() || name == ".keytool.lock" { // the writers' lock
			continue
		}
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			if !keydir.Ignored(name) {
				t.Errorf("temporary file %s is not ignored by the stores", name)
			}
			continue
		}
		var err error
		if private && strings.HasPrefix(name, "key.") {
			_, err = jwk.ReadPrivateKeyFile(path)
		} else {
			_, err = jwk.ReadFile(path)
		}
		if err != nil {
			data, _ := os.ReadFile(path)
			t.Errorf("%s is not a complete key file (%d bytes): %v", path, len(data), err)
			continue
		}
		complete = append(complete, name)
	}
	return complete
}

// killAt starts cmd and SIGKILLs it after delay (unless it ended first).
// It reports whether the kill landed before the process exited.
func killAt(t *testing.T, cmd *exec.Cmd, delay time.Duration) bool {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		return false
	case <-time.After(delay):
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	return ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// timeRun measures how long the command made by mk takes to run to
// completion: the fastest of three runs.
func timeRun(t *testing.T, mk func(i int) *exec.Cmd) time.Duration {
	t.Helper()
	best := time.Hour
	for i := range 3 {
		cmd := mk(i)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		best = min(best, time.Since(start))
	}
	return best
}

// killDelay picks a random moment in a run of duration d, most of them in
// its second half, where the files are written.
func killDelay(d time.Duration) time.Duration {
	return d/4 + time.Duration(rand.Int64N(int64(d)))
}

// kill -9 of `keytool gen` and `keytool authorize` at random points of
// their run: never an empty or partial key file (the moby key.json bug);
// only complete files, or none, plus ignored temporary files.
//
// A random kill lands inside a write only now and then — on the 2-core
// machine 3 to 15 of 30 kills of gen and 2 to 8 of 30 of authorize, and
// under CI's load none of 150 once (2026-12-04) — so the kills inside
// each step of each write are TestKillAtEveryWrite's, which stops the
// process there before killing it. This test covers the moments around
// the writes (the lock, the reads, the checks) and counts, in its log,
// how many of its kills left a temporary file.
func TestKillDuringWrites(t *testing.T) {
	const runs = 30
	t.Run("gen", func(t *testing.T) {
		base := t.TempDir()
		d := timeRun(t, func(i int) *exec.Cmd { return keytoolCmd("-H", filepath.Join(base, fmt.Sprint("probe", i)), "gen") })
		outcomes := map[string]int{}
		killedN, midWrite := 0, 0
		for i := range runs {
			home := filepath.Join(base, fmt.Sprint(i))
			var old *jwk.Key
			args := []string{"-H", home, "gen"}
			if i%2 == 1 { // replace an existing identity: the rename path
				if out, err := keytoolCmd("-H", home, "gen").CombinedOutput(); err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
				old, _ = jwk.ReadPrivateKeyFile(filepath.Join(home, "key.json"))
				args = append(args, "--force")
			}
			delay := killDelay(d)
			killed := killAt(t, keytoolCmd(args...), delay)
			if killed {
				killedN++
				if len(tmpFiles(t, home)) > 0 {
					midWrite++
				}
			}
			files := checkNoPartialFiles(t, home, true)
			if fi, err := os.Stat(filepath.Join(home, "key.json")); err == nil && fi.Mode().Perm() != 0o600 {
				t.Errorf("run %d: key.json has mode %04o", i, fi.Mode().Perm())
			}
			if old != nil {
				k, err := jwk.ReadPrivateKeyFile(filepath.Join(home, "key.json"))
				if err != nil {
					t.Errorf("run %d: the old identity was lost: %v", i, err)
				} else if k.Fingerprint() == old.Fingerprint() {
					outcomes["replace: old key kept"]++
				} else {
					outcomes["replace: new key in place"]++
				}
				continue
			}
			outcomes[fmt.Sprintf("killed=%v files=%v", killed, files)]++
		}
		t.Logf("gen runs in %v; %d kills at random in [%v, %v): %v; %d killed before exit, %d of them mid-write", d.Round(time.Millisecond), runs, (d / 4).Round(time.Millisecond), (d + d/4).Round(time.Millisecond), outcomes, killedN, midWrite)
	})
	t.Run("authorize", func(t *testing.T) {
		root := t.TempDir()
		home := filepath.Join(root, "home")
		mkHome(t, home) // commands that write refuse a home that is not there
		pub := filepath.Join(root, "client.json")
		writePublicKey(t, pub, nil)
		d := timeRun(t, func(i int) *exec.Cmd {
			return keytoolCmd("-H", home, "authorize", "--name", fmt.Sprint("probe", i), pub)
		})
		for i := range 3 {
			os.Remove(filepath.Join(home, "authorized_keys.d", fmt.Sprint("probe", i, ".json")))
		}
		dir := filepath.Join(home, "authorized_keys.d")
		killedN, midWrite, written := 0, 0, 0
		for i := range runs {
			pub := filepath.Join(root, fmt.Sprint("c", i, ".pub.json"))
			k := writePublicKey(t, pub, nil)
			delay := killDelay(d)
			tmpBefore := len(tmpFiles(t, dir))
			if killAt(t, keytoolCmd("-H", home, "authorize", "--name", fmt.Sprint("c", i), pub), delay) {
				killedN++
				if len(tmpFiles(t, dir)) > tmpBefore {
					midWrite++
				}
			}
			if slices.Contains(checkNoPartialFiles(t, dir, false), fmt.Sprint("c", i, ".json")) {
				written++
				keys, _ := jwk.ReadFile(filepath.Join(dir, fmt.Sprint("c", i, ".json")))
				if len(keys) != 1 || keys[0].Fingerprint() != k.Fingerprint() {
					t.Errorf("run %d: the entry holds another key", i)
				}
			}
		}
		// The stores ignore whatever temporary files the kills left.
		s := authkeys.Load(authkeys.HomeOptions(home))
		if len(s.Problems()) != 0 || len(s.Entries()) != written {
			t.Errorf("store: %d entries (want %d), problems %v", len(s.Entries()), written, s.Problems())
		}
		t.Logf("authorize runs in %v; %d runs, %d killed before exit, %d of them mid-write, %d entries written", d.Round(time.Millisecond), runs, killedN, midWrite, written)
	})
}

// readDirIfAny lists dir, or nothing if it does not exist.
func readDirIfAny(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return entries
}

// tmpFiles lists the temporary files of atomicfile (".NAME.*.tmp") in dir.
// mkHome makes the home dir, mode 0700: authorize, revoke and trust-host
// refuse a -H that does not exist (homeToWrite).
func mkHome(t testing.TB, dir string) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}

func tmpFiles(t *testing.T, dir string) []string {
	t.Helper()
	var tmp []string
	for _, e := range readDirIfAny(t, dir) {
		if name := e.Name(); !e.IsDir() && strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp") {
			tmp = append(tmp, name)
		}
	}
	return tmp
}

// Disk full while writing: the command fails with a clear error naming the
// file and the cause, and leaves no half file (nor temporary file) behind.
// A small tmpfs gives a real ENOSPC when the test may mount one (root);
// a file-size limit (ulimit -f, EFBIG) works everywhere.
func TestDiskFullWhileWriting(t *testing.T) {
	check := func(t *testing.T, home string, cmd *exec.Cmd, cause string) {
		t.Helper()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("%v: err %v, want exit status 1\n%s", cmd.Args, err, stderr.String())
		}
		msg := stderr.String()
		if !strings.Contains(msg, cause) || !strings.Contains(msg, home) {
			t.Errorf("message does not name the file and the cause %q: %s", cause, msg)
		}
		t.Logf("%s", strings.TrimSpace(msg))
		err = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			switch filepath.Base(p) {
			case ".keytool.lock": // the writers' lock, made before the write
				return nil
			case "key.json", "pub_key.json", "client.json", "filler":
				if strings.Contains(p, "authorized_keys.d") {
					break
				}
				return nil
			}
			t.Errorf("left behind: %s", p)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	t.Run("file size limit", func(t *testing.T) {
		home := filepath.Join(t.TempDir(), "home")
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		// 1 block of 512 or 1024 bytes: an RSA 4096 private JWK (3 KB) does not fit.
		cmd := exec.Command("sh", "-c", `ulimit -f 1 && exec keytool -H "$0" gen -t rsa4096`, home)
		check(t, home, cmd, "file too large")
		if _, err := os.Stat(filepath.Join(home, "key.json")); err == nil {
			t.Error("key.json exists")
		}
	})

	t.Run("tmpfs full", func(t *testing.T) {
		mnt := filepath.Join(t.TempDir(), "small")
		if err := os.Mkdir(mnt, 0o700); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", mnt).CombinedOutput(); err != nil {
			t.Skipf("cannot mount a tmpfs here (%v: %s); the file-size limit case covers the failure", err, bytes.TrimSpace(out))
		}
		t.Cleanup(func() {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mnt, err, out)
			}
		})
		home := filepath.Join(mnt, "home")
		if out, err := keytoolCmd("-H", home, "gen").CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		pub := filepath.Join(home, "client.json")
		writePublicKey(t, pub, nil)
		if err := os.Mkdir(filepath.Join(home, "authorized_keys.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		// gen --force removes the public half of the key it replaces
		// before it writes the new key (a kill in between leaves no
		// public half of another key): removed then, pub_key.json would
		// free the room the new key takes. Removed before the file
		// system is filled, it frees nothing, and gen's write fails as
		// the test means it to.
		if err := os.Remove(filepath.Join(home, "pub_key.json")); err != nil {
			t.Fatal(err)
		}
		// Fill the file system.
		f, err := os.Create(filepath.Join(home, "filler"))
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
		f.Close()
		check(t, home, keytoolCmd("-H", home, "authorize", "--name", "alice", pub), "no space left on device")
		check(t, home, keytoolCmd("-H", home, "gen", "--force"), "no space left on device")
		// The old identity is intact.
		if _, err := jwk.ReadPrivateKeyFile(filepath.Join(home, "key.json")); err != nil {
			t.Errorf("the identity was damaged: %v", err)
		}
		// With room again, the same command works.
		os.Remove(filepath.Join(home, "filler"))
		if out, err := keytoolCmd("-H", home, "authorize", "--name", "alice", pub).CombinedOutput(); err != nil {
			t.Errorf("after freeing space: %v\n%s", err, out)
		}
	})
}

// loadProxy is a `keytool proxy` process under test, with its log
// scanned as it comes.
type loadProxy struct {
	cmd    *exec.Cmd
	addr   string
	mu     sync.Mutex
	counts map[string]int // log lines by msg
	kept   []string       // lines worth showing: errors, warnings, handshake failures other than refusals, lifecycle
	exited chan struct{}
	// reloads are the keys= of each "trust reloaded" line, in order;
	// reloaded is closed, and replaced, at each.
	reloads  []int
	reloaded chan struct{}
}

// startLoadProxy starts `keytool proxy` in home towards target, with the
// flags more (after its own, so that they win).
func startLoadProxy(t *testing.T, home, target string, more ...string) *loadProxy {
	t.Helper()
	cmd := keytoolCmd(append([]string{"-H", home, "proxy", "--listen", "127.0.0.1:0", "--target", target, "--drain-timeout", "5s"}, more...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &loadProxy{cmd: cmd, counts: map[string]int{}, exited: make(chan struct{}), reloaded: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			msg := logField(line, "msg")
			p.mu.Lock()
			p.counts[msg]++
			if msg == "listening" {
				addrc <- logField(line, "addr")
			}
			if msg == "trust reloaded" {
				keys, _ := strconv.Atoi(logField(line, "keys"))
				p.reloads = append(p.reloads, keys)
				close(p.reloaded)
				p.reloaded = make(chan struct{})
			}
			// Handshake failures are kept (the log aggregates them per
			// source and kind, so they are few): they say why a
			// connection the test expected admitted was not.
			if msg != "accepted" && msg != "closed" && msg != "refused" {
				p.kept = append(p.kept, line)
			}
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	select {
	case p.addr = <-addrc:
	case <-p.exited:
		t.Fatalf("the proxy exited: %v", p.log())
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not say where it listens")
	}
	return p
}

// waitReload waits, for at most patience, for a "trust reloaded" line
// that says the store holds keys keys, among the lines after the first
// seen. It returns the number of lines up to that one, and whether it came.
// The proxy logs a reload once the new snapshot is in effect, so a
// connection made after it is decided by it.
func (p *loadProxy) waitReload(seen, keys int, patience time.Duration) (int, bool) {
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		p.mu.Lock()
		for i := seen; i < len(p.reloads); i++ {
			if p.reloads[i] == keys {
				p.mu.Unlock()
				return i + 1, true
			}
		}
		seen = len(p.reloads)
		reloaded := p.reloaded
		p.mu.Unlock()
		select {
		case <-reloaded:
		case <-p.exited:
			return seen, false
		case <-timer.C:
			return seen, false
		}
	}
}

func (p *loadProxy) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.kept)
}

// logField extracts key=value (value possibly quoted) from a slog text line.
func logField(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v
}

// procStats reads the open file descriptors, threads and resident memory
// of a process from /proc.
func procStats(t *testing.T, pid int) (fds, threads int, rssKB int) {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "Threads:" {
			threads, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rssKB, _ = strconv.Atoi(f[1])
		}
	}
	return len(ents), threads, rssKB
}

// echoServer is the proxy's target: it echoes each connection until the
// other side closes it, or the test ends. (A deadline on each connection
// cut the slowest ones of TestProxyUnderLoadWithChurn on a loaded
// machine, where a first echoed byte took over a minute.)
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testnet.ServeEach(t, ln, func(c net.Conn) { _, _ = io.Copy(c, c) })
	return ln.Addr().String()
}

// loadDuration is how long TestProxyUnderLoadWithChurn runs: 60 s, or 3 s
// with -short; KEYTOOL_PROXY_LOAD_DURATION overrides both.
func loadDuration(t *testing.T) time.Duration {
	if s := os.Getenv("KEYTOOL_PROXY_LOAD_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("KEYTOOL_PROXY_LOAD_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 3 * time.Second
	}
	return time.Minute
}

// loadPatience bounds each wait of TestProxyUnderLoadWithChurn: a
// handshake (the proxy's --handshake-timeout, the clients' deadlines), a
// change to be applied, the proxy's descriptors to settle. It is a bound
// for a hang, not a pace: under -race at nice 19 beside two busy loops, a
// first echoed byte took up to 2m19s, and the proxy's default 10 s
// handshake timeout cut authorized clients.
const loadPatience = 3 * time.Minute

// loadEvidencePatience is how long past its duration the run may go on
// to gather its evidence (a run that failed stops at its duration). Under
// -race at nice 19 beside two busy loops, a full run took 4 minutes to
// make its 20 changes.
const loadEvidencePatience = 6 * time.Minute

// churnKey is a client key that the test authorizes and removes while the
// load runs. epoch changes at every transition, so that a connection can
// tell whether the state it started in held until it ended; seen says
// that a connection did, in this settled state, and until then the
// churner leaves the key alone: every state a change settles in is met
// by a connection, however slow the machine (when the churner kept its
// own pace, a loaded machine's connections never fit between two
// changes).
type churnKey struct {
	mu    sync.Mutex
	state string // "authorized", "removing", "removed", "adding"
	epoch int
	seen  bool
}

// settled reports whether s is a state the proxy has been seen to apply.
func settled(s string) bool { return s == "authorized" || s == "removed" }

func (c *churnKey) get() (string, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, c.epoch
}

func (c *churnKey) set(s string) {
	c.mu.Lock()
	c.state = s
	c.epoch++
	c.seen = false
	c.mu.Unlock()
}

// ended reports whether a connection begun in epoch ended in it, and if
// so, and the state is settled, marks it seen.
func (c *churnKey) ended(epoch int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return false
	}
	c.seen = c.seen || settled(c.state)
	return true
}

// ready returns the key's state, and whether the churner may change it:
// settled, and seen there by a connection.
func (c *churnKey) ready() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, settled(c.state) && c.seen
}

// `keytool proxy` under 200 concurrent connections while client keys are
// added and removed (one every 100 ms at most), for 60 s (3 s with
// -short) and then until the run holds its evidence:
//
//   - no authorized connection is refused: a key that stays authorized
//     for the whole connection (the stable keys; a churned key whose
//     addition was applied and whose removal had not started) always
//     gets through, and its data is echoed by the target;
//   - no removed key is admitted: a connection started after a removal
//     was committed (file deleted) and applied (the proxy logged the
//     reload), and ended before the key was added again, is refused;
//   - a change applies from the next connection: once the proxy has
//     logged the reload, the next connection with the key (the witness)
//     is admitted after an addition and refused after a removal;
//   - both are seen, even in a short run: a key is not changed again
//     before a worker's connection has met it in its new state, so the
//     workers see churned keys admitted and refused after a change; there
//     must be at least one of each, for the witnesses and the workers;
//   - evidence, not pace: the run goes on past its duration (for at most
//     loadEvidencePatience) until it has made 20 changes (2 with -short)
//     and seen all the above, so that a loaded machine makes it longer,
//     not failed; the proxy's handshake timeout and the clients'
//     deadlines are loadPatience, so that a slow handshake is not a
//     refusal;
//   - no leak: the proxy's open file descriptors return to their level
//     before the load, and on SIGTERM no connection is still open
//     (each connection's goroutine has ended) and it drains at once.
func TestProxyUnderLoadWithChurn(t *testing.T) {
	duration := loadDuration(t)
	const (
		concurrency = 200
		stableN     = 8
		churnN      = 8
	)
	// On a loaded machine every worker, and a witness for each churned
	// key, may be in its handshake at once. The proxy runs with the
	// default --max-startups, as deployed, and past its START (256) it
	// refuses new connections at random (sshd's random early drop):
	// authorized connections refused, which this test counts as
	// failures, not as load. Raising the load past START means passing
	// --max-startups below too, and this test then no longer runs the
	// default.
	if inHandshake := concurrency + churnN; inHandshake >= proxy.DefaultMaxStartups.Start {
		t.Fatalf("%d workers and %d witnesses may be in their handshake at once: at --max-startups' default START (%d) the proxy refuses connections at random", concurrency, churnN, proxy.DefaultMaxStartups.Start)
	}
	root := t.TempDir()
	home := filepath.Join(root, "server")
	if out, err := keytoolCmd("-H", home, "gen").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	srvKeys, err := jwk.ReadFile(filepath.Join(home, "pub_key.json"))
	if err != nil {
		t.Fatal(err)
	}
	authDir := filepath.Join(home, "authorized_keys.d")
	if err := os.MkdirAll(authDir, 0o755); err != nil {
		t.Fatal(err)
	}
	type ident struct {
		key   *jwk.Key
		id    *tlsbridge.Identity
		cfg   *tls.Config // TLS 1.3
		cfg12 *tls.Config // TLS 1.2: a refusal ends the client's handshake with the alert
	}
	newIdent := func() *ident {
		k, err := jwk.Generate(jwk.EC256)
		if err != nil {
			t.Fatal(err)
		}
		id, err := tlsbridge.NewIdentity(k, tlsbridge.CertOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return &ident{key: k, id: id}
	}
	authorizeFile := func(name string, k *jwk.Key) {
		if err := jwk.WritePublicKeyFile(filepath.Join(authDir, name+".json"), k.PublicKey(), jwk.JWK, jwk.Overwrite); err != nil {
			t.Fatal(err)
		}
	}
	stable := make([]*ident, stableN)
	for i := range stable {
		stable[i] = newIdent()
		authorizeFile(fmt.Sprint("stable", i), stable[i].key)
	}
	churn := make([]*ident, churnN)
	churnState := make([]*churnKey, churnN)
	// Half the churned keys start authorized, so that the first changes
	// are both additions and removals.
	for i := range churn {
		churn[i] = newIdent()
		churnState[i] = &churnKey{state: "removed"}
		if i%2 == 1 {
			authorizeFile(fmt.Sprint("churn", i), churn[i].key)
			churnState[i].state = "authorized"
		}
	}

	target := echoServer(t)
	// Every worker is 127.0.0.1, as behind a load balancer: up to all of
	// them (and the witnesses) may be in their handshake at once on a
	// loaded machine, past the default per-source bound. --max-startups
	// keeps its default: the load is kept under its START (above).
	px := startLoadProxy(t, home, target, "--handshake-timeout", loadPatience.String(), "--max-startups-per-source", strconv.Itoa(2*concurrency))

	// The clients pin the proxy's key; each identity keeps a session
	// cache, so that removed keys also try to resume.
	hosts := knownhosts.Load(knownhosts.HomeOptions(filepath.Join(root, "client")))
	if _, err := hosts.Add(px.addr, srvKeys[0]); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(slices.Clone(stable), churn...) {
		c, err := tlsbridge.NewClient(id.id, tlsbridge.ClientOptions{Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		if id.cfg, err = c.TLSConfig(px.addr); err != nil {
			t.Fatal(err)
		}
		id.cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
		if id.cfg12, err = c.TLSConfig(px.addr); err != nil {
			t.Fatal(err)
		}
		id.cfg12.MaxVersion = tls.VersionTLS12
		id.cfg12.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}

	// connect makes one connection with id, exchanges a line twice with
	// a pause between, and reports whether the proxy let it through.
	connect := func(id *ident, tls12 bool, hold time.Duration) (admitted bool, firstByte time.Duration, err error) {
		start := time.Now()
		cfg := id.cfg
		if tls12 {
			cfg = id.cfg12
		}
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: loadPatience}, "tcp", px.addr, cfg)
		if err != nil {
			return false, 0, err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(loadPatience))
		r := bufio.NewReader(c)
		for i := range 2 {
			if _, err := io.WriteString(c, "ping\n"); err != nil {
				return false, 0, err
			}
			line, err := r.ReadString('\n')
			if err != nil {
				return false, 0, err
			}
			if line != "ping\n" {
				return true, 0, fmt.Errorf("echo %q", line)
			}
			if i == 0 {
				firstByte = time.Since(start)
				time.Sleep(hold)
			}
		}
		return true, firstByte, nil
	}
	// A refusal: in TLS 1.2 the handshake fails with the proxy's alert.
	// In TLS 1.3 the client's handshake completes before the proxy
	// decides, so its first write or read meets the alert, or the
	// connection reset that follows it.
	isRefusal := func(err error, tls12 bool) bool {
		if err == nil {
			return false
		}
		if strings.Contains(err.Error(), "remote error: tls: bad certificate") {
			return true
		}
		return !tls12 && (errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET))
	}

	// Warm up, then measure the proxy at rest.
	for i := range 20 {
		if ok, _, err := connect(stable[i%stableN], i%2 == 0, 0); !ok || err != nil {
			t.Fatalf("warm-up connection refused: %v\n%s", err, strings.Join(px.log(), "\n"))
		}
	}
	time.Sleep(200 * time.Millisecond)
	fds0, threads0, rss0 := procStats(t, px.cmd.Process.Pid)

	var (
		mu                                      sync.Mutex
		failures                                []string
		stableOK, churnOK, churnRefused, unsure int
		changedOK, changedRefused               int // churnOK, churnRefused in a state a change settled in
		witnessOK, witnessRefused               int
		transitions                             int
		latencies                               []time.Duration
		maxOpen, open                           int
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// The evidence a run must hold: enough changes to have raced many
	// handshakes (20 in a full run, a few in a short one), each direction
	// witnessed, and each seen by the workers after a change.
	wantTransitions := 2
	if duration >= 20*time.Second {
		wantTransitions = 20
	}
	// After its duration, the run ends once it holds its evidence, or
	// has failed (more load would prove nothing more).
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failures) > 0 ||
			transitions >= wantTransitions && witnessOK > 0 && witnessRefused > 0 && changedOK > 0 && changedRefused > 0
	}
	start := time.Now()
	minEnd, giveUp := start.Add(duration), start.Add(duration+loadEvidencePatience)
	running := func() bool {
		now := time.Now()
		return now.Before(minEnd) || (now.Before(giveUp) && !enough())
	}

	// The churner: every 100 ms, toggle the next churned key that is
	// ready, and wait for the proxy to log the reload that applies it
	// ("trust reloaded" with the new number of keys: one change at a
	// time, so that each reload is known); the next connection with that
	// key, the witness, must then be admitted after an addition and
	// refused after a removal, before the key is marked settled. A
	// settled key is ready once a worker's connection has met it
	// (churnKey.seen). (The churn used to probe with the key until the
	// proxy's answer changed: on a loaded machine that cost a minute of
	// handshakes per change.)
	var churners sync.WaitGroup
	var applyMax time.Duration
	churners.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		next, reloads, keys := 0, 0, stableN+churnN/2
		for running() {
			<-tick.C
			// The next key, in turn, that is ready (on a loaded machine
			// a witness, or a worker's connection, may take longer than
			// a round of all the keys).
			n, st := -1, ""
			for j := range churnN {
				m := (next + j) % churnN
				if s, ok := churnState[m].ready(); ok {
					n, st = m, s
					break
				}
			}
			if n < 0 {
				continue
			}
			next = n + 1
			ks := churnState[n]
			name := fmt.Sprint("churn", n)
			wantAdmitted := st == "removed"
			committed := time.Now()
			if wantAdmitted {
				ks.set("adding")
				authorizeFile(name, churn[n].key)
				keys++
			} else {
				ks.set("removing")
				if err := os.Remove(filepath.Join(authDir, name+".json")); err != nil {
					fail("removing %s: %v", name, err)
				}
				keys--
			}
			mu.Lock()
			transitions++
			tls12 := transitions%2 == 0
			mu.Unlock()
			var applied bool
			if reloads, applied = px.waitReload(reloads, keys, loadPatience); !applied {
				fail("%s: the proxy did not log the reload to %d keys within %v (want admitted=%v)", name, keys, loadPatience, wantAdmitted)
				return
			}
			mu.Lock()
			applyMax = max(applyMax, time.Since(committed))
			mu.Unlock()
			churners.Go(func() {
				ok, _, err := connect(churn[n], tls12, 0)
				switch {
				case wantAdmitted && (!ok || err != nil):
					fail("%s, added and applied: the next connection was refused: admitted=%v err=%v", name, ok, err)
				case !wantAdmitted && ok:
					fail("%s, removed and applied: the next connection was admitted", name)
				case !wantAdmitted && !isRefusal(err, tls12):
					fail("%s, removed and applied: the next connection was refused with %v, not the bad_certificate alert (TLS 1.2: %v)", name, err, tls12)
				default:
					mu.Lock()
					if wantAdmitted {
						witnessOK++
					} else {
						witnessRefused++
					}
					mu.Unlock()
				}
				if wantAdmitted {
					ks.set("authorized")
				} else {
					ks.set("removed")
				}
			})
		}
	})

	var workers sync.WaitGroup
	for w := range concurrency {
		workers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for running() {
				hold := time.Duration(300+rng.IntN(1000)) * time.Millisecond
				mu.Lock()
				open++
				maxOpen = max(maxOpen, open)
				mu.Unlock()
				if rng.IntN(10) < 7 {
					id := stable[rng.IntN(stableN)]
					ok, fb, err := connect(id, rng.IntN(4) == 0, hold)
					mu.Lock()
					open--
					if ok && err == nil {
						stableOK++
						latencies = append(latencies, fb)
					}
					mu.Unlock()
					if !ok || err != nil {
						fail("authorized (stable) key %s: admitted=%v err=%v", id.key.Fingerprint(), ok, err)
					}
					continue
				}
				n := rng.IntN(churnN)
				st, epoch := churnState[n].get()
				tls12 := rng.IntN(2) == 0
				// Short connections, to fit in the windows between changes.
				ok, _, err := connect(churn[n], tls12, hold/10)
				same := churnState[n].ended(epoch)
				changed := epoch > 0 // the state is a change's, not the initial one
				mu.Lock()
				open--
				mu.Unlock()
				switch {
				case !same || !settled(st):
					mu.Lock()
					unsure++
					mu.Unlock()
				case st == "authorized":
					if !ok || err != nil {
						fail("churn%d, authorized for the whole connection: admitted=%v err=%v", n, ok, err)
					} else {
						mu.Lock()
						churnOK++
						if changed {
							changedOK++
						}
						mu.Unlock()
					}
				case st == "removed":
					if ok {
						fail("churn%d, removed (and applied) before the connection: admitted", n)
					} else if !isRefusal(err, tls12) {
						fail("churn%d, removed: refused with %v, not the bad_certificate alert (TLS 1.2: %v)", n, err, tls12)
					} else {
						mu.Lock()
						churnRefused++
						if changed {
							changedRefused++
						}
						mu.Unlock()
					}
				}
			}
		})
	}
	workers.Wait()
	churners.Wait()
	ran := time.Since(start)

	// After the load: every connection is closed; wait for the proxy to
	// notice, then measure again.
	var fds1, threads1, rss1 int
	fdsSettled := false
	for settleEnd := time.Now().Add(loadPatience); time.Now().Before(settleEnd); {
		time.Sleep(100 * time.Millisecond)
		fds1, threads1, rss1 = procStats(t, px.cmd.Process.Pid)
		if fds1 <= fds0 {
			fdsSettled = true
			break
		}
	}
	slices.Sort(latencies)
	pct := func(p float64) time.Duration {
		if len(latencies) == 0 {
			return 0
		}
		return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Round(100 * time.Microsecond)
	}
	t.Logf("%v (at least %v), %d workers (max %d connections open at once): %d stable connections ok, churned keys: %d ok, %d refused (after a change: %d, %d), %d during a transition; %d key changes (witnesses: %d admitted, %d refused), slowest applied after %v",
		ran.Round(time.Second), duration, concurrency, maxOpen, stableOK, churnOK, churnRefused, changedOK, changedRefused, unsure, transitions, witnessOK, witnessRefused, applyMax.Round(time.Millisecond))
	t.Logf("time to first echoed byte (handshake + proxy + target): p50 %v, p99 %v, max %v", pct(0.5), pct(0.99), pct(1))
	t.Logf("proxy before load: %d fds, %d threads, %d MB RSS; after: %d fds, %d threads, %d MB RSS", fds0, threads0, rss0>>10, fds1, threads1, rss1>>10)
	for _, f := range failures {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Logf("proxy log (handshake failures, lifecycle):\n%s", strings.Join(px.log(), "\n"))
	}
	if !fdsSettled {
		t.Errorf("file descriptors leaked: %d before the load, %d after", fds0, fds1)
	}
	// The churn's pace is the machine's: a change waits for its witness
	// and for a worker to see it, and the run for the evidence, so the
	// counts say how much was tested, not how fast (a pace asserted here
	// failed runs on machines shared with other jobs; so did a full
	// run's workers, whose connections no longer fitted between two
	// changes, when the churner kept its own pace).
	if transitions < wantTransitions {
		t.Errorf("only %d key changes in %v (want %d): the churn was not tested", transitions, ran, wantTransitions)
	}
	if witnessOK == 0 || witnessRefused == 0 {
		t.Errorf("the churned keys were not seen both admitted and refused after a change (witnesses: %d admitted, %d refused): the test proved nothing", witnessOK, witnessRefused)
	}
	if changedOK == 0 || changedRefused == 0 {
		t.Errorf("the workers never saw the churned keys both admitted and refused after a change (%d admitted, %d refused): the test proved nothing", changedOK, changedRefused)
	}

	// SIGTERM: no connection may still be open, so the drain is immediate.
	if err := px.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-px.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy did not exit on SIGTERM")
	}
	if code := px.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit status %d", code)
	}
	var stopLine string
	for _, l := range px.log() {
		if strings.Contains(l, "stopped accepting") {
			stopLine = l
		}
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("proxy error: %s", l)
		}
	}
	if logField(stopLine, "open") != "0" || !slices.ContainsFunc(px.log(), func(l string) bool { return strings.Contains(l, "drained; exiting") }) {
		t.Errorf("connections still open after the load (handler goroutines leaked):\n%s", strings.Join(px.log(), "\n"))
	}
	// Goroutines: the proxy counts its own when it starts listening and
	// when it stops accepting; with no connection open the two must be
	// the same (one or two of slack for the runtime's own, such as a
	// finalizer goroutine started on demand).
	var listenLine string
	for _, l := range px.log() {
		if strings.Contains(l, "msg=listening") {
			listenLine = l
		}
	}
	g0, err0 := strconv.Atoi(logField(listenLine, "goroutines"))
	g1, err1 := strconv.Atoi(logField(stopLine, "goroutines"))
	t.Logf("proxy goroutines: %d when it began listening, %d after the load with no connection open", g0, g1)
	if err0 != nil || err1 != nil {
		t.Errorf("the proxy did not log its goroutines: %q, %q", listenLine, stopLine)
	} else if g1 > g0+2 {
		t.Errorf("goroutines leaked: %d when the proxy began listening, %d after the load", g0, g1)
	}
	px.mu.Lock()
	t.Logf("proxy log: %v", px.counts)
	px.mu.Unlock()
}

// TestParallelAuthorizeOneKeyProcesses authorizes one key under two names
// in two `keytool authorize` processes at once: one writes it, the other
// warns that it is authorized already and writes nothing, and the key has
// one entry. Each process checked against its own load before either
// wrote, and both wrote: one key, two names (authkeys.Store.Add now
// checks and writes under the directory's lock).
func TestParallelAuthorizeOneKeyProcesses(t *testing.T) {
	root := t.TempDir()
	for r := range 8 {
		home := filepath.Join(root, fmt.Sprintf("home%d", r))
		mkHome(t, home) // commands that write refuse a home that is not there
		file := filepath.Join(root, fmt.Sprintf("key%d.json", r))
		k := writePublicKey(t, file, nil)
		var (
			wg         sync.WaitGroup
			errs       [2]error
			outs, errb [2]bytes.Buffer
		)
		for p := range 2 {
			cmd := keytoolCmd("-H", home, "authorize", "--name", fmt.Sprintf("n%d", p), file)
			cmd.Stdout, cmd.Stderr = &outs[p], &errb[p]
			wg.Go(func() { errs[p] = cmd.Run() })
		}
		wg.Wait()
		authorized, warned := 0, 0
		for p := range 2 {
			if errs[p] != nil {
				t.Fatalf("round %d process %d: %v\n%s%s", r, p, errs[p], &outs[p], &errb[p])
			}
			if strings.HasPrefix(outs[p].String(), "Authorized ") {
				authorized++
			}
			if strings.Contains(errb[p].String(), "is already authorized as") {
				warned++
			}
		}
		fp, _ := jwk.ParseFingerprint(k.Fingerprint())
		n := len(authkeys.Load(authkeys.HomeOptions(home)).FindKeys(fp, false))
		if authorized != 1 || warned != 1 || n != 1 {
			t.Fatalf("round %d: %d authorized, %d warned, %d entries of the key; want 1, 1, 1\n%s%s%s%s", r, authorized, warned, n, &outs[0], &errb[0], &outs[1], &errb[1])
		}
	}
}
