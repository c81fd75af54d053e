package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/keytool/keytool/etcd"
	"github.com/keytool/keytool/internal/cli"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
)

// backend opens --store etcd://HOST:PORT[,HOST:PORT…]/PREFIX (plain TCP)
// and etcds://… (TLS), with the connection flags below (docs/fleet.md,
// "Command line").
var backend = cli.StoreBackend{Schemes: []string{"etcd", "etcds"}, Flags: etcdFlags}

// keepAliveTime and keepAliveTimeout are the client's keepalive (config).
// The time is gRPC's least (it raises a shorter one to 10 s), and twice
// etcd's --grpc-keepalive-min-time: a frozen member's requests fail for
// 13 s at most, for a ping every 10 s on a quiet watch's connection
// (Kubernetes' apiserver pings after 30 s). The timeout is under a
// request of etcd.Source (5 s), which is then retried elsewhere.
var keepAliveTime, keepAliveTimeout = 10 * time.Second, 3 * time.Second

// connFlags are the etcd flags of one command line.
type connFlags struct {
	cacert, cert, key  string
	user, passwordFile string
	dialTimeout        time.Duration
	maxStaleness       time.Duration
	cache              string
}

func etcdFlags(fs *pflag.FlagSet) cli.StoreOpener {
	f := &connFlags{}
	fs.StringVar(&f.cacert, "etcd-cacert", "", "etcds://: verify the etcd members with the CA certificates in `FILE` (default: the system's)")
	fs.StringVar(&f.cert, "etcd-cert", "", "etcds://: present the client certificate in `FILE` to etcd (with --etcd-key)")
	fs.StringVar(&f.key, "etcd-key", "", "etcds://: the private key `FILE` of --etcd-cert (mode 0600)")
	fs.StringVar(&f.user, "etcd-user", "", "authenticate to etcd as `USER` (with --etcd-password-file)")
	fs.StringVar(&f.passwordFile, "etcd-password-file", "", "read --etcd-user's password from `FILE` (mode 0600; never on the command line)")
	fs.DurationVar(&f.dialTimeout, "etcd-dial-timeout", 5*time.Second, "give up on reaching etcd after `DURATION`")
	fs.DurationVar(&f.maxStaleness, "etcd-max-staleness", etcd.DefaultMaxStaleness, "once the view of etcd has not been confirmed current for `DURATION` (negative: never), proxy refuses every key and sync --watch stops mirroring (the files it wrote keep admitting)")
	fs.StringVar(&f.cache, "etcd-cache", "", "proxy, sync --watch: keep the last view of etcd in `FILE` (default: HOME/etcd-cache/PREFIX-HASH.json)")
	return f.open
}

// config checks the flags against the URL and builds the client's.
func (f *connFlags) config(u *url.URL) (clientv3.Config, string, error) {
	var cfg clientv3.Config
	prefix := strings.TrimSuffix(u.Path, "/")
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return cfg, "", cli.Usagef("--store %s: only %s://HOST:PORT[,HOST:PORT…]/PREFIX; credentials go in --etcd-user and --etcd-password-file", u.Redacted(), u.Scheme)
	}
	if prefix == "" {
		return cfg, "", cli.Usagef("--store %s: give the prefix the entries are under: %s://%s/PREFIX (a prefix of its own keeps keytool's keys apart from the cluster's others)", u, u.Scheme, u.Host)
	}
	scheme := "http" // etcd:// is plain TCP, etcds:// TLS
	if u.Scheme == "etcds" {
		scheme = "https"
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return cfg, "", cli.Usagef("--store %s: an empty member address", u)
		}
		cfg.Endpoints = append(cfg.Endpoints, scheme+"://"+h)
	}
	tlsSet := f.cacert != "" || f.cert != "" || f.key != ""
	switch {
	case u.Scheme == "etcd" && tlsSet:
		return cfg, "", cli.Usagef("--etcd-cacert, --etcd-cert and --etcd-key are for TLS: use etcds://%s%s (etcd:// is plain TCP)", u.Host, u.Path)
	case (f.cert == "") != (f.key == ""):
		return cfg, "", cli.Usagef("--etcd-cert and --etcd-key go together: the client certificate and its private key")
	case f.passwordFile != "" && f.user == "":
		return cfg, "", cli.Usagef("--etcd-password-file is the password of --etcd-user: give the user too")
	case u.Scheme == "etcd" && f.user != "":
		// On loopback too: a plain port is anyone's who listens on it
		// first — while etcd restarts, or where it is not — and any local
		// user may; TLS proves the member is etcd before the password is
		// sent (TestPasswordNotToASquatter).
		return cfg, "", cli.Usagef("--etcd-user with etcd://%s: etcd:// is plain TCP, so the password would go in clear to whoever answers at that address — across the network, or, on loopback too, any local user who listens on the port first (while etcd restarts, say) — and with it they could write the fleet's trust: use etcds://%s%s --etcd-cacert CA.pem, which checks the member is etcd before the password is sent", u.Host, u.Host, u.Path)
	case f.user != "" && f.passwordFile == "":
		return cfg, "", cli.Usagef("--etcd-user needs --etcd-password-file FILE holding the password (a password on the command line is seen by every user of the machine in ps and /proc, and kept in shell history)")
	case f.dialTimeout <= 0:
		return cfg, "", cli.Usagef("--etcd-dial-timeout must be positive, not %v", f.dialTimeout)
	}
	if u.Scheme == "etcds" {
		tc, err := f.tls()
		if err != nil {
			return cfg, "", err
		}
		cfg.TLS = tc
	}
	if f.user != "" {
		pw, err := readPassword(f.passwordFile)
		if err != nil {
			return cfg, "", err
		}
		cfg.Username, cfg.Password = f.user, pw
	}
	cfg.DialTimeout = f.dialTimeout
	// Each attempt to connect gives up after the same time (at most gRPC's
	// own 20 s: a long --etcd-dial-timeout, for a slow login, must not let
	// an attempt hang longer), or gRPC's wait between attempts if that is
	// longer (1 s at first): an attempt made while the network dropped
	// etcd's packets waits out its time once the network is back, and held
	// a following store's view back 10.1 s after the network healed, where
	// with 2 s a key authorized meanwhile was admitted 0.28 s after
	// (TestConnectAttemptsGiveUpAfterTheDialTimeout). gRPC's pace between
	// attempts is kept (etcd.Source hastens it while no member is
	// reachable).
	cfg.DialOptions = append(cfg.DialOptions, grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.DefaultConfig, MinConnectTimeout: min(f.dialTimeout, 20*time.Second)}))
	// A member that stops answering — a stopped process, a paused
	// machine, a firewall dropping its packets — keeps its connection,
	// and gRPC's round robin went on sending it a request in three: each
	// waited out its time and failed, for as long as the freeze lasted
	// (TestAFrozenMemberIsLeft). With keepalive, gRPC pings a connection
	// silent for keepAliveTime while a request or watch is open on it —
	// at once, for the first request on one silent longer — and ends it
	// when no answer comes within keepAliveTimeout; clientv3 retries a
	// read under way on another member (a write fails). So requests meet
	// a frozen member for keepAliveTime + keepAliveTimeout after its last
	// answer at most, where before they did for good. No ping goes on a
	// connection with nothing open (etcd answers one with GOAWAY:
	// PermitWithoutStream stays false), so an idle member costs nothing.
	cfg.DialKeepAliveTime, cfg.DialKeepAliveTimeout = keepAliveTime, keepAliveTimeout
	cfg.Logger = zap.NewNop()
	return cfg, prefix, nil
}

// tls is the TLS configuration of etcds://.
func (f *connFlags) tls() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.cacert != "" {
		// It says which members are etcd, whose answers are the fleet's
		// trust: read under the strict-modes rule (the file, a link's
		// target, its directory), as a certificate beside an identity is,
		// so that no one else who could write it could make their own
		// server etcd.
		data, _, err := trustfile.Rule{Top: filepath.Dir(f.cacert)}.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("--etcd-cacert %s: no PEM certificate in it", f.cacert)
		}
		tc.RootCAs = pool
	}
	if f.cert != "" {
		certPEM, _, err := trustfile.Read(f.cert)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert: %w", err)
		}
		keyPEM, err := readSecret("--etcd-key", f.key)
		if err != nil {
			return nil, err
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert %s, --etcd-key %s: %w", f.cert, f.key, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// readPassword reads a password file: a regular file that only its owner
// may read, its first line the password.
func readPassword(file string) (string, error) {
	data, err := readSecret("--etcd-password-file", file)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(data), "\n")
	pw = strings.TrimSuffix(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("--etcd-password-file %s: empty", file)
	}
	return pw, nil
}

// readSecret reads the file of flag, a secret: a regular file that only
// its owner may read (as OpenSSH requires of identity files).
func readSecret(flag, file string) ([]byte, error) {
	data, fi, err := trustfile.Read(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s %s: mode %04o lets others read it; chmod 600 %s", flag, file, fi.Mode().Perm(), file)
	}
	return data, nil
}

// open connects to the members of u.
func (f *connFlags) open(_ context.Context, u *url.URL) (cli.Store, error) {
	cfg, prefix, err := f.config(u)
	if err != nil {
		return nil, err
	}
	where := u.Scheme + "://" + u.Host + prefix
	var login *etcd.Login
	if cfg.Username != "" {
		login = etcd.KeepLogin(&cfg, prefix)
	}
	c, err := clientv3.New(cfg) // with a user, this authenticates: it talks to etcd
	if err != nil {
		return nil, unreachable(where, cfg, err)
	}
	// The client dials at its first request; dialing now overlaps the
	// connection's setup (4–5 ms on loopback) with what the command does
	// before it asks etcd anything (the mirror's lock, manifest and
	// stamps): about 1 ms less before the first answer, measured.
	c.ActiveConnection().Connect()
	return &store{c: c, flags: f, cfg: cfg, where: where, prefix: prefix, login: login, watchFrom: watchFrom, watchWait: watchWait}, nil
}

// unreachable is the error of a request etcd did not answer: gRPC says
// only "context deadline exceeded", so a TLS handshake with the first
// member says what is wrong, if it can tell.
func unreachable(where string, cfg clientv3.Config, err error) error {
	if !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd at %s: %w", where, err)
	}
	why := "is it running, and is the address right?"
	if len(cfg.Endpoints) > 0 {
		if w := probeTLS(cfg); w != "" {
			why = w
		}
	}
	return fmt.Errorf("etcd at %s did not answer in time (--etcd-dial-timeout %v): %s", where, cfg.DialTimeout, why)
}

// probeTLS shakes hands with the first member as the client would, and
// says what went wrong: a certificate not verified, a client certificate
// refused (the member's alert, read after the handshake), or, for
// etcd://, a member that speaks TLS.
func probeTLS(cfg clientv3.Config) string {
	_, host, _ := strings.Cut(cfg.Endpoints[0], "://")
	tc := &tls.Config{InsecureSkipVerify: true} // only to tell whether the member speaks TLS; nothing is sent
	if cfg.TLS != nil {
		tc = cfg.TLS.Clone()
		tc.ServerName, _, _ = net.SplitHostPort(host)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: cfg.DialTimeout}, "tcp", host, tc)
	if err != nil {
		if cfg.TLS == nil {
			return ""
		}
		return "TLS with " + host + ": " + err.Error()
	}
	defer conn.Close()
	if cfg.TLS == nil {
		return "the member at " + host + " speaks TLS: use etcds:// (with --etcd-cacert)"
	}
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return "TLS with " + host + ": " + err.Error()
	}
	return ""
}

// store is an etcd prefix as a cli.Store.
type store struct {
	c      *clientv3.Client
	flags  *connFlags
	cfg    clientv3.Config
	where  string      // etcd://HOST:PORT/PREFIX, for messages
	prefix string      // no trailing slash
	login  *etcd.Login // with --etcd-user: the client's login, kept

	// watchFrom is the package's (tests lower it to watch any prefix);
	// watched counts the deltas a watch gave (tests tell which way), and
	// movedOff the watches given up for an answer from another member.
	watchFrom         int64
	watched, movedOff int
	// watchWait is the package's (tests that require the watch's delta
	// lift it: on a slow machine the watch may take longer than it to
	// answer, and the range read instead would fail them).
	watchWait time.Duration
	// beforeWatch, if set, runs in watchChanges just before its watch is
	// made (tests compact etcd there: etcd's first read of the history
	// for that watch then comes after the compaction, whenever its
	// resync runs). beforeProgress, if set, runs once the watch is made
	// and its member's version checked, before the first progress
	// request (tests move the watch to another member there).
	beforeWatch, beforeProgress func()
	// statusOf, if set, sees (and may change) each answer to
	// progressAfterSync's Status (tests answer as an older member).
	statusOf func(*etcdserverpb.StatusResponse)
}

func (s *store) Close() error { return s.c.Close() }

// MaxValue is the bound of the view Follow opens (etcd.Options.MaxValue,
// left at its default there).
func (s *store) MaxValue() int { return etcd.DefaultMaxValue }

// call runs one request, bounded by the dial timeout, and says where when
// etcd does not answer.
func (s *store) call(ctx context.Context, do func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.flags.dialTimeout+10*time.Second)
	defer cancel()
	if err := do(ctx); err != nil {
		return unreachable(s.where, s.cfg, err)
	}
	return nil
}

// List lists the prefix's keys with their values and ModRevisions, at the
// revision of the answer.
func (s *store) List(ctx context.Context) (cli.StoreListing, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.prefix+"/", clientv3.WithPrefix())
		return err
	})
	if err != nil {
		return cli.StoreListing{}, err
	}
	// Refused as ListRevisions refuses it, and the Source's list: keytool
	// sync mirrors this list, and would otherwise remove the file of every
	// entry such an answer lacks, revocations included, while the stores
	// reading etcd refuse the answer and keep enforcing them
	// (TestHeaderlessListRefused).
	if resp.Header == nil {
		return cli.StoreListing{}, s.noHeader("list", s.prefix+"/")
	}
	l := cli.StoreListing{Revision: resp.Header.Revision, Identity: identityOf(resp.Header), Count: resp.Count}
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), s.prefix+"/") {
			// Not etcd's answer for this range (a proxy or a member gone
			// wrong): none of it is the prefix's, as the Source's list
			// refuses it whole. Skipped, the rest would be taken for every
			// entry, and sync would remove the files of those it lacks
			// (TestListRefusesAnswerOutsideThePrefix).
			return cli.StoreListing{}, &etcd.OutsideKeyError{Prefix: s.prefix + "/", Key: string(kv.Key)}
		}
		e, ok := s.entryOf(kv)
		if !ok {
			continue // outside the layout: the stores report it
		}
		e.Value = kv.Value
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

// ListRevisions lists the prefix's keys without their values, with each
// key's ModRevision, at the revision of the answer.
func (s *store) ListRevisions(ctx context.Context) (cli.StoreListing, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		return err
	})
	if err != nil {
		return cli.StoreListing{}, err
	}
	if resp.Header == nil {
		return cli.StoreListing{}, s.noHeader("list", s.prefix+"/")
	}
	l := cli.StoreListing{Revision: resp.Header.Revision, Identity: identityOf(resp.Header), Count: resp.Count}
	for _, kv := range resp.Kvs {
		if e, ok := s.entryOf(kv); ok { // else outside the layout: the stores report it
			l.Entries = append(l.Entries, e)
		}
	}
	return l, nil
}

// valuesByKey is how many entries Values reads one key at a time; past
// it, one read of the whole prefix at the revision costs less.
const valuesByKey = 64

// Values reads the entries' values at revision: one Get per key for a
// few, the prefix at once for more. An entry whose ModRevision at
// revision is not the one listed is an error (it cannot be, at the same
// revision, unless the store was restored meanwhile).
func (s *store) Values(ctx context.Context, revision int64, entries []cli.StoreEntry) error {
	byKey := map[string]*cli.StoreEntry{}
	for i := range entries {
		byKey[s.prefix+"/"+entries[i].Kind+"/"+entries[i].Name] = &entries[i]
	}
	var resps []*clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) error {
		resps = resps[:0]
		if len(entries) > valuesByKey {
			resp, err := s.c.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(revision))
			resps = append(resps, resp)
			return err
		}
		for key := range byKey {
			resp, err := s.c.Get(ctx, key, clientv3.WithRev(revision))
			if err != nil {
				return err
			}
			resps = append(resps, resp)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, resp := range resps {
		for _, kv := range resp.Kvs {
			e := byKey[string(kv.Key)]
			if e == nil {
				continue
			}
			if kv.ModRevision != e.Revision {
				return fmt.Errorf("etcd at %s: %s is at revision %d, listed at %d: run the command again", s.where, kv.Key, kv.ModRevision, e.Revision)
			}
			e.Value = kv.Value
			delete(byKey, string(kv.Key))
		}
	}
	for key := range byKey {
		return fmt.Errorf("etcd at %s: %s was listed at revision %d but has no value there: run the command again", s.where, key, revision)
	}
	return nil
}

// Apply writes the changes in one transaction, each compared with the
// revision read: a new entry must still not exist (CreateRevision 0),
// another must still be at its ModRevision.
func (s *store) Apply(ctx context.Context, changes []cli.StoreChange) (int64, error) {
	var cmps []clientv3.Cmp
	var ops []clientv3.Op
	for _, ch := range changes {
		key := s.prefix + "/" + ch.Kind + "/" + ch.Name
		if ch.Revision == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", ch.Revision))
		}
		if ch.Value == nil {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			ops = append(ops, clientv3.OpPut(key, string(ch.Value)))
		}
	}
	var resp *clientv3.TxnResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		return err
	})
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		// Not split: the change is all or nothing (a revocation and the
		// authorization it lifts, every pin of a key removed).
		return 0, fmt.Errorf("etcd at %s: the change touches %d entries, more than its members take in one transaction (etcd's --max-txn-ops, %d by default); nothing was written: make the change in smaller steps, or raise --max-txn-ops on every member (%w)",
			s.where, len(changes), txnOps, rpctypes.ErrTooManyOps)
	}
	if err != nil {
		return 0, err
	}
	if resp.Header == nil {
		// Written or not, its revision is unknown: the mirror, which
		// would take the files for the store's at it, is not kept.
		return 0, fmt.Errorf("%w (the change may have been written: see keytool list)", s.noHeader("write", s.prefix+"/"))
	}
	if !resp.Succeeded {
		return 0, &cli.StoreConflictError{Store: s.where, Changes: changes}
	}
	return resp.Header.Revision, nil
}

var _ cli.StoreHistory = (*store)(nil)

// noHeader is the error of an answer without its response header (or,
// for a transaction, without the answer of each of its reads): not
// etcd's (a proxy or a member gone wrong), refused rather than read as
// revision 0 of cluster 0.
func (s *store) noHeader(request, key string) error {
	return fmt.Errorf("etcd at %s: %w", s.where, &etcd.NoHeaderError{Request: request, Key: key})
}

// identityOf is the store's identity in a response's header.
func identityOf(h *etcdserverpb.ResponseHeader) string {
	return fmt.Sprintf("etcd cluster %x", h.ClusterId)
}

// compacted makes etcd's "required revision has been compacted" a
// cli.ErrStoreCompacted, which makes the mirror list the prefix instead.
func compacted(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return fmt.Errorf("%w: %w", cli.ErrStoreCompacted, err)
	}
	return err
}

// entryOf is the entry of an etcd key under the prefix; ok false for a key
// outside the layout (the stores report it), and for one outside the
// prefix, which etcd never answers for a range of the prefix: such a key
// is not taken for the prefix's.
func (s *store) entryOf(kv *mvccpb.KeyValue) (e cli.StoreEntry, ok bool) {
	rel, ok := strings.CutPrefix(string(kv.Key), s.prefix+"/")
	if !ok {
		return e, false
	}
	kind, name, ok := strings.Cut(rel, "/")
	return cli.StoreEntry{Kind: kind, Name: name, Revision: kv.ModRevision}, ok
}

// ChangesSince reads what changed under the prefix since the mark's
// revision R.
//
// First one read of a single key (one round trip, a few hundred µs on
// the server): the mark's witness at R — or, without one, the key
// PREFIX/ now — whose header gives the revision now, H. If H is R,
// nothing was written anywhere in the cluster since. Otherwise, for a
// prefix of watchFrom keys or more written less often since (watches), a
// watch of the prefix from R+1
// (watchChanges: etcd reads the history since R, what changed in the
// cluster, not the prefix); for a smaller one, or when the watch cannot
// tell, plain reads of the prefix's range (readChanges: etcd walks every
// key of the range).
//
// A history restored from a snapshot taken before R and written past R
// again (etcdutl snapshot restore without --bump-revision, keeping the
// cluster ID) reuses R's revisions for other writes: the witness (the
// last entry the mirror saw written, at Top) not at R as it was, or —
// when etcd moved past R — a count of the prefix's keys at R other than
// the mark's (a lost removal, which leaves no ModRevision), or (plain
// reads only) an entry whose ModRevision is above Top but not above R, is
// cli.ErrStoreRewritten, and the mirror is rebuilt. A revision etcd has
// compacted is cli.ErrStoreCompacted. Every read and watch is of
// PREFIX/…, which a role on PREFIX/ allows.
func (s *store) ChangesSince(ctx context.Context, k cli.StoreMark) (cli.StoreDelta, error) {
	var d cli.StoreDelta
	revision := k.Revision
	err := s.call(ctx, func(ctx context.Context) error {
		d = cli.StoreDelta{}
		first := clientv3.OpGet(s.prefix + "/")
		if w := k.Witness; w.Name != "" {
			first = clientv3.OpGet(s.prefix+"/"+w.Kind+"/"+w.Name, clientv3.WithRev(revision))
		}
		resp, err := s.c.Do(ctx, first)
		switch {
		case errors.Is(err, rpctypes.ErrFutureRev):
			return cli.ErrStoreRewritten // etcd's revision below R: a restore, or another cluster; rebuilt either way
		case err != nil:
			return compacted(err)
		}
		got := resp.Get()
		if got == nil || got.Header == nil {
			return s.noHeader("read", string(first.KeyBytes()))
		}
		d.Revision, d.Identity = got.Header.Revision, identityOf(got.Header)
		if d.Identity != k.Identity || d.Revision < revision {
			return nil // another store, or a restore: the caller sees which
		}
		if k.Witness.Name != "" && (len(got.Kvs) == 0 || got.Kvs[0].ModRevision != k.Top || sha256.Sum256(got.Kvs[0].Value) != k.Sum) {
			return cli.ErrStoreRewritten
		}
		if d.Revision == revision {
			d.Count = k.Count
			return nil
		}
		if s.watches(k, d.Revision) {
			ok, err := s.watchChanges(ctx, k, &d)
			if err != nil || ok {
				if ok {
					s.watched++
				}
				return err
			}
			d = cli.StoreDelta{Revision: d.Revision, Identity: d.Identity}
		}
		return s.readChanges(ctx, k, &d)
	})
	return d, err
}

// readChanges reads what changed under the prefix since the mark's
// revision R, etcd being at d.Revision, with plain reads of the prefix's
// range (linearizable, so never older than a write that finished
// before): one read-only transaction of the entries whose ModRevision is
// past the mark's Top, with their values (etcd filters: only those cross
// the network, but it reads every key of the range, values included, to
// filter them), and the prefix's count now and at R, all at the
// transaction's revision. Keys at R + keys created since R − keys now is
// how many were removed since (or removed and made again, which the
// first read holds already): only when it is not zero are the prefix's
// keys at R and now listed (keys only) and compared. An entry whose
// ModRevision is above Top but not above R is another history's
// (cli.ErrStoreRewritten), as is a count at R other than the mark's.
func (s *store) readChanges(ctx context.Context, k cli.StoreMark, d *cli.StoreDelta) error {
	revision := k.Revision
	txn, err := s.c.Txn(ctx).Then(
		clientv3.OpGet(s.prefix+"/", clientv3.WithPrefix(), clientv3.WithMinModRev(k.Top+1)),
		etcd.CountAt(s.prefix, 0),
		etcd.CountAt(s.prefix, revision),
	).Commit()
	if err != nil {
		return compacted(err)
	}
	if txn.Header == nil || len(txn.Responses) != 3 {
		return s.noHeader("read", s.prefix+"/")
	}
	d.Revision = txn.Header.Revision
	changed, now, before := txn.Responses[0].GetResponseRange(), txn.Responses[1].GetResponseRange(), txn.Responses[2].GetResponseRange()
	if changed == nil || now == nil || before == nil {
		return s.noHeader("read", s.prefix+"/")
	}
	if before.Count != k.Count {
		return cli.ErrStoreRewritten // a restore that lost a removal, say: Top and the witness cannot tell
	}
	d.Count = now.Count
	created := int64(0)
	for _, kv := range changed.Kvs {
		if kv.CreateRevision > revision {
			created++ // counted as the counts are: every key of the range
		}
		e, ok := s.entryOf(kv)
		if !ok {
			continue // outside the layout: not among what Top bounds
		}
		if kv.ModRevision <= revision {
			return cli.ErrStoreRewritten
		}
		e.Value = kv.Value
		if e.Value == nil {
			e.Value = []byte{}
		}
		d.Put = append(d.Put, e)
	}
	if before.Count+created == now.Count {
		return nil
	}
	d.Removed, err = s.removedBetween(ctx, revision, d.Revision)
	return err
}

// watchFrom is the size of a prefix (keys at the mark's revision) from
// which ChangesSince watches rather than reads the range: etcd walks
// every key of the range to filter it (1–3 µs a key, values read from
// its database included), where a watch from the past costs what was
// written in the cluster since, but waits for etcd's next resync of
// such watches (every 100 ms: 50 ms on average).
const watchFrom = 10_000

// watches says whether ChangesSince reads the changes since the mark's
// revision R, etcd being at h, by a watch: for a prefix of watchFrom keys
// or more, and fewer revisions since R than keys — etcd's resync of the
// watch reads every write of the cluster since R, which past that would
// cost more than the range. (Tests set watchFrom 0: a watch always.)
func (s *store) watches(k cli.StoreMark, h int64) bool {
	return s.watchFrom == 0 || k.Count >= s.watchFrom && h-k.Revision < k.Count
}

// watchWait bounds how long watchChanges waits for etcd to say it has
// sent every change: past it, the range is read instead. It counts from
// before the watch is made, so with --etcd-user it includes the check
// that the client's login still holds for the watch's stream
// (etcd.KeepLogin: a read; a login again, a bcrypt check on the member,
// only once the token expired or was revoked).
const watchWait = 2 * time.Second

// progressEvery is how often watchChanges asks etcd whether the watch has
// caught up: etcd 3.5.8 and later answer only once it has, and forget
// the question otherwise.
const progressEvery = 5 * time.Millisecond

// watchChanges reads what changed under the prefix since the mark's
// revision R, etcd being at least at d.Revision (H), with a watch of the
// prefix from R+1: every event up to the revision of a progress
// notification comes before it on the stream, and etcd 3.5.8 (3.4.25)
// and later send a progress notification only for a watch that has
// caught up (etcd issue 15220; earlier ones answered at once, which would
// have lost the events not yet sent: the member serving the watch must
// say it is one of those, else the range is read — and every answer must
// come from it, clientv3 resuming a watch whose connection was lost on
// another member without a word — and its version is asked again once
// the notification came: clientv3 resumes the watch on the same member
// restarted meanwhile as an older etcd, in a downgrade, under the same
// member ID; two restarts between the two questions are not told). The
// watch is asked for progress until a notification at H or later comes.
// Meanwhile,
// unless the witness was written at R (then a history restored to before
// R and written to R again would have had to write that key with that
// value at that revision, which the witness's check already accepts),
// the prefix's count at R is read (an index walk on the server, no
// values): the mark's, else the history is another
// (cli.ErrStoreRewritten). The count now is the count at R plus the keys created minus those removed
// since. ok is false, with no error, when the watch could not tell (an
// older member, no answer within watchWait, the watch refused): the
// caller reads the range instead. A compacted R is cli.ErrStoreCompacted.
func (s *store) watchChanges(ctx context.Context, k cli.StoreMark, d *cli.StoreDelta) (ok bool, err error) {
	wctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), s.watchWait)
	defer cancel()
	if s.beforeWatch != nil {
		s.beforeWatch()
	}
	wc := s.c.Watch(wctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(k.Revision+1), clientv3.WithCreatedNotify())
	var member uint64
	select {
	case resp, open := <-wc:
		if !open || !resp.Created {
			return false, compactedOnly(resp.Err())
		}
		member = resp.Header.MemberId
	case <-wctx.Done():
		return false, nil
	}
	if !s.progressAfterSync(wctx, member) {
		return false, nil
	}
	if k.Top != k.Revision || k.Witness.Name == "" {
		// The witness, read at R by ChangesSince, vouches for the
		// history up to R only when it was written at R itself (the
		// mirror's own last transaction, typically): else the count.
		if err := s.countAtMark(ctx, k); err != nil {
			return false, err
		}
	}
	events := watchEvents{count: k.Count, last: map[string]*clientv3.Event{}, existed: map[string]bool{}}
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	if s.beforeProgress != nil {
		s.beforeProgress()
	}
	if err := s.c.RequestProgress(wctx); err != nil {
		return false, nil
	}
	for {
		select {
		case resp, open := <-wc:
			if !open || resp.Err() != nil {
				return false, compactedOnly(resp.Err())
			}
			if resp.Header.MemberId != member {
				// clientv3 resumed the watch on another member (the
				// first one's connection lost): one whose version was
				// not asked, which may send progress before the events.
				s.movedOff++
				return false, nil
			}
			events.add(resp.Events)
			if !resp.IsProgressNotify() || resp.Header.Revision < d.Revision {
				continue
			}
			if !s.progressAfterSync(wctx, member) {
				// The member was restarted since its version was asked,
				// as an older etcd (a downgrade), and clientv3 resumed
				// the watch on it under the same member ID: this
				// notification may have come before the events.
				return false, nil
			}
			d.Revision = resp.Header.Revision
			s.deltaOf(&events, d)
			return true, nil
		case <-tick.C:
			if err := s.c.RequestProgress(wctx); err != nil {
				return false, nil
			}
		case <-wctx.Done():
			return false, nil
		}
	}
}

// countAtMark reads the prefix's count of keys at the mark's revision R:
// one other than the mark's is another history (cli.ErrStoreRewritten: a
// restore that lost a removal, say, which Top and the witness cannot
// tell), as a Source checks its list's (etcd.CountAt).
func (s *store) countAtMark(ctx context.Context, k cli.StoreMark) error {
	resp, err := s.c.Do(ctx, etcd.CountAt(s.prefix, k.Revision))
	if err != nil {
		return compacted(err)
	}
	before := resp.Get()
	switch {
	case before == nil || before.Header == nil:
		return s.noHeader("count", s.prefix+"/")
	case before.Count != k.Count:
		return cli.ErrStoreRewritten
	}
	return nil
}

// watchEvents gathers a watch's events since R: each key's last event,
// the keys in the order first seen, whether each existed at R, and the
// prefix's count of keys (the count at R to begin with).
type watchEvents struct {
	last    map[string]*clientv3.Event
	order   []string
	existed map[string]bool // at R: its first event since is not its creation
	count   int64
}

func (w *watchEvents) add(evs []*clientv3.Event) {
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		switch {
		case ev.IsCreate():
			w.count++ // counted as the counts are: every key of the range
		case ev.Type == clientv3.EventTypeDelete:
			w.count--
		}
		if w.last[key] == nil {
			w.order = append(w.order, key)
			w.existed[key] = !ev.IsCreate()
		}
		w.last[key] = ev
	}
}

// deltaOf writes the events' changes and count into d: an entry put
// since R with its last value, one removed that existed at R.
func (s *store) deltaOf(w *watchEvents, d *cli.StoreDelta) {
	d.Count = w.count
	for _, key := range w.order {
		ev := w.last[key]
		e, ok := s.entryOf(ev.Kv)
		switch {
		case !ok:
			continue // outside the layout: the stores report it
		case ev.Type == clientv3.EventTypeDelete:
			if w.existed[key] { // else made and removed since: no change
				d.Removed = append(d.Removed, e)
			}
		default:
			e.Value = ev.Kv.Value
			if e.Value == nil {
				e.Value = []byte{}
			}
			d.Put = append(d.Put, e)
		}
	}
}

// compactedOnly is cli.ErrStoreCompacted for a watch that started at a
// compacted revision, else nil: any other end of the watch leaves the
// range to be read.
func compactedOnly(err error) error {
	if errors.Is(err, rpctypes.ErrCompacted) {
		return compacted(err)
	}
	return nil
}

// progressAfterSync says whether the member serving the watch (member,
// from the watch's header) sends progress notifications only for a watch
// that has caught up: etcd 3.5.8 or later, or 3.4.25 or later (etcd issue
// 15220). Its version is asked on the client's connection, whose requests
// go to each endpoint in turn: until the answer is that member's, once
// per endpoint at most.
func (s *store) progressAfterSync(ctx context.Context, member uint64) bool {
	mc := etcdserverpb.NewMaintenanceClient(s.c.ActiveConnection())
	for range s.cfg.Endpoints {
		st, err := mc.Status(ctx, &etcdserverpb.StatusRequest{})
		if err != nil {
			return false
		}
		if s.statusOf != nil {
			s.statusOf(st)
		}
		if st.Header.GetMemberId() == member {
			return syncedProgress(st.Version)
		}
	}
	return false
}

// syncedProgress says whether etcd version v ("3.5.8") sends progress
// notifications only for watches that have caught up: 3.5.8 and later,
// 3.4.25 and later 3.4s. Anything not read as a version is not.
func syncedProgress(v string) bool {
	var major, minor, patch int
	if n, _ := fmt.Sscanf(v, "%d.%d.%d", &major, &minor, &patch); n != 3 {
		return false
	}
	switch {
	case major != 3:
		return major > 3
	case minor == 4:
		return patch >= 25
	case minor == 5:
		return patch >= 8
	}
	return minor > 5
}

// removedBetween lists the prefix's keys at revision and at until and
// returns the entries of those gone between.
func (s *store) removedBetween(ctx context.Context, revision, until int64) ([]cli.StoreEntry, error) {
	at := func(rev int64) (*clientv3.GetResponse, error) {
		r, err := s.c.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithRev(rev))
		return r, compacted(err)
	}
	then, err := at(revision)
	if err != nil {
		return nil, err
	}
	now, err := at(until)
	if err != nil {
		return nil, err
	}
	still := make(map[string]bool, len(now.Kvs))
	for _, kv := range now.Kvs {
		still[string(kv.Key)] = true
	}
	var gone []cli.StoreEntry
	for _, kv := range then.Kvs {
		if e, ok := s.entryOf(kv); ok && !still[string(kv.Key)] {
			gone = append(gone, e)
		}
	}
	return gone, nil
}

// txnOps is etcd's default --max-txn-ops: the most operations (or
// comparisons) a member takes in one transaction.
const txnOps = 128

// EntriesAt reads the entries at revision: transactions of a Get per
// entry, txnOps at most each, all pinned at revision, so that they read
// one state however many there are (a compaction in between is
// cli.ErrStoreCompacted). A member set to take fewer operations in a
// transaction refuses a batch, which is read again in halves: reads
// pinned at one revision may be split anywhere.
func (s *store) EntriesAt(ctx context.Context, revision int64, entries []cli.StoreEntry) error {
	size := txnOps
	for len(entries) > 0 {
		batch := entries[:min(size, len(entries))]
		err := s.entriesAt(ctx, revision, batch)
		if errors.Is(err, rpctypes.ErrTooManyOps) && size > 1 {
			size /= 2
			continue
		}
		if err != nil {
			return err
		}
		entries = entries[len(batch):]
	}
	return nil
}

// entriesAt reads one batch of EntriesAt in one transaction.
func (s *store) entriesAt(ctx context.Context, revision int64, batch []cli.StoreEntry) error {
	var ops []clientv3.Op
	for _, e := range batch {
		ops = append(ops, clientv3.OpGet(s.prefix+"/"+e.Kind+"/"+e.Name, clientv3.WithRev(revision)))
	}
	var resp *clientv3.TxnResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Txn(ctx).Then(ops...).Commit()
		return compacted(err)
	})
	if err != nil {
		return err
	}
	for i, r := range resp.Responses {
		batch[i].Value, batch[i].Revision = nil, 0
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			batch[i].Value, batch[i].Revision = kvs[0].Value, kvs[0].ModRevision
			if batch[i].Value == nil {
				batch[i].Value = []byte{}
			}
		}
	}
	return nil
}

// ListAt reads the prefix at revision.
func (s *store) ListAt(ctx context.Context, revision int64) ([]cli.StoreEntry, error) {
	var resp *clientv3.GetResponse
	err := s.call(ctx, func(ctx context.Context) (err error) {
		resp, err = s.c.Get(ctx, s.prefix+"/", clientv3.WithPrefix(), clientv3.WithRev(revision))
		return compacted(err)
	})
	if err != nil {
		return nil, err
	}
	var out []cli.StoreEntry
	for _, kv := range resp.Kvs {
		if e, ok := s.entryOf(kv); ok {
			e.Value = kv.Value
			out = append(out, e)
		}
	}
	return out, nil
}

// Follow opens an etcd.Source on the prefix, with its cache in the home,
// and waits up to the dial timeout for its first list (the cache, if
// sound, is used meanwhile and after: the stores refuse every key while
// there is no view).
func (s *store) Follow(ctx context.Context, o cli.FollowOptions) (cli.Follower, error) {
	cache := s.flags.cache
	if cache == "" {
		sum := sha256.Sum256([]byte(s.where))
		name := strings.Trim(strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
				return r
			}
			return '_'
		}, s.prefix), "_")
		cache = filepath.Join(o.Home, "etcd-cache", name+"-"+hex.EncodeToString(sum[:4])+".json")
	}
	src, err := etcd.Open(ctx, etcd.Options{Client: s.c, Prefix: s.prefix, Cache: cache, Top: o.Home, MaxStaleness: s.flags.maxStaleness, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	select {
	case <-src.Ready():
	case <-time.After(s.flags.dialTimeout):
		if o.Logger != nil {
			o.Logger.Warn("etcd not reached yet: using the cache if it is sound, else refusing every key until etcd answers", "store", s.where, "cache", cache)
		}
	case <-ctx.Done():
	}
	return follower{src}, nil
}

// follower is the live view of an etcd prefix; its metrics go to keytool
// proxy --metrics-listen.
type follower struct{ src *etcd.Source }

var _ cli.MeteredFollower = follower{}

func (f follower) Close() error { return f.src.Close() }

func (f follower) Feed(kind string) keydir.Feed {
	switch kind {
	case cli.StoreAuthorized:
		return f.src.Feed(etcd.Authorized)
	case cli.StoreRevoked:
		return f.src.Feed(etcd.Revoked)
	}
	return f.src.Feed(etcd.TrustedHosts)
}

// Collector is the Source's metrics (keytool_etcd_staleness_seconds…),
// served by keytool proxy --metrics-listen (cli.MeteredFollower).
func (f follower) Collector() prometheus.Collector { return f.src.Collector() }
