package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// bundleCommand makes the bundle command, with flag variables of its own.
func bundleCommand() *command {
	var (
		out   string
		force bool
	)
	return &command{
		name:    "bundle",
		uses:    globalHome,
		args:    "authorized|trusted [-o FILE [--force]]",
		summary: "per-key CA bundle (PEM) of the authorized or trusted keys, for OpenSSL, curl, nginx",
		help: `Prints a PEM bundle with one CA certificate per key — the home's authorized
client keys, or its trusted host keys — on standard output, or writes it to
FILE (-o, mode 0644, replacing FILE — but never a file holding a private
key, such as the identity, without --force). Software that only knows
certificate chains then accepts a peer whose 'keytool cert' was made with
one of these keys:

  nginx    ssl_client_certificate bundle.pem; ssl_verify_client on;
  OpenSSL  openssl verify -CAfile bundle.pem peer.pem
  curl     curl --cacert bundle.pem https://host/

Revoked keys are left out, and so are authorizations that have expired.
A bundle cannot say what keytool's own trust files say besides the key:
it does not expire when an authorization does, it does not limit a key to
its "from" networks, and a trusted host key is accepted for any host and
any purpose, not only for its addresses and the purposes its pin is limited
to ("purpose"). Make the bundle again when the keys change. (A key
in a bundle also vouches for certificates it signs for other keys; see
docs/security.md.)

The number of keys in the bundle, and every file skipped, is reported on
standard error. A bundle with no key is an error (exit 1): nothing would
be accepted.`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVarP(&out, "output", "o", "", "write the bundle to `FILE` instead of standard output")
			set.BoolVar(&force, "force", false, "with -o: replace FILE even if it holds a private key")
		},
		run: func(c *cli, args []string) error {
			if len(args) != 1 || args[0] != "authorized" && args[0] != "trusted" {
				// The commands with the user's -H (and --store), as
				// every command keytool suggests for the user's home.
				return usagef("which keys? %s (client keys) or %s (host keys)", c.command("bundle", "authorized"), c.command("bundle", "trusted"))
			}
			return c.bundle(args[0], out, force)
		},
	}
}

// bundle prints or writes a CA bundle of the authorized or trusted keys.
// Keys are chosen from a store as they are written (streamBundle): each
// key the store decides to leave out is reported as it comes, each key
// chosen is read from its file and its certificate made and written, so
// that a bundle of any size takes the store's memory and that of a few
// certificates, never a list of the keys. With -o the file is replaced
// only once the whole bundle is written; on standard output a failure
// midway (a key file that changed meanwhile, a revocation list that
// cannot be read) leaves what was written before it, and the exit status
// says so.
func (c *cli) bundle(which, out string, force bool) error {
	// The revocation list decides for both kinds of keys: the
	// authorized-keys store reads the same revoked_keys files as the
	// trusted-hosts store, and refuses everything if they are unreadable.
	// For host keys it reads only them, not every authorized key.
	var sel *bundleSelection
	switch which {
	case "authorized":
		sel = c.selectAuthorized(c.localAuthStore())
	case "trusted":
		opts := authkeys.HomeOptions(c.home)
		opts.Files, opts.Dirs = nil, nil
		sel = c.selectTrusted(authkeys.Load(opts))
	}
	reportSkipped(c, "bundle", sel.problems)
	// A bundle of no key is refused, and a failure to choose (a
	// revocation list that cannot be read) returned, before FILE is
	// looked at or a temporary file made beside it: not "FILE holds a
	// private key, use --force" or "no such directory" for a home with
	// no key to bundle.
	choose, ok, stop, err := firstChosen(sel.choose)
	defer stop()
	if err != nil {
		return err
	}
	if !ok {
		return c.emptyBundle(sel)
	}
	var (
		n       int
		fillErr error // the bundle's own failure, not the output's
	)
	fill := func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		n, fillErr = streamBundle(bw, choose, sel.read)
		if fillErr == nil && n == 0 {
			fillErr = c.emptyBundle(sel) // every chosen file changed meanwhile
		}
		if fillErr != nil {
			return fillErr
		}
		return bw.Flush()
	}
	if out == "" || out == "-" {
		if err := fill(c.stdout); err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "Bundle of %d %s\n", n, bundleWhat(sel.what, n))
		return nil
	}
	if err := c.writePublicFrom(out, force, []string{"bundle", which, "-o", shellQuote(out)}, fill); err != nil {
		if err == fillErr {
			return err
		}
		return fmt.Errorf("writing the bundle: %w", err)
	}
	fmt.Fprintf(c.stderr, "Wrote a bundle of %d %s to %s\n", n, bundleWhat(sel.what, n), out)
	return nil
}

// bundleWhat is what a bundle of n keys holds, singular for one key.
func bundleWhat(what string, n int) string {
	if n == 1 {
		return strings.TrimSuffix(what, "s")
	}
	return what
}

// bundleCandidate is a key chosen for a bundle, by where it is stored:
// the stores keep fingerprints, not keys. The zero candidate, leftOut,
// chooses nothing (chooseFunc).
type bundleCandidate struct {
	file string
	sum  [32]byte
}

// leftOut is what a chooseFunc yields for a key it leaves out.
var leftOut bundleCandidate

// chooseFunc yields the keys a store chooses for a bundle, in the
// store's order, each key once however many entries hold it; it stops at
// the first error, or when yield returns false. It yields leftOut after
// each key it leaves out, so that a bundle whose writer failed stops
// there too, not after a run of keys left out, each decided and reported
// (found by review: a store ending in 100,000 expired keys).
type chooseFunc = func(yield func(bundleCandidate) bool) error

// firstChosen runs choose up to the first key it yields (or its end),
// so that a bundle of no key, or choose's error, is known before the
// bundle is given an output. rest yields that key and then the others,
// choose going on where it stopped; ok is false when choose chose none
// (err: why, if it failed). stop ends choose if rest is not run to its
// end; it may be called more than once, but not while rest runs.
func firstChosen(choose chooseFunc) (rest chooseFunc, ok bool, stop func(), err error) {
	var chooseErr error // set when choose returns: read after next says so
	next, stop := iter.Pull(func(yield func(bundleCandidate) bool) {
		chooseErr = choose(yield)
	})
	first, ok := next()
	for ok && first == leftOut {
		first, ok = next()
	}
	if !ok {
		return nil, false, stop, chooseErr
	}
	rest = func(yield func(bundleCandidate) bool) error {
		for cand, more := first, true; more; cand, more = next() {
			if !yield(cand) {
				stop()
				return nil
			}
		}
		return chooseErr
	}
	return rest, true, stop, nil
}

// bundleSelection is what one store offers a bundle: the keys it chooses
// (choose), the reader of their files, how many keys choose left out
// (counted as it runs), the files skipped, and the words that describe the
// keys (what) and how to add one (hint) in messages.
type bundleSelection struct {
	choose   chooseFunc
	read     readFunc // the store's reader of its files (keydir.Loader.ReadFile)
	skipped  int
	problems []error
	what     string
	hint     string
}

// bundleRevoked reports whether the key is revoked. An unreadable
// revocation list is an error, not a "no": a bundle made without it could
// let a revoked key in.
func bundleRevoked(auth *authkeys.Store, sum [32]byte) (bool, error) {
	return revokedIn(auth.DecideOnce(sum, netip.Addr{}))
}

// revokedIn is bundleRevoked of a decision already made.
func revokedIn(d authkeys.Decision) (bool, error) {
	var re *authkeys.RevokedError
	if d.Verdict == authkeys.Revoked && errors.As(d.Err, &re) && re.Err != nil {
		return true, fmt.Errorf("a revocation list cannot be read, so no bundle is made: %w", re.Err)
	}
	return d.Verdict == authkeys.Revoked, nil
}

// selectAuthorized chooses the authorized client keys that are neither
// revoked nor expired. The store yields each key once (Store.All: the
// entries in effect), one Entry at a time.
func (c *cli) selectAuthorized(auth *authkeys.Store) *bundleSelection {
	sel := &bundleSelection{
		read: auth.Loader().ReadFile,
		what: "authorized client keys",
		hint: fmt.Sprintf("add one with: keytool%s authorize --name NAME FILE", c.homeFlag()),
	}
	for _, p := range auth.Problems() {
		sel.problems = append(sel.problems, p)
	}
	sel.choose = func(yield func(bundleCandidate) bool) error {
		for e := range auth.All() {
			keep, err := c.keepAuthorized(auth, e)
			if err != nil {
				return err
			}
			if !keep {
				sel.skipped++
				if !yield(leftOut) {
					return nil
				}
				continue
			}
			if !yield(bundleCandidate{e.File, e.SPKIHash}) {
				return nil
			}
		}
		return nil
	}
	return sel
}

// keepAuthorized decides whether an authorized key goes into the bundle,
// and says why not. A key that is kept is warned about when its
// authorization says more than a bundle can (an expiry, "from" networks),
// since software using the bundle will accept it regardless.
func (c *cli) keepAuthorized(auth *authkeys.Store, e *authkeys.Entry) (bool, error) {
	// The store decides, as it would for a handshake; the address is not
	// known, so a key limited to "from" networks answers WrongNetwork and
	// is kept with a warning below.
	d := auth.DecideOnce(e.SPKIHash, netip.Addr{})
	rev, err := revokedIn(d)
	if err != nil {
		return false, err
	}
	var skipped *authkeys.SkippedEntryError
	switch {
	case rev:
		fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): revoked\n", e.Name, e.Fingerprint)
		return false, nil
	case errors.As(d.Err, &skipped):
		// Refused in a handshake too: the skipped entry may be the one in
		// effect, with limits this one lacks.
		fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): an entry of the key in %s was skipped, and may limit it\n", e.Name, e.Fingerprint, termtext.Safe(skipped.Problem.Path))
		return false, nil
	case d.Verdict == authkeys.Expired:
		fmt.Fprintf(c.stderr, "keytool bundle: leaving out %q (%s): expired at %s\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
		return false, nil
	case !e.Expires.IsZero():
		fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) expires at %s, but the bundle does not: make it again then\n", e.Name, e.Fingerprint, e.Expires.UTC().Format(time.RFC3339))
	}
	if e.From != nil {
		fmt.Fprintf(c.stderr, "keytool bundle: warning: %q (%s) may connect only from %s, which the bundle cannot say: software using it accepts the key from anywhere\n", e.Name, e.Fingerprint, strings.Join(prefixStrings(e.From), ", "))
	}
	return true, nil
}

// selectTrusted chooses the trusted host keys that are not revoked, each
// once however many hosts pin it. The hosts' addresses and the pins'
// purposes are dropped: a bundle cannot tie a key to a host or a use.
func (c *cli) selectTrusted(auth *authkeys.Store) *bundleSelection {
	sel := &bundleSelection{
		what: "trusted host keys",
		hint: fmt.Sprintf("pin one with: keytool%s trust-host HOST:PORT", c.homeFlag()),
	}
	hosts := knownhosts.Load(knownhosts.HomeOptions(c.home))
	sel.read = hosts.Loader().ReadFile
	for _, p := range hosts.Problems() {
		sel.problems = append(sel.problems, p)
	}
	sel.choose = func(yield func(bundleCandidate) bool) error {
		// The pins are Entries on the heap already (a client's store), so
		// a set of the keys seen costs what they do. A key left out is
		// reported for each host that loses it, and counted once.
		seen := map[[32]byte]bool{}
		for _, e := range hosts.Entries() {
			first := !seen[e.SPKIHash]
			seen[e.SPKIHash] = true
			rev, err := bundleRevoked(auth, e.SPKIHash)
			if err != nil {
				return err
			}
			if rev {
				if first {
					sel.skipped++
				}
				fmt.Fprintf(c.stderr, "keytool bundle: leaving out the key of %s (%s): revoked\n", pinnedFor(e), e.Fingerprint)
				if !yield(leftOut) {
					return nil
				}
				continue
			}
			if !first {
				continue
			}
			if !yield(bundleCandidate{e.File, e.SPKIHash}) {
				return nil
			}
		}
		return nil
	}
	return sel
}

// readFunc reads a trust file under a store's strict-modes rule
// (keydir.Loader.ReadFile).
type readFunc = func(path string) ([]byte, fs.FileInfo, error)

// bundleJob is one file's share of a bundle: the keys chosen from it, in
// the order chosen, and where its blocks go.
type bundleJob struct {
	file string
	sums [][32]byte
	done chan bundleBlocks
}

// bundleBlocks are a file's keys' entries in the bundle (PEM blocks), or
// why the file could not give them.
type bundleBlocks struct {
	blocks [][]byte
	err    error
}

// streamBundle writes to w the CA certificates of the keys choose
// yields, in the order it yields them, and returns how many it wrote.
// choose runs as the keys are written: one goroutine asks it for the keys
// and groups consecutive keys of one file into a job, one worker per CPU
// reads a job's file and makes its certificates, and the caller's
// goroutine writes them in order as they are done — only a few jobs are in
// flight at once, so memory does not grow with the bundle. choose's error
// comes after the keys it yielded before it. A chosen key missing from its
// file (changed meanwhile) is left out.
func streamBundle(w io.Writer, choose chooseFunc, read readFunc) (int, error) {
	bw := tlsbridge.NewCABundleWriter(w)
	workers := runtime.GOMAXPROCS(0)
	jobs := make(chan bundleJob)
	order := make(chan chan bundleBlocks, 4*workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() {
		defer close(jobs)
		defer close(order)
		var j bundleJob
		// send hands j to the workers, its place in order first; false
		// when the writer has stopped.
		send := func() bool {
			select {
			case <-stop: // a select of two ready cases picks either
				return false
			default:
			}
			select {
			case order <- j.done:
			case <-stop:
				return false
			}
			select {
			case jobs <- j:
				return true
			case <-stop:
				return false
			}
		}
		stopped := false
		err := choose(func(cand bundleCandidate) bool {
			select {
			case <-stop: // the writer failed: choose no more
				stopped = true
				return false
			default:
			}
			if cand == leftOut {
				return true
			}
			if j.done != nil && cand.file == j.file {
				j.sums = append(j.sums, cand.sum)
				return true
			}
			if j.done != nil && !send() {
				stopped = true
				return false
			}
			j = bundleJob{file: cand.file, sums: [][32]byte{cand.sum}, done: make(chan bundleBlocks, 1)}
			return true
		})
		if stopped || j.done != nil && !send() || err == nil {
			return
		}
		j = bundleJob{done: make(chan bundleBlocks, 1)}
		j.done <- bundleBlocks{err: err}
		select {
		case order <- j.done:
		case <-stop:
		}
	})
	for range workers {
		wg.Go(func() {
			for j := range jobs {
				j.done <- bundleFile(bw, j, read)
			}
		})
	}
	n := 0
	for done := range order {
		r := <-done
		if r.err != nil {
			return n, r.err
		}
		for _, block := range r.blocks {
			if err := bw.Write(block); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, nil
}

// bundleFile reads one file of a bundle through the trust-file rule its
// store loaded it with (read: keydir.Loader.ReadFile), and makes the
// blocks of the keys chosen from it: a file that became another user's,
// or writable by others, since the selection is refused, not bundled.
func bundleFile(bw *tlsbridge.CABundleWriter, j bundleJob, read readFunc) bundleBlocks {
	data, _, err := read(j.file)
	var ks []*jwk.Key
	if err == nil {
		ks, err = jwk.Parse(data)
		var pe *jwk.ParseError
		if errors.As(err, &pe) && pe.File == "" {
			pe.File = j.file
		}
	}
	if err != nil {
		return bundleBlocks{err: fmt.Errorf("%w (it changed while the bundle was made? run the command again)", err)}
	}
	var r bundleBlocks
	for _, sum := range j.sums {
		i := slices.IndexFunc(ks, func(k *jwk.Key) bool { return k.SPKIHash() == sum })
		if i < 0 {
			continue
		}
		block, err := bw.Block(ks[i])
		if err != nil {
			return bundleBlocks{err: err}
		}
		r.blocks = append(r.blocks, block)
	}
	return r
}

// emptyBundle is the refusal to make a bundle with no key, which would
// accept no one; it says whether keys were left out or there were none.
func (c *cli) emptyBundle(sel *bundleSelection) error {
	if sel.skipped > 0 {
		return fmt.Errorf("no key left for a bundle of %s in %s (%d left out, see above); %s", sel.what, c.home, sel.skipped, sel.hint)
	}
	return fmt.Errorf("no %s in %s, so a bundle would accept no one; %s", sel.what, c.home, sel.hint)
}
