package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/cli"
	"github.com/keytool/keytool/internal/scripttest"
)

// TestMain lets the test binary act as the etcd build of keytool:
// testscript puts a copy named "keytool" first in PATH, so that scripts
// run it as a real process. It also registers etcdrace://, which is
// etcd:// with someone else writing between keytool's read and its write
// (conflict.txt), and etcdslow://, etcd:// whose
// Apply creates the file $KEYTOOL_SLOW_MARK and then waits a minute: a
// keytool process caught in the middle of a store edit
// (store-interrupted.txt); and etcdcount://, etcd:// that logs its full
// listings to $KEYTOOL_COUNT_LOG (TestStoreMirrorReadsOnlyChanges);
// etcdwatch:// and etcdcountwatch://, etcd:// and etcdcount:// whose
// changes since the mirror's revision are read by a watch whatever the
// prefix's size (store.watchFrom 0), as a large prefix's are; and
// etcdrm://, etcd:// that removes the files $KEYTOOL_RM_GLOB matches once
// it has read the changes since the mirror's revision (an rm -r of the
// mirror under way while the command runs:
// TestStoreMirrorNameFreedDuringTheCommand); and etcdlag://, etcd://
// whose List, with $KEYTOOL_LAG_REV set, answers as a member behind the
// others at that revision would (sync-behind.txt).
func TestMain(m *testing.M) {
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdrace"}, Flags: wrapped(func(s *store) cli.Store { return racing{s} })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdslow"}, Flags: wrapped(func(s *store) cli.Store { return slow{s} })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdcount"}, Flags: wrapped(func(s *store) cli.Store { return counting{s} })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdwatch"}, Flags: wrapped(func(s *store) cli.Store { s.watchFrom = 0; return s })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdcountwatch"}, Flags: wrapped(func(s *store) cli.Store { s.watchFrom = 0; return counting{s} })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdrm"}, Flags: wrapped(func(s *store) cli.Store { return removing{s} })})
	cli.RegisterStore(cli.StoreBackend{Schemes: []string{"etcdlag"}, Flags: wrapped(func(s *store) cli.Store { return lagging{s} })})
	testscript.Main(m, map[string]func(){
		"keytool": func() {
			holdAt(os.Getenv("KEYTOOL_TEST_HOLD"), os.Getenv("KEYTOOL_TEST_HOLD_MARK"))
			os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
		},
	})
}

// holdAt, for "N" (from 1), stops the keytool process once the Nth
// write of atomicfile's is filled, not yet placed: it makes the file mark
// and waits to be killed (sync-killed-write.txt), so that a kill lands
// inside a write, not at a random moment. "" changes nothing.
func holdAt(nth, mark string) {
	if nth == "" {
		return
	}
	n, err := strconv.Atoi(nth)
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "KEYTOOL_TEST_HOLD=%q: want N\n", nth)
		os.Exit(2)
	}
	var writes atomic.Int64
	atomicfile.Hook = func(step, path string) {
		if step != atomicfile.StepFilled || writes.Add(1) != int64(n) {
			return
		}
		if err := os.WriteFile(mark, []byte(path+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		time.Sleep(time.Hour)
	}
}

// wrapped opens SCHEME://HOST/PREFIX as etcd://HOST/PREFIX (with the
// default connection flags), wrapped in a test's store.
func wrapped(wrap func(*store) cli.Store) func(*pflag.FlagSet) cli.StoreOpener {
	return func(*pflag.FlagSet) cli.StoreOpener {
		open := etcdFlags(pflag.NewFlagSet("test", pflag.ContinueOnError))
		return func(ctx context.Context, u *url.URL) (cli.Store, error) {
			plain := *u
			plain.Scheme = "etcd"
			st, err := open(ctx, &plain)
			if err != nil {
				return nil, err
			}
			return wrap(st.(*store)), nil
		}
	}
}

// racing's List, ListRevisions and ChangesSince are followed by a Put of
// $KEYTOOL_RACE_KEY (under the prefix), before keytool writes.
type racing struct{ *store }

func (r racing) List(ctx context.Context) (cli.StoreListing, error) {
	l, err := r.store.List(ctx)
	if err == nil {
		_, err = r.c.Put(ctx, r.prefix+"/"+os.Getenv("KEYTOOL_RACE_KEY"), "changed by someone else")
	}
	return l, err
}

func (r racing) ListRevisions(ctx context.Context) (cli.StoreListing, error) {
	l, err := r.store.ListRevisions(ctx)
	if err == nil {
		_, err = r.c.Put(ctx, r.prefix+"/"+os.Getenv("KEYTOOL_RACE_KEY"), "changed by someone else")
	}
	return l, err
}

func (r racing) ChangesSince(ctx context.Context, k cli.StoreMark) (cli.StoreDelta, error) {
	d, err := r.store.ChangesSince(ctx, k)
	if err == nil {
		_, err = r.c.Put(ctx, r.prefix+"/"+os.Getenv("KEYTOOL_RACE_KEY"), "changed by someone else")
	}
	return d, err
}

// lagging's List, with $KEYTOOL_LAG_REV set, answers as a member behind
// the others would at that revision: the prefix as it was then, and that
// revision (etcd's read at an older revision says the current one).
type lagging struct{ *store }

func (l lagging) List(ctx context.Context) (cli.StoreListing, error) {
	v := os.Getenv("KEYTOOL_LAG_REV")
	if v == "" {
		return l.store.List(ctx)
	}
	rev, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return cli.StoreListing{}, err
	}
	resp, err := l.c.Get(ctx, l.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return cli.StoreListing{}, err
	}
	out := cli.StoreListing{Revision: rev, Identity: identityOf(resp.Header), Count: resp.Count}
	for _, kv := range resp.Kvs {
		if e, ok := l.entryOf(kv); ok {
			e.Value = kv.Value
			out.Entries = append(out.Entries, e)
		}
	}
	return out, nil
}

// counting appends the name of each call that lists the whole prefix
// (List, ListRevisions, ListAt) as a line to $KEYTOOL_COUNT_LOG.
type counting struct{ *store }

func (c counting) log(call string) {
	f, err := os.OpenFile(os.Getenv("KEYTOOL_COUNT_LOG"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		fmt.Fprintln(f, call)
		f.Close()
	}
}

func (c counting) List(ctx context.Context) (cli.StoreListing, error) {
	c.log("List")
	return c.store.List(ctx)
}

func (c counting) ListRevisions(ctx context.Context) (cli.StoreListing, error) {
	c.log("ListRevisions")
	return c.store.ListRevisions(ctx)
}

func (c counting) ListAt(ctx context.Context, rev int64) ([]cli.StoreEntry, error) {
	c.log("ListAt")
	return c.store.ListAt(ctx, rev)
}

// removing's ChangesSince is followed by the removal of the files
// $KEYTOOL_RM_GLOB matches.
type removing struct{ *store }

func (r removing) ChangesSince(ctx context.Context, k cli.StoreMark) (cli.StoreDelta, error) {
	d, err := r.store.ChangesSince(ctx, k)
	files, _ := filepath.Glob(os.Getenv("KEYTOOL_RM_GLOB"))
	for _, f := range files {
		err = errors.Join(err, os.Remove(f))
	}
	return d, err
}

type slow struct{ *store }

func (s slow) Apply(ctx context.Context, changes []cli.StoreChange) (int64, error) {
	if err := os.WriteFile(os.Getenv("KEYTOOL_SLOW_MARK"), nil, 0o600); err != nil {
		return 0, err
	}
	time.Sleep(time.Minute)
	return s.store.Apply(ctx, changes)
}

// startEtcd starts one embedded etcd member on loopback ports, stopped at
// the end of the test, and returns its client address (host:port). With
// tlsInfo, it serves TLS only, as tlsInfo says.
func startEtcd(t testing.TB, tlsInfo *transport.TLSInfo) string {
	t.Helper()
	e := startEtcdAt(t, loopbackURL(t), loopbackURL(t), tlsInfo)
	t.Cleanup(e.Close)
	return e.Config().ListenClientUrls[0].Host
}

// startEtcdAt starts one embedded etcd member, with a new data
// directory, at client URL c and peer URL p: the same URLs make the same
// cluster ID (a member restored from a snapshot keeps it too).
func startEtcdAt(t testing.TB, c, p url.URL, tlsInfo *transport.TLSInfo) *embed.Etcd {
	t.Helper()
	return startEtcdConfig(t, c, p, tlsInfo, nil)
}

// testBcryptCost is the cost of the passwords the tests' members hash
// (bcrypt.MinCost): a login is a bcrypt check on the member, in this
// process, and under the race detector one at etcd's default cost (10)
// took 2–4 s, so that a command's --etcd-dial-timeout (5 s) or a test's
// own deadline ran out on a loaded machine (TestTLSAndAuth,
// TestCurrentUnderARoleOnThePrefix). What the tests check of logins is
// counted, never timed; a benchmark keeps etcd's default, whose cost a
// real member's login has.
const testBcryptCost = 4

// startEtcdConfig is startEtcdAt with configure, if not nil, called on
// the member's configuration before it starts.
func startEtcdConfig(t testing.TB, c, p url.URL, tlsInfo *transport.TLSInfo, configure func(*embed.Config)) *embed.Etcd {
	t.Helper()
	dir := t.TempDir()
	cfg := embed.NewConfig()
	cfg.Name = "keytool-cli"
	cfg.Dir = filepath.Join(dir, "data")
	if tlsInfo != nil {
		c.Scheme = "https"
		cfg.ClientTLSInfo = *tlsInfo
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{c}, []url.URL{c}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{p}, []url.URL{p}
	cfg.InitialCluster = cfg.Name + "=" + p.String()
	cfg.LogLevel = "error"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	if _, bench := t.(*testing.B); !bench {
		cfg.BcryptCost = testBcryptCost
	}
	if configure != nil {
		configure(cfg)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Close()
		t.Fatal("embedded etcd not ready after 60 s")
	}
	return e
}

// etcdClient is a client of the plain member at addr, closed at the end
// of the test (after its parallel subtests).
func etcdClient(tb testing.TB, addr string) *clientv3.Client {
	tb.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addr}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func loopbackURL(t testing.TB) url.URL {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, _ := url.Parse("http://" + l.Addr().String())
	return *u
}

// TestScripts runs testdata/script/*.txt against one embedded etcd: each
// script has a prefix of its own ($STORE is etcd://HOST:PORT/PREFIX).
func TestScripts(t *testing.T) {
	addr := startEtcd(t, nil)
	client := etcdClient(t, addr) // closed after the scripts, which run in parallel
	var n atomic.Int64
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			prefix := fmt.Sprintf("/keytool-test/%d", n.Add(1))
			env.Setenv("GORACE", "atexit_sleep_ms=0")
			env.Setenv("ETCD", addr)
			env.Setenv("PREFIX", prefix)
			env.Setenv("STORE", "etcd://"+addr+prefix)
			// testscript's HOME, /no-home, is one path for every script
			// and every run on the machine: a default home (~/.keytool)
			// one made there stayed for the next (found when an edit with
			// --store used a mirror in /no-home/.keytool, not the
			// temporary copy store-interrupted.txt looks for). A home of
			// the script's own, not there either, is that no-home.
			env.Setenv("HOME", filepath.Join(env.WorkDir, ".no-home"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"etcdput":   func(ts *testscript.TestScript, neg bool, args []string) { etcdPut(ts, client, args) },
			"etcdget":   func(ts *testscript.TestScript, neg bool, args []string) { etcdGet(ts, neg, client, args) },
			"etcddel":   func(ts *testscript.TestScript, neg bool, args []string) { etcdDel(ts, client, args) },
			"etcdrev":   func(ts *testscript.TestScript, neg bool, args []string) { etcdRev(ts, client, args) },
			"pad":       cmdPad,
			"freeport":  scripttest.FreePort,
			"listening": scripttest.Listening,
			"waitfor":   cmdWaitFor,
			"waitfile":  cmdWaitFile,
			"mode":      scripttest.Mode,
		},
	})
}

// etcdput KEY FILE [N] puts FILE's content at $PREFIX/KEY, or with N at
// $PREFIX/KEY-0.json … KEY-(N-1).json.
func etcdPut(ts *testscript.TestScript, c *clientv3.Client, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: etcdput KEY FILE [N]")
	}
	data, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	key := ts.Getenv("PREFIX") + "/" + args[0]
	if len(args) == 2 {
		_, err = c.Put(ctx, key, string(data))
		ts.Check(err)
		return
	}
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	for i := 0; i < n; i += 100 { // etcd's default --max-txn-ops is 128
		var ops []clientv3.Op
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("%s-%d.json", key, j), string(data)))
		}
		_, err = c.Txn(ctx).Then(ops...).Commit()
		ts.Check(err)
	}
}

// etcddel KEY deletes every key under $PREFIX/KEY.
func etcdDel(ts *testscript.TestScript, c *clientv3.Client, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: etcddel KEY")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Delete(ctx, ts.Getenv("PREFIX")+"/"+args[0], clientv3.WithPrefix())
	ts.Check(err)
}

// etcdrev VAR sets VAR to the store's revision now.
func etcdRev(ts *testscript.TestScript, c *clientv3.Client, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: etcdrev VAR")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, ts.Getenv("PREFIX")+"/")
	ts.Check(err)
	ts.Setenv(args[0], strconv.FormatInt(resp.Header.Revision, 10))
}

// etcdget KEY [FILE] writes the value at $PREFIX/KEY to FILE (default
// stdout of the command, for stdout/cmp); ! etcdget KEY asserts there is
// none.
func etcdGet(ts *testscript.TestScript, neg bool, c *clientv3.Client, args []string) {
	if len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: etcdget KEY [FILE]")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, ts.Getenv("PREFIX")+"/"+args[0])
	ts.Check(err)
	if neg {
		if len(resp.Kvs) > 0 {
			ts.Fatalf("%s exists: %q", args[0], resp.Kvs[0].Value)
		}
		return
	}
	if len(resp.Kvs) == 0 {
		ts.Fatalf("no key %s in etcd", args[0])
	}
	if len(args) == 2 {
		ts.Check(os.WriteFile(ts.MkAbs(args[1]), resp.Kvs[0].Value, 0o644))
		return
	}
	fmt.Fprintf(ts.Stdout(), "%s", resp.Kvs[0].Value)
}

// pad FILE N appends spaces to FILE up to N bytes: a key file over a
// bound, still a key file.
func cmdPad(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: pad FILE N")
	}
	n, err := strconv.Atoi(args[1])
	ts.Check(err)
	data, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	if len(data) < n {
		data = append(data, strings.Repeat(" ", n-len(data))...)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), data, 0o644))
}

// waitfor DURATION PROG ARGS… runs PROG until it succeeds (or, with !,
// until it fails), up to DURATION: for a change that a running process
// picks up from etcd.
func cmdWaitFor(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 2 {
		ts.Fatalf("usage: waitfor DURATION PROG [ARGS...]")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	deadline := time.Now().Add(d)
	for {
		err := ts.Exec(args[1], args[2:]...)
		if (err == nil) != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %s, %s still %s: %v", d, args[1], map[bool]string{false: "fails", true: "succeeds"}[neg], err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitfile DURATION FILE waits until FILE exists (! waitfile: until it
// does not), up to DURATION.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: waitfile DURATION FILE")
	}
	d, err := time.ParseDuration(args[0])
	ts.Check(err)
	deadline := time.Now().Add(d)
	for {
		_, err := os.Stat(ts.MkAbs(args[1]))
		if (err == nil) != neg {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("after %s, %s: %v", d, args[1], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mirrorFixture is what the mirror's tests start from: a member, a home,
// and the generated public keys of names.
type mirrorFixture struct {
	bin, addr, dir, home, prefix string
	admin                        *clientv3.Client
	pub                          map[string]string
}

func newMirrorFixture(t *testing.T, prefix string, names ...string) *mirrorFixture {
	f := &mirrorFixture{bin: keytoolBinary(t), addr: startEtcd(t, nil), dir: t.TempDir(), prefix: prefix, pub: map[string]string{}}
	f.admin = etcdClient(t, f.addr)
	f.home = filepath.Join(f.dir, "home")
	run(t, f.bin, "-H", f.home, "gen")
	for _, who := range names {
		run(t, f.bin, "-H", filepath.Join(f.dir, who), "gen")
		f.pub[who] = filepath.Join(f.dir, who, "pub_key.json")
	}
	return f
}

// get is the value of the key under the prefix, "" if none.
func (f *mirrorFixture) get(t *testing.T, key string) string {
	t.Helper()
	resp, err := f.admin.Get(context.Background(), f.prefix+"/"+key)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// rewriteInPlace writes data into the file at path, the same inode: what
// the directory's stamp does not see.
func rewriteInPlace(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

// TestStoreMirror: with a home, edits through --store keep the store's
// entries in a mirror in the home (HOME/.store-mirror/…) and rewrite only
// what changed in the store since; a change made directly in etcd is seen
// by the next command, and a mirror changed by anyone else is rebuilt from
// the store, never used for a decision or written back.
func TestStoreMirror(t *testing.T) {
	fx := newMirrorFixture(t, "/mirror", "alice", "bob", "carol", "dave", "erin", "frank", "mallory")
	bin, addr, admin, dir, h, pub := fx.bin, fx.addr, fx.admin, fx.dir, fx.home, fx.pub
	ctx := context.Background()
	store := "etcd://" + addr + "/mirror"
	authorize := func(args ...string) (string, error) {
		out, err := exec.Command(bin, append([]string{"-H", h, "authorize", "--store", store}, args...)...).CombinedOutput()
		return string(out), err
	}
	get := func(key string) string { return fx.get(t, key) }

	if out, err := authorize("--name", "alice", pub["alice"]); err != nil {
		t.Fatalf("authorize alice: %v\n%s", err, out)
	}
	mirrors, _ := filepath.Glob(filepath.Join(h, ".store-mirror", "*"))
	if len(mirrors) != 1 {
		t.Fatalf("mirrors in the home: %v", mirrors)
	}
	m := mirrors[0]
	if fi, err := os.Stat(m); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("the mirror: %v, %v", fi, err)
	}
	alice := filepath.Join(m, "authorized_keys.d", "alice.json")
	before, err := os.Stat(alice)
	if err != nil {
		t.Fatal(err)
	}

	// A second edit reuses the mirror: alice's file is not rewritten.
	if out, err := authorize("--name", "bob", pub["bob"]); err != nil {
		t.Fatalf("authorize bob: %v\n%s", err, out)
	}
	after, err := os.Stat(alice)
	if err != nil || !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Fatalf("alice's file in the mirror was rewritten by the next edit: %v → %v (%v)", before, after, err)
	}
	if get("authorized_keys/bob.json") == "" {
		t.Fatal("bob not written to etcd")
	}

	// Changed in etcd between two commands: a revocation put there and
	// bob's entry removed are seen by the next one.
	revoked := filepath.Join(dir, "revoker")
	if err := os.Mkdir(revoked, 0o700); err != nil { // revoke refuses a home that is not there
		t.Fatal(err)
	}
	run(t, bin, "-H", revoked, "revoke", pub["mallory"])
	files, _ := filepath.Glob(filepath.Join(revoked, "revoked_keys.d", "*.json"))
	if len(files) != 1 {
		t.Fatalf("revoke wrote %v", files)
	}
	revocation, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Put(ctx, "/mirror/revoked_keys/"+filepath.Base(files[0]), string(revocation)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Delete(ctx, "/mirror/authorized_keys/bob.json"); err != nil {
		t.Fatal(err)
	}
	if out, err := authorize("--name", "mallory", pub["mallory"]); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("authorize of a key revoked in etcd since the last command: %v\n%s", err, out)
	}
	if get("authorized_keys/mallory.json") != "" {
		t.Fatal("a key revoked in etcd was authorized")
	}
	if out, err := authorize("--name", "carol", pub["bob"]); err != nil || strings.Contains(out, "already authorized") {
		t.Fatalf("bob's key, its entry removed in etcd, under another name: %v\n%s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(m, "authorized_keys.d", "bob.json")); !os.IsNotExist(err) {
		t.Fatalf("bob's entry, removed in etcd, is still in the mirror: %v", err)
	}

	// A mirror changed by someone else is rebuilt from the store: a file
	// added (evil.json) decides nothing and is not written back, and the
	// rebuild writes every file anew (alice's, rewritten in place, too).
	daveKey, err := os.ReadFile(pub["dave"])
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a later clock tick than the last command's changes (docs/fleet.md: kernels before 6.13)
	rewriteInPlace(t, alice, daveKey)
	if err := os.WriteFile(filepath.Join(m, "authorized_keys.d", "evil.json"), daveKey, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := authorize("--name", "dave", pub["dave"]); err != nil || strings.Contains(out, "already authorized") {
		t.Fatalf("dave after the mirror was tampered with: %v\n%s", err, out)
	}
	if get("authorized_keys/dave.json") == "" || get("authorized_keys/evil.json") != "" {
		t.Fatal("the tampered mirror was used: dave not written, or evil written")
	}
	data, err := os.ReadFile(alice)
	if err != nil || string(data) != get("authorized_keys/alice.json") {
		t.Fatalf("alice's file was not rebuilt from etcd: %v", err)
	}

	// A file rewritten in place in the mirror between commands (the
	// directories' stamps do not see it: docs/fleet.md says why that is
	// acceptable) is never written to etcd: only what changed during a
	// command is compared with etcd and written.
	carolFile := filepath.Join(m, "authorized_keys.d", "carol.json")
	carolBefore := get("authorized_keys/carol.json")
	if carolBefore == "" {
		t.Fatal("no carol in etcd")
	}
	rewriteInPlace(t, carolFile, daveKey)
	if out, err := authorize("--name", "frank", pub["frank"]); err != nil || get("authorized_keys/frank.json") == "" {
		t.Fatalf("authorize frank: %v\n%s", err, out)
	}
	if got := get("authorized_keys/carol.json"); got != carolBefore {
		t.Fatalf("a file rewritten in place in the mirror was written to etcd: %q", got)
	}
	if err := os.WriteFile(carolFile, []byte(carolBefore), 0o644); err != nil { // as it was, for what follows
		t.Fatal(err)
	}

	// A file removed from the mirror (mallory's revocation) makes the next
	// command rebuild it: the key is still refused.
	revFile := filepath.Join(m, "revoked_keys.d", filepath.Base(files[0]))
	time.Sleep(20 * time.Millisecond) // as above
	if err := os.Remove(revFile); err != nil {
		t.Fatal(err)
	}
	if out, err := authorize("--name", "mallory", pub["mallory"]); err == nil || !strings.Contains(out, "revoked") {
		t.Fatalf("authorize of a key revoked in etcd after its revocation was removed from the mirror: %v\n%s", err, out)
	}
	if _, err := os.Lstat(revFile); err != nil {
		t.Fatalf("the mirror was not rebuilt: %v", err)
	}

	// A conflict leaves the mirror to be rebuilt: the next command reads
	// the entry someone else wrote, and compares its revision.
	race := "etcdrace://" + addr + "/mirror"
	racing := func(key string, args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-H", h, "authorize", "--store", race}, args...)...)
		cmd.Env = append(os.Environ(), "KEYTOOL_RACE_KEY="+key)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := racing("other/x", "--name", "erin", pub["erin"]); err != nil { // warms the etcdrace:// mirror
		t.Fatalf("authorize erin: %v\n%s", err, out)
	}
	if out, err := racing("authorized_keys/alice.json", "--force", "--name", "alice", pub["erin"]); err == nil || !strings.Contains(out, "nothing was written") {
		t.Fatalf("a conflicting write through a warm mirror: %v\n%s", err, out)
	}
	if got := get("authorized_keys/alice.json"); got != "changed by someone else" {
		t.Fatalf("alice in etcd: %q", got)
	}
	if out, err := racing("other/x", "--force", "--name", "alice", pub["alice"]); err != nil {
		t.Fatalf("authorize --force alice after the conflict: %v\n%s", err, out)
	}
	aliceKey, _ := os.ReadFile(alice)
	if got := get("authorized_keys/alice.json"); got == "changed by someone else" || !strings.Contains(got, `"name": "alice"`) {
		t.Fatalf("alice in etcd after --force: %q (mirror's: %q)", got, aliceKey)
	}
}

// TestStoreMirrorReadsOnlyChanges: with a warm mirror, an edit lists
// nothing: it reads etcd's changes since the mirror's revision (an entry
// added, rewritten, removed in etcd is seen by the next command) and
// compares only the files the command touched; a revision etcd compacted
// makes the next command list the prefix, and it is still right.
//
// Run with the changes read from the range (a small prefix's way) and by a
// watch (a large one's: etcdcountwatch://).
func TestStoreMirrorReadsOnlyChanges(t *testing.T) {
	for _, scheme := range []string{"etcdcount", "etcdcountwatch"} {
		t.Run(scheme, func(t *testing.T) { storeMirrorReadsOnlyChanges(t, scheme) })
	}
}

func storeMirrorReadsOnlyChanges(t *testing.T, scheme string) {
	f := newMirrorFixture(t, "/count", "alice", "bob", "carol", "dave", "erin", "frank")
	bin, admin, h, pub := f.bin, f.admin, f.home, f.pub
	ctx := context.Background()
	logFile := filepath.Join(f.dir, "listings")
	store := scheme + "://" + f.addr + "/count"
	listings := func() int {
		data, _ := os.ReadFile(logFile)
		return strings.Count(string(data), "\n")
	}
	authorize := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"-H", h, "authorize", "--store", store}, args...)...)
		cmd.Env = append(os.Environ(), "KEYTOOL_COUNT_LOG="+logFile)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustAuthorize := func(args ...string) {
		t.Helper()
		if out, err := authorize(args...); err != nil {
			t.Fatalf("authorize %v: %v\n%s", args, err, out)
		}
	}
	get := func(key string) string { return f.get(t, key) }
	// Entries someone else wrote before the mirror was made.
	for i := range 50 {
		if _, err := admin.Put(ctx, fmt.Sprintf("/count/trusted_hosts/h%d.json", i), "{}"); err != nil {
			t.Fatal(err)
		}
	}
	mustAuthorize("--name", "alice", pub["alice"])
	if n := listings(); n != 1 {
		t.Fatalf("%d listings to make the mirror", n)
	}
	mustAuthorize("--name", "bob", pub["bob"])
	if n := listings(); n != 1 || get("authorized_keys/bob.json") == "" {
		t.Fatalf("a warm edit: %d listings in all, bob %q", n, get("authorized_keys/bob.json"))
	}

	// Changed in etcd between two commands, with another key of the
	// cluster written too (the watch then starts in the past): bob
	// removed, carol's key put under the name dave, alice's entry
	// rewritten (erin's key), a key of another prefix.
	carol, _ := os.ReadFile(pub["carol"])
	erin, _ := os.ReadFile(pub["erin"])
	for _, op := range []clientv3.Op{
		clientv3.OpDelete("/count/authorized_keys/bob.json"),
		clientv3.OpPut("/count/authorized_keys/dave.json", string(carol)),
		clientv3.OpPut("/count/authorized_keys/alice.json", string(erin)),
		clientv3.OpPut("/elsewhere/x", "y"),
	} {
		if _, err := admin.Do(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := authorize("--name", "carol", pub["bob"]); err != nil || strings.Contains(out, "already authorized") {
		t.Fatalf("bob's key, removed in etcd, under another name: %v\n%s", err, out)
	}
	if out, err := authorize("--name", "x", pub["carol"]); !strings.Contains(out, `already authorized as "dave"`) || get("authorized_keys/x.json") != "" {
		t.Fatalf("carol's key, put in etcd as dave: %v\n%s", err, out)
	}
	if out, err := authorize("--name", "y", pub["erin"]); !strings.Contains(out, `already authorized as "alice"`) || get("authorized_keys/y.json") != "" {
		t.Fatalf("erin's key, put in etcd as alice: %v\n%s", err, out)
	}
	if n := listings(); n != 1 {
		t.Fatalf("%d listings in all: the changes were not read alone", n)
	}

	// A compacted revision: the next command lists the prefix, and sees
	// what changed.
	if _, err := admin.Delete(ctx, "/count/authorized_keys/dave.json"); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.Put(ctx, "/elsewhere/x", "z")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if out, err := authorize("--name", "frank", pub["carol"]); err != nil || strings.Contains(out, "already authorized") {
		t.Fatalf("carol's key, its entry removed in etcd before a compaction: %v\n%s", err, out)
	}
	if n := listings(); n != 2 {
		t.Fatalf("%d listings in all: a compacted revision was not listed in full", n)
	}
	if get("authorized_keys/frank.json") == "" {
		t.Fatal("frank not written")
	}
	mustAuthorize("--name", "erin2", pub["frank"])
	if n := listings(); n != 2 {
		t.Fatalf("%d listings after the rebuild", n)
	}
}
