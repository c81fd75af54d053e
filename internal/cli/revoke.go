package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/spf13/pflag"
)

// revokeCommand makes the revoke command, with flag variables of its own.
func revokeCommand() *command {
	var (
		list   bool
		lf     listFlags
		remove []string
		flags  *pflag.FlagSet
	)
	return &command{
		name:       "revoke",
		uses:       globalHome | globalStore,
		storeEdits: true,
		args:       "FILE|FINGERPRINT  ·  --list [--json|--long|--full] | --remove FINGERPRINT|NAME...",
		summary:    "refuse a key everywhere, client and server side (revoked_keys.d)",
		help: `Adds a key to HOME/revoked_keys.d/KEYID.json (mode 0644). A revoked key is
refused whatever else authorizes or pins it: by servers (authorize) and by
clients (trust-host) reading this home, including running 'keytool proxy'
processes, which pick the change up without a restart.

The argument is a key FILE (- for standard input; every key in it is
revoked, a private key's public half only), or the FINGERPRINT of a key this
home knows — an authorized client key or a trusted host key — in any form:
SHA256:…, key ID (ABCD:EFGH:…), sha256//…, hex or RFC 7638 thumbprint. To
revoke a key the home has never seen, give its file. Revoking a key twice
changes nothing. The entries that authorize or pin the key are left in
place (they no longer grant anything); remove them with
'keytool authorize --remove' or 'keytool trust-host --remove'.

--list prints FINGERPRINT (short), COMMENT and what the key was (the names
it is authorized as, the addresses it is pinned for) of every revoked key,
in 80 columns; -l/--long adds KEY ID and FILE, --full the whole
fingerprints (--json: an array of objects with fingerprint, key_id,
comment, status and file).
--remove lifts the revocation of the key with that fingerprint, or of the
key authorized under NAME (WAS in --list) if one revoked key was; if
several were, it lifts none and lists their fingerprints. Repeat --remove
for several: each is lifted in turn, and one not found (or failing) is
said and the next lifted all the same (exit 1; 2 if one is a fingerprint
cut short, as tables print them; with --store, where a command that
fails writes nothing, none is).

Revoking the home's own identity, or its next key, is done with a warning
on standard error: the home still presents the key, and its peers do not
read this revocation.` + storeEditHelp,
		flags: func(set *pflag.FlagSet, _ *cli) {
			flags = set
			set.BoolVar(&list, "list", false, "list the revoked keys")
			lf.register(set, "with --list: ")
			set.StringArrayVar(&remove, "remove", nil, "lift the revocation of the key with `FINGERPRINT`, or of the one authorized as NAME (repeat for several)")
		},
		run: func(c *cli, args []string) error {
			removing := flags.Changed("remove")
			if done, err := listOrRemove(list, lf, removing, len(args) > 0, c.listRevoked, func() error { return c.unrevoke(remove) }); done {
				return err
			}
			switch len(args) {
			case 0:
				return usagef("which key? give a key FILE (- for standard input) or a FINGERPRINT")
			case 1:
				return c.revoke(args[0])
			default:
				return usagef("revoke takes one FILE or FINGERPRINT")
			}
		},
	}
}

func (c *cli) revoke(arg string) error {
	var (
		keys []*jwk.Key
		err  error
	)
	_, statErr := os.Stat(arg)
	fp, fpErr := jwk.ParseFingerprint(arg)
	fromFile := arg == "-" || statErr == nil || fpErr != nil
	if fromFile {
		if keys, err = c.readKeysAnyUse(arg); err != nil {
			if hint := c.shortenedHint(arg, "list"); hint != "" && errors.Is(err, fs.ErrNotExist) {
				return errors.New(hint)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("%s: no such file, and not a key fingerprint (SHA256:…, a key ID, sha256//… or hex)", arg)
			}
			return err
		}
	}
	// What was given is read and checked first; then the home, before
	// any store opens in it (the admin index's directory is made there).
	if err := c.homeToWrite(); err != nil {
		return err
	}
	// Only the files that hold these keys are read (the admin index).
	var sums [][32]byte
	for _, k := range keys {
		sums = append(sums, k.SPKIHash())
	}
	var fps []jwk.Fingerprint
	if !fromFile {
		fps = []jwk.Fingerprint{fp}
	}
	store, finish := c.adminAuthStore(authkeys.Lookups{Keys: sums, Fingerprints: fps})
	defer finish()
	hosts, finishHosts := knownhosts.LoadFor(knownhosts.HomeOptions(c.home), knownhosts.Lookups{Keys: sums, Fingerprints: fps})
	defer finishHosts()
	if !fromFile {
		if keys = c.knownKeys(fp, store, hosts); len(keys) == 0 {
			// A file the stores skip (its mode, a parse error) is not read:
			// the key may be in one. Say which, before the error, as list
			// does: "not seen" alone sent the admin looking elsewhere.
			skipped := c.withoutStandIns(store.Problems())
			reportSkipped(c, "revoke", skipped)
			hostsSkipped := c.withoutStandIns(hosts.Problems())
			reportSkipped(c, "revoke", hostsSkipped)
			if n := len(skipped) + len(hostsSkipped); n > 0 {
				files, fix := skippedFiles(n)
				return fmt.Errorf("no authorized key or trusted host that %s reads has the fingerprint %s, and %s (above) may hold it: %s and run this again, or give the key's public key file: keytool%s revoke FILE",
					c.home, arg, files, fix, c.homeFlag())
			}
			return fmt.Errorf("no authorized key or trusted host in %s has the fingerprint %s; to revoke a key this home has not seen, give its public key file: keytool%s revoke FILE",
				c.home, arg, c.homeFlag())
		}
	}
	// On a store, a key said revoked is one the store got: a command
	// that fails writes nothing back, the others' lines are not said
	// (found by review: a revocation whose directory could not be synced
	// was said "Revoked", and the store had nothing).
	return c.saidOnlyIfWritten("revoke", func() error { return c.revokeKeys(keys, store, hosts) })
}

// revokeKeys revokes keys, all in one write (authkeys.Store.RevokeAll),
// and says for each what it was: already revoked, or revoked, with the
// entries and pins that held it. What it looks up is gathered once, by
// key: a file of 20,000 keys to revoke searched every revocation, entry
// and pin for each.
func (c *cli) revokeKeys(keys []*jwk.Key, store *authkeys.Store, hosts *knownhosts.Store) error {
	already := map[[32]byte][]*authkeys.Entry{}
	for _, r := range store.Revoked() {
		already[r.SPKIHash] = append(already[r.SPKIHash], r)
	}
	var revoke []*jwk.Key
	queued := map[[32]byte]bool{}
	for _, k := range keys {
		if sum := k.SPKIHash(); already[sum] == nil && !queued[sum] {
			queued[sum] = true
			revoke = append(revoke, k)
		}
	}
	var revs []authkeys.Revocation
	if len(revoke) > 0 {
		var err error
		if revs, err = store.RevokeAll(revoke); err != nil {
			return err
		}
	}
	held := map[[32]byte]string{} // the file of each key revoked now
	failed := map[[32]byte]error{}
	unsynced := map[[32]byte]error{} // revoked, its file's directory not synced
	for i, r := range revs {
		switch sum := revoke[i].SPKIHash(); {
		case r.File != "":
			held[sum], unsynced[sum] = r.File, r.Err
		case r.Err != nil:
			failed[sum] = r.Err
		}
	}
	authorized := map[[32]byte][]*authkeys.Entry{}
	for e := range store.All() {
		if _, ok := held[e.SPKIHash]; ok {
			authorized[e.SPKIHash] = append(authorized[e.SPKIHash], e)
		}
	}
	pinned := map[[32]byte][]*knownhosts.Entry{}
	for _, e := range hosts.Entries() {
		if _, ok := held[e.SPKIHash]; ok {
			pinned[e.SPKIHash] = append(pinned[e.SPKIHash], e)
		}
	}
	// In the order of keys, as when each was revoked in turn: a key
	// given twice is already revoked the second time. Each key not
	// revoked is said, after the others (exit 1).
	said := map[[32]byte]bool{}
	var errs []error
	var own []ownKey // read at the first key revoked now
	for _, k := range keys {
		sum := k.SPKIHash()
		file := held[sum]
		switch {
		case already[sum] != nil:
			for _, r := range already[sum] {
				fmt.Fprintf(c.stdout, "Key %s is already revoked (%s)\n", r.Fingerprint, c.homePath(r.File))
			}
		case failed[sum] != nil:
			if !said[sum] {
				said[sum] = true
				errs = append(errs, fmt.Errorf("%s not revoked: %w", k.Fingerprint(), failed[sum]))
			}
		case said[sum]:
			fmt.Fprintf(c.stdout, "Key %s is already revoked (%s)\n", k.Fingerprint(), c.homePath(file))
		default:
			said[sum] = true
			fmt.Fprintf(c.stdout, "Revoked %s (key ID %s)\nFile: %s\n", k.Fingerprint(), k.KeyID(), c.homePath(file))
			if own == nil {
				own = c.ownKeys()
			}
			c.warnOwnKey(k, own)
			for _, e := range authorized[sum] {
				fmt.Fprintf(c.stdout, "  was authorized as %q (%s): now refused\n", e.Name, c.homePath(e.File))
			}
			for _, e := range pinned[sum] {
				fmt.Fprintf(c.stdout, "  was trusted for %s (%s): now refused\n", pinnedFor(e), c.homePath(e.File))
			}
			if unsynced[sum] != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.Fingerprint(), unsynced[sum]))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return c.sayEach("revoke", errs)
}

// ownKey is one of the home's own keys, as warnOwnKey compares it: read
// once for a command, where each key revoked read them again (ten files
// opened a key: 50,000 opens for a file of 5,000 keys to revoke).
type ownKey struct {
	key  *jwk.Key
	file string
	what string
}

// ownKeys reads the home's own keys: its identity and its next key (gen
// --next), private halves and public ones, each file's first key, those
// that read.
func (c *cli) ownKeys() []ownKey {
	own := []ownKey{} // not nil where the home has none: read once all the same
	for _, o := range []struct {
		files []string
		what  string
	}{
		{append(c.layout().Identity(), c.layout().Public()...), "identity"},
		{append(c.layout().Next(), c.layout().NextPublic()...), "next key (keytool gen --next)"},
	} {
		for _, f := range o.files {
			if keys, err := jwk.ReadPublicKeys(f); err == nil && len(keys) > 0 {
				own = append(own, ownKey{keys[0], f, o.what})
			}
		}
	}
	return own
}

// warnOwnKey warns when the key just revoked is one of own, the home's
// own identity or its next key (gen --next), as ssh-keygen -R would
// surprise: revoking it is rarely meant — the home goes on presenting
// it, and its peers do not read this home's revocations — and a
// compromised key is replaced, then revoked where it is trusted. Not
// refused: revoking one's own key after replacing it elsewhere is
// legitimate, and revoke has no --force.
func (c *cli) warnOwnKey(k *jwk.Key, own []ownKey) {
	for _, o := range own {
		if !o.key.Equal(k) {
			continue
		}
		fmt.Fprintf(c.stderr, "keytool revoke: warning: %s is this home's own %s (%s): this home now refuses it from peers, but still presents it, and its peers do not read this revocation. "+
			"If the key is compromised, replace it (%s) and revoke it on the hosts that trust it; to undo this: %s\n",
			k.Fingerprint(), o.what, o.file, c.command("gen", "--force"), c.command("revoke", "--remove", k.Fingerprint()))
		return
	}
}

// knownKeys returns the keys among the home's authorized keys and trusted
// hosts that fp names — found by the stores' one matcher, every
// fingerprint form included — read from the files that hold them.
func (c *cli) knownKeys(fp jwk.Fingerprint, auth *authkeys.Store, hosts *knownhosts.Store) []*jwk.Key {
	want := map[[32]byte]bool{}
	var files []string
	for _, e := range auth.FindKeys(fp, false) {
		want[e.SPKIHash] = true
		files = append(files, e.File)
	}
	for _, e := range hosts.FindKeys(fp) {
		want[e.SPKIHash] = true
		files = append(files, e.File)
	}
	var out []*jwk.Key
	seen := map[[32]byte]bool{}
	for _, file := range files {
		keys, err := jwk.ReadPublicKeys(file)
		if err != nil {
			continue // changed since it was loaded
		}
		for _, k := range keys {
			if sum := k.SPKIHash(); want[sum] && !seen[sum] {
				seen[sum] = true
				out = append(out, k)
			}
		}
	}
	return out
}

// revokedInfo is one key in revoke --list --json: a stable interface.
type revokedInfo struct {
	Fingerprint string `json:"fingerprint"`
	KeyID       string `json:"key_id"`
	Comment     string `json:"comment"`
	Status      string `json:"status"` // always "revoked"
	File        string `json:"file"`
}

// revokedTable is the listing of the revoked keys, for revoke --list and
// keytool list. WAS names the authorized entries and pins the key had:
// they stay in place and grant nothing.
func revokedTable(store *authkeys.Store, hosts *knownhosts.Store, lf listFlags, file func(string) string) (jsonSeq[revokedInfo], *table) {
	revoked := store.Revoked()
	// WAS: the names the revoked keys held. Only theirs are kept: a map
	// of every authorized key's names was most of revoke --list's memory
	// in a home of many keys and few revocations.
	was := make(map[[32]byte][]string, len(revoked))
	for _, r := range revoked {
		was[r.SPKIHash] = nil
	}
	for e := range store.All() {
		if names, ok := was[e.SPKIHash]; ok {
			was[e.SPKIHash] = append(names, printable(e.Name))
		}
	}
	for _, e := range hosts.Entries() {
		if names, ok := was[e.SPKIHash]; ok {
			was[e.SPKIHash] = append(names, printable(pinnedFor(e)))
		}
	}
	t := newTable(column{title: "FINGERPRINT"}, column{title: "COMMENT", elastic: true}, column{title: "WAS", elastic: true})
	if lf.long {
		t.cols = append(t.cols, column{title: "KEY ID"}, column{title: "FILE", elastic: true, fromLeft: true})
	}
	info := func(r *authkeys.Entry) revokedInfo {
		return revokedInfo{Fingerprint: r.Fingerprint, KeyID: jwk.FormatKeyID(r.SPKIHash), Comment: r.Comment, Status: "revoked", File: r.File}
	}
	t.each = eachOf(slices.Values(revoked), func(r *authkeys.Entry) []string {
		in := info(r)
		row := []string{lf.fingerprint(in.Fingerprint), printable(in.Comment), printable(strings.Join(was[r.SPKIHash], ","))}
		if lf.long {
			row = append(row, in.KeyID, printable(file(in.File)))
		}
		return row
	})
	return jsonSeq[revokedInfo](eachOf(slices.Values(revoked), info)), t
}

func (c *cli) listRevoked(lf listFlags) error {
	store := c.localAuthStore()
	reportSkipped(c, "revoke", c.withoutStandIns(store.Problems()))
	reportSkipped(c, "revoke", c.unheldEntries(StoreRevoked))
	infos, t := revokedTable(store, knownhosts.Load(knownhosts.HomeOptions(c.home)), lf, c.underHome)
	return c.printList(lf, infos, t, fmt.Sprintf("No revoked keys in %s", c.layout().RevokedDir()))
}

// unrevoke lifts the revocations of --remove, repeated or not, and says
// each: what it lifted, in order, then the errors (sayEach). Each arg is
// a fingerprint, or the name its key was authorized as (revoke --list's
// WAS) when one revoked key had it. Fingerprints in a row are lifted on
// one load (authkeys.Store.UnrevokeAll: one rewrite of each file); a
// name is looked up once those before it are lifted, as in commands one
// after the other: a name two revoked keys had names one once the other
// is lifted (found by review).
func (c *cli) unrevoke(args []string) error {
	if slices.Contains(args, "") {
		return usagef("--remove needs a FINGERPRINT or a NAME")
	}
	return c.saidOnlyIfWritten("revoke", func() error {
		errs := make([]error, len(args))
		var queued []int // the args of fps, not lifted yet
		var fps []string
		for i, arg := range args {
			if _, err := jwk.ParseFingerprint(arg); err != nil && len(queued) > 0 {
				c.lift(fps, queued, errs)
				queued, fps = nil, nil
			}
			fp, err := c.revocationOf(arg)
			if errs[i] = err; fp != "" {
				queued, fps = append(queued, i), append(fps, fp)
			}
		}
		if len(queued) > 0 {
			c.lift(fps, queued, errs)
		}
		return c.sayEach("revoke", errs)
	})
}

// lift lifts the revocations of fps, the fingerprints of args at, on one
// load, says what it lifted, and sets their errors.
func (c *cli) lift(fps []string, at []int, errs []error) {
	var l authkeys.Lookups
	for _, fp := range fps {
		f, _ := jwk.ParseFingerprint(fp)
		l.Fingerprints = append(l.Fingerprints, f)
	}
	store, finish := c.adminAuthStore(l)
	defer finish()
	defer reportUnlocked(c, "revoke", store)
	// What was lifted is said even where a later copy could not be
	// (UnrevokeAll returns it with the error).
	for k, r := range store.UnrevokeAll(fps) {
		for _, e := range r.Removed {
			what := "deleted"
			if _, err := os.Lstat(e.File); err == nil {
				what = "rewritten without it"
			}
			fmt.Fprintf(c.stdout, "Lifted the revocation of %s (%s %s)\n", e.Fingerprint, c.homePath(e.File), what)
		}
		errs[at[k]] = r.Err
	}
}

// revocationOf returns the fingerprint of the revoked key arg names: arg
// itself, or the key authorized under the name arg if one revoked key
// was; "" and no error where arg is an entry of the store the copy does
// not hold, which it removes from the store (removeUnheld).
func (c *cli) revocationOf(arg string) (string, error) {
	// On a store, the entry of that name the copy does not hold (over the
	// bound: no key of it is read, and it refuses every key) is named by
	// its name.
	if unheld, err := c.removeUnheld(StoreRevoked, arg); unheld || err != nil {
		return "", err
	}
	if _, err := jwk.ParseFingerprint(arg); err == nil {
		return arg, nil
	}
	if hint := c.shortenedHint(arg, "revoke", "--list"); hint != "" {
		return "", &usageError{"--remove: " + hint}
	}
	fps := c.revokedNamed(arg)
	if len(fps) != 1 {
		return "", c.revokedNameError(arg, fps)
	}
	return fps[0], nil
}

// revokedNamed returns the fingerprints of the revoked keys that an
// authorized entry named name holds (the entries stay when a key is
// revoked: revoke --list shows their names under WAS), each once, in
// file order. It reads the files the admin index names for name and for
// their keys, and the whole home only when those say nothing.
func (c *cli) revokedNamed(name string) []string {
	store, finish := c.adminAuthStore(authkeys.Lookups{Names: []string{name}})
	defer finish()
	named := func() map[[32]byte]bool {
		keys := map[[32]byte]bool{}
		for e := range store.All() {
			if e.Name == name {
				keys[e.SPKIHash] = true
			}
		}
		return keys
	}
	keys := named()
	if len(keys) == 0 && store.Loader().Widen() {
		keys = named()
	}
	if len(keys) == 0 {
		return nil
	}
	var q keydir.Query
	for sum := range keys {
		q.Terms = append(q.Terms, keydir.KeyTerm(sum))
	}
	store.Loader().Extend(q)
	revoked := func() []string {
		var fps []string
		for _, r := range store.Revoked() {
			if keys[r.SPKIHash] && !slices.Contains(fps, r.Fingerprint) {
				fps = append(fps, r.Fingerprint)
			}
		}
		return fps
	}
	fps := revoked()
	if len(fps) == 0 && store.Loader().Widen() {
		fps = revoked()
	}
	return fps
}

// revokedNameError is revoke --remove's error for a name given instead
// of a fingerprint that no revoked key had, or several (fps), with the
// commands to run instead.
func (c *cli) revokedNameError(name string, fps []string) error {
	if len(fps) == 0 {
		return fmt.Errorf("--remove: no revoked key was authorized as %q, and %q is not a key fingerprint (SHA256:…, a key ID, sha256//… or hex)\nList the revoked keys with: %s",
			name, name, c.command("revoke", "--list"))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--remove: %d revoked keys were authorized as %q: give the fingerprint of the one whose revocation to lift", len(fps), name)
	for _, fp := range fps {
		b.WriteString("\n  " + c.command("revoke", "--remove", fp))
	}
	return errors.New(b.String())
}
