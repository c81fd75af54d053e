package cli

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/jwk"
	"github.com/spf13/pflag"
)

// authorizeCommand makes the authorize command, with flag variables of its own.
func authorizeCommand() *command {
	var (
		o      authorizeOptions
		list   bool
		lf     listFlags
		remove []string
		accept string
		refuse string // --no-accept-rotation
		flags  *pflag.FlagSet
	)
	return &command{
		name:       "authorize",
		uses:       globalHome | globalStore,
		storeEdits: true,
		args:       "[--name N] [--comment C] [--expires T] [--from CIDRS] [--force] FILE|-  ·  --list [--json|--long|--full] | --remove NAME|FINGERPRINT... | --[no-]accept-rotation NAME",
		summary:    "let a client's key connect in (authorized_keys.d)",
		help: `Reads a client's public key from FILE (- for standard input) in any format
keytool knows — JWK, JWK Set, PEM, an OpenSSH public key line — and stores it
as HOME/authorized_keys.d/NAME.json, mode 0644. Of the file's attributes
the entry keeps those that describe the key or only narrow where and when
it is let in (comment, name, expires, from); the rest is the admin's to
give — "accept_rotation" only by --accept-rotation — and is left out, with
a warning. If FILE holds a private key, only its public half is stored
(with a warning); a file holding several keys is refused: give each client
its own file.

The name is --name, else the key's "name" attribute, else its comment, else
the file's name without extension (alice.pub, pub_alice.json → alice), made
safe for a file name; the name chosen is printed. When none of these gives a
name (standard input, pub_key.json, id_ed25519.pub…), --name is required.

  --comment C     set the key's comment ("" removes it)
  --expires T     refuse the key after T: an RFC 3339 time
                  (2030-01-31T00:00:00Z) or a duration from now: 30d, 12h,
                  2w, 90m, 1h30m (d = 24h, w = 7d)
  --from CIDRS    accept the key only from these networks or addresses,
                  comma-separated: 10.0.0.0/8,192.168.1.7,2001:db8::/32
  --force         replace the key already stored under NAME; or, if the key
                  is authorized under another name, move it to NAME

A name that already holds another key is refused (exit 1) unless --force.
A name is one client's identity, which servers hand on (logs, the proxy's
X-Keytool-Name): a name another file gives another key (its "name" member,
a member of a JWK Set) is refused even with --force, naming that file;
see it with --list --long, and remove it first (--remove NAME).
A key already authorized under another name is not added twice: keytool
warns and changes nothing (exit 0), because only the first entry of a key
takes effect; --force moves it. Adding the same key under the same name
again changes nothing; --force rewrites it with the attributes given.
A revoked key cannot be authorized: 'keytool revoke --remove' it first.

--list prints NAME, FINGERPRINT (short), STATUS (ok, expired, revoked, or
refused when a revocation list cannot be read), FROM and EXPIRES of every
authorized key, and ROTATION (accepts, or -) when an entry accepts
rotation, in 80 columns; -l/--long adds COMMENT and FILE, --full the whole
fingerprints (--json: an array of objects with name, fingerprint, key_id,
comment, expires, from, revoked, status, accept_rotation and file); files
that were skipped are reported on standard error. --remove deletes the
keys with that name, or the key with that fingerprint (SHA256:…, key ID,
sha256//…, hex) wherever it is authorized; a file left with no key is
deleted. Repeat --remove for several: each is removed in turn, and one
not found (or failing) is said and the next removed all the same (exit 1;
with --store, where a command that fails writes nothing, none is).

--accept-rotation NAME marks the entries named NAME (opt-in, per entry):
when that client connects with a certificate announcing its next key
('keytool gen --next' on the client), the server authorizes the next key
under the same name, with the same attributes and restrictions (comment,
expires, from…), in authorized_keys.d/NAME+KEYID.json, and logs it
("authorized the next key a client announces"). The client can then run
'keytool rotate' without being refused (docs/rotation.md). Only a client
that has just proved it holds the entry's key can announce. This flag is
the only way an entry comes to accept rotation: a key file's own
"accept_rotation" is not kept.

--no-accept-rotation NAME takes it back: the entries named NAME no longer
have the next key their client announces authorized (the keys a rotation
already authorized under NAME stay: --remove them). An entry that does
not accept rotation is left as it is, and said so. This is also the way
out for an entry an earlier version wrote with the "accept_rotation" of a
client's own key file.` + storeEditHelp,
		flags: func(set *pflag.FlagSet, _ *cli) {
			flags = set
			set.StringVar(&o.name, "name", "", "store the key under `NAME` (default: from its comment or the file name)")
			set.StringVar(&o.comment, "comment", "", "set the key's comment to `C`")
			set.StringVar(&o.expires, "expires", "", "refuse the key after `T`: RFC 3339 time, or a duration like 30d or 12h")
			set.StringVar(&o.from, "from", "", "accept the key only from `CIDRS` (comma-separated networks or addresses)")
			set.BoolVar(&o.force, "force", false, "replace the key stored under NAME (in NAME.json), or move the key to NAME")
			set.BoolVar(&list, "list", false, "list the authorized keys")
			lf.register(set, "with --list: ")
			set.StringArrayVar(&remove, "remove", nil, "remove the keys named `NAME` or with that FINGERPRINT (repeat for several)")
			set.StringVar(&accept, "accept-rotation", "", "let the client of entry `NAME` rotate its key: authorize the next key it announces, under the same name and restrictions")
			set.StringVar(&refuse, "no-accept-rotation", "", "take back --accept-rotation: no longer authorize the next key the client of entry `NAME` announces")
		},
		run: func(c *cli, args []string) error {
			adding := flags.Changed("name") || flags.Changed("comment") || flags.Changed("expires") || flags.Changed("from") || o.force
			removing := flags.Changed("remove")
			if flags.Changed("accept-rotation") && flags.Changed("no-accept-rotation") {
				return usagef("--accept-rotation and --no-accept-rotation cannot be combined")
			}
			if flags.Changed("accept-rotation") {
				if adding || removing || list || len(args) > 0 {
					return usagef("--accept-rotation NAME marks an existing entry; give it alone")
				}
				return c.acceptRotation(accept)
			}
			if flags.Changed("no-accept-rotation") {
				if adding || removing || list || len(args) > 0 {
					return usagef("--no-accept-rotation NAME unmarks an existing entry; give it alone")
				}
				return c.refuseRotation(refuse)
			}
			if done, err := listOrRemove(list, lf, removing, adding || len(args) > 0, c.listAuthorized, func() error { return c.unauthorize(remove) }); done {
				return err
			}
			if err := c.oneKeyFile(args, flags, o.force); err != nil {
				return err
			}
			o.file = args[0]
			o.commentSet = flags.Changed("comment")
			o.expiresSet, o.fromSet = flags.Changed("expires"), flags.Changed("from")
			return c.authorize(o)
		},
	}
}

// oneKeyFile refuses authorize's arguments unless they are one FILE;
// NAME FILE (either order) is told to give the name with --name, the
// other flags kept.
func (c *cli) oneKeyFile(args []string, flags *pflag.FlagSet, force bool) error {
	switch len(args) {
	case 0:
		return usagef("which key? give a FILE holding the client's public key, or - for standard input")
	case 1:
		return nil
	}
	name, file, ok := nameAndFile(args)
	if len(args) != 2 || !ok || flags.Changed("name") {
		return usagef("authorize takes one FILE (each client gets its own name)")
	}
	again := []string{"authorize", "--name", shellQuote(name)}
	for _, f := range []string{"comment", "expires", "from"} {
		if flags.Changed(f) {
			again = append(again, "--"+f, shellQuote(flags.Lookup(f).Value.String()))
		}
	}
	if force {
		again = append(again, "--force")
	}
	return usagef("authorize takes one FILE; to store it under a name: %s", c.command(append(again, shellQuote(file))...))
}

// nameAndFile reads two arguments of authorize as a name and a key file,
// in either order, when exactly one of them is a file.
func nameAndFile(args []string) (name, file string, ok bool) {
	switch a, b := isFile(args[0]), isFile(args[1]); {
	case a && !b:
		return args[1], args[0], true
	case b && !a:
		return args[0], args[1], true
	}
	return "", "", false
}

// acceptRotation marks the entries named name as accepting rotation
// (authorize --accept-rotation).
func (c *cli) acceptRotation(name string) error {
	store := c.localAuthStore()
	defer reportUnlocked(c, "authorize", store)
	done, err := store.SetAcceptRotation(name, true)
	for _, e := range done {
		fmt.Fprintf(c.stdout, "%s (%s, %s) accepts rotation: the next key it announces will be authorized as %q\n", e.Name, e.Fingerprint, c.homePath(e.File), e.Name)
	}
	return c.noEntryNamed(name, err)
}

// noEntryNamed is err, from marking the entries named name (nil when
// they all were), as advice when it is that there is no such entry
// (*authkeys.NotFoundError).
func (c *cli) noEntryNamed(name string, err error) error {
	var nf *authkeys.NotFoundError
	if errors.As(err, &nf) {
		return fmt.Errorf("no authorized key is named %q (see: %s)", name, c.command("authorize", "--list"))
	}
	return err
}

// refuseRotation unmarks the entries named name (authorize
// --no-accept-rotation). When none of them accepts rotation it writes
// nothing, so that running it twice, or on an entry never marked, leaves
// the files as they were and says so.
func (c *cli) refuseRotation(name string) error {
	store := c.localAuthStore()
	defer reportUnlocked(c, "authorize", store)
	var named []*authkeys.Entry
	for e := range store.All() {
		if e.Name == name {
			named = append(named, e)
		}
	}
	if len(named) == 0 {
		return c.noEntryNamed(name, &authkeys.NotFoundError{Query: name})
	}
	if !slices.ContainsFunc(named, func(e *authkeys.Entry) bool { return e.AcceptRotation }) {
		for _, e := range named {
			fmt.Fprintf(c.stdout, "%s (%s, %s) does not accept rotation: nothing changed\n", e.Name, e.Fingerprint, c.homePath(e.File))
		}
		return nil
	}
	// The entries are as SetAcceptRotation read them, before it rewrote
	// them: those that did not accept rotation are rewritten unchanged in
	// meaning ("accept_rotation": false). When it fails part way, those
	// it rewrote are said before the error.
	done, err := store.SetAcceptRotation(name, false)
	for _, e := range done {
		if e.AcceptRotation {
			fmt.Fprintf(c.stdout, "%s (%s, %s) no longer accepts rotation: the next key it announces will not be authorized\n", e.Name, e.Fingerprint, c.homePath(e.File))
		} else {
			fmt.Fprintf(c.stdout, "%s (%s, %s) does not accept rotation: nothing changed\n", e.Name, e.Fingerprint, c.homePath(e.File))
		}
	}
	return c.noEntryNamed(name, err)
}

type authorizeOptions struct {
	file              string
	name, comment     string
	expires, from     string
	commentSet, force bool
	// given, even empty: --from "$NETS" with NETS unset is not "no
	// limit" but a mistake (found by review)
	expiresSet, fromSet bool
}

// localAuthStore loads the home's authorized and revoked keys once, without
// a logger: a command reports skipped files itself, as plain messages.
func (c *cli) localAuthStore() *authkeys.Store {
	return authkeys.Load(authkeys.HomeOptions(c.home))
}

// adminAuthStore is localAuthStore for a command that looks up only what
// l lists: it reads only the files the admin index names for them
// (authkeys.LoadFor), so that it takes as long with 100,000 keys as with
// one. finish records the command's changes in the index.
func (c *cli) adminAuthStore(l authkeys.Lookups) (store *authkeys.Store, finish func()) {
	return authkeys.LoadFor(authkeys.HomeOptions(c.home), l)
}

// authorize adds one client key to authorized_keys.d. Every flag is
// checked before anything is read, and nothing is written until the key,
// its name and the store all agree, so that a refused command leaves the
// store as it was.
func (c *cli) authorize(o authorizeOptions) error {
	attrs, err := parseAuthorizeFlags(o)
	if err != nil {
		return err
	}
	k, err := c.readClientKey(o.file)
	if err != nil {
		return err
	}
	// The key is read and checked first; then the home, before any store
	// opens in it (the admin index's directory is made there).
	if err := c.homeToWrite(); err != nil {
		return err
	}
	dropped := keepClientAttrs(k)
	attrs.apply(k)
	name, err := c.authorizeName(k, o)
	if err != nil {
		return err
	}
	c.sayDropped(o.file, name, dropped)
	store, finish := c.adminAuthStore(authkeys.Lookups{Keys: [][32]byte{k.SPKIHash()}, Names: []string{name}})
	defer finish()
	defer reportUnlocked(c, "authorize", store)
	// A revoked key stays refused: say so before anything else.
	var revoked *authkeys.RevokedError
	if _, err := store.LookupKey(k, netip.Addr{}); errors.As(err, &revoked) && revoked.Err == nil {
		return err
	}
	if o.force {
		return c.forceAuthorize(store, k, name)
	}
	return c.addNewAuthorization(store, k, name, o.file)
}

// authorizeAttrs are the attributes authorize's flags set on the key,
// parsed once so that a bad flag is refused before the key is read.
type authorizeAttrs struct {
	comment    string
	setComment bool // --comment was given, perhaps as "" to remove it
	expires    time.Time
	from       []string
}

// parseAuthorizeFlags checks --name, --expires and --from, in that order,
// so that a mistyped flag is a usage error (exit 2) and not a half-done
// authorization.
func parseAuthorizeFlags(o authorizeOptions) (authorizeAttrs, error) {
	a := authorizeAttrs{comment: o.comment, setComment: o.commentSet}
	if o.name != "" {
		if err := keydir.CheckName(o.name); err != nil {
			if advice := adviseName(err); advice != "" {
				return a, &usageError{"--name: " + err.Error() + "\n" + advice}
			}
			return a, &usageError{"--name: " + err.Error()}
		}
	}
	if o.expires != "" || o.expiresSet {
		t, err := parseExpiry(o.expires, time.Now())
		if err != nil {
			return a, &usageError{"--expires: " + err.Error()}
		}
		a.expires = t
	}
	if o.from != "" || o.fromSet {
		from, err := parseFrom(o.from)
		if err != nil {
			return a, &usageError{"--from: " + err.Error()}
		}
		a.from = from
	}
	return a, nil
}

// apply sets the attributes on k. Only the flags given change anything:
// the attributes the key came with are kept otherwise.
func (a authorizeAttrs) apply(k *jwk.Key) {
	if k.Attrs == nil {
		k.Attrs = jwk.Attributes{}
	}
	if a.setComment {
		if a.comment == "" {
			delete(k.Attrs, jwk.AttrComment)
		} else {
			k.Attrs.SetString(jwk.AttrComment, a.comment)
		}
	}
	if !a.expires.IsZero() {
		k.Attrs.SetString(jwk.AttrExpires, a.expires.Format(time.RFC3339))
	}
	if a.from != nil {
		k.Attrs.SetList(jwk.AttrFrom, a.from)
	}
}

// clientAttrs are the members of a client's key file that an entry keeps
// (docs/design.md, "What a client's file gives"): those that describe the
// key (comment, name; kid and the JOSE members, checked against the key
// when it was read) and those that only narrow where and when it is
// admitted (expires, from). Whatever else the file says is not kept: an
// entry's grants are the admin's, as OpenSSH's options in authorized_keys
// are (a client's id_*.pub has no place for them). accept_rotation is one
// — with it the client could have any key it names authorized as itself —,
// and so may be a member keytool does not know yet.
var clientAttrs = map[string]bool{
	jwk.AttrComment: true, jwk.AttrName: true, jwk.AttrExpires: true, jwk.AttrFrom: true,
	jwk.AttrKeyID: true, jwk.AttrUse: true, jwk.AttrKeyOps: true, jwk.AttrAlg: true,
	"x5c": true, "x5u": true, "x5t": true, "x5t#S256": true,
}

// droppedAttrs is what keepClientAttrs took out of a client's key.
type droppedAttrs struct {
	rotation bool     // "accept_rotation": true
	others   []string // the other members, by name, in order
}

// keepClientAttrs removes from k, read from a client's file, the members
// an entry does not take from it (clientAttrs), and says which.
func keepClientAttrs(k *jwk.Key) droppedAttrs {
	var d droppedAttrs
	for _, name := range slices.Sorted(maps.Keys(k.Attrs)) {
		if clientAttrs[name] {
			continue
		}
		switch raw := string(k.Attrs[name]); {
		case name != jwk.AttrAcceptRotation:
			d.others = append(d.others, strconv.Quote(name))
		case raw != "false": // true, or not a boolean: never the admin's word
			d.rotation = true
		}
		delete(k.Attrs, name)
	}
	return d
}

// sayDropped tells the admin what of file was not kept for the entry
// name: rotation loudly, with the command that grants it, since a client
// that asks for it may expect it; the other members in a note.
func (c *cli) sayDropped(file, name string, d droppedAttrs) {
	src := sourceName(file)
	if d.rotation {
		fmt.Fprintf(c.stderr, "keytool authorize: warning: %s sets %q, which is not kept: only the administrator lets a client have the next key it announces authorized; if you mean %q to rotate its key: %s\n",
			src, jwk.AttrAcceptRotation, name, c.command("authorize", "--accept-rotation", shellQuote(name)))
	}
	if len(d.others) > 0 {
		fmt.Fprintf(c.stderr, "keytool authorize: note: not kept from %s: %s (an entry takes from a client's file only its key, comment, name, expires and from)\n",
			src, listSome(d.others, maxDroppedNamed))
	}
}

// maxDroppedNamed is how many members the note names: a client's file may
// hold thousands, and the note is one line for the admin, not a copy of
// the file.
const maxDroppedNamed = 8

// listSome joins the first max of names, and says how many more there are.
func listSome(names []string, max int) string {
	if len(names) <= max {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:max], ", "), len(names)-max)
}

// sourceName names FILE in messages: "-" means nothing to a reader.
func sourceName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

// readClientKey reads the one key to authorize and returns its public
// half. Several keys are refused, since one name is for one client; a
// private key is accepted, with a warning, because refusing it would not
// undo its having been copied, and the trust store must never hold it.
func (c *cli) readClientKey(file string) (*jwk.Key, error) {
	src := sourceName(file)
	keys, err := c.readKeys(file)
	if err != nil {
		return nil, err
	}
	if len(keys) > 1 {
		var fps []string
		for _, k := range keys {
			fps = append(fps, keyLabel(k))
		}
		return nil, fmt.Errorf("%s holds %d keys (%s); authorize adds one key under one name: put each client's key in a file of its own",
			src, len(keys), strings.Join(fps, ", "))
	}
	k := keys[0]
	c.warnPrivate("authorize", src, k, "give the server `keytool pub` output instead")
	return k.PublicHalf(), nil // never a private member in the trust store
}

// warnPrivate warns that the key file src given to cmd, for the trust
// store, holds a private key: only its public half is stored, but a
// private key that travelled to another machine is no longer private.
func (c *cli) warnPrivate(cmd, src string, k *jwk.Key, instead string) {
	if k.IsPrivate() {
		fmt.Fprintf(c.stderr, "keytool %s: warning: %s holds a private key; only its public half is stored. A private key should never leave the machine it belongs to: %s.\n", cmd, src, instead)
	}
}

// authorizeName is --name, or else a name derived from the key or its
// file. A derived name is printed, since the user did not choose it and
// needs it to remove the key later; when none can be derived the user is
// asked for one rather than given a meaningless name.
func (c *cli) authorizeName(k *jwk.Key, o authorizeOptions) (string, error) {
	if o.name != "" {
		return o.name, nil
	}
	name, why := deriveName(k, o.file)
	if name == "" {
		return "", fmt.Errorf("cannot tell what to call the key %s (it has no comment and %s names no one); choose a name: keytool%s authorize --name NAME %s",
			k.Fingerprint(), sourceName(o.file), c.homeFlag(), shellQuote(o.file))
	}
	fmt.Fprintf(c.stderr, "keytool authorize: naming the key %q (%s); choose another name with --name\n", name, why)
	return name, nil
}

// authorizedFile is the file that holds the entry NAME, absolute so that
// it compares equal to the store's entries' File.
func (c *cli) authorizedFile(name string) string {
	target, _ := filepath.Abs(filepath.Join(c.layout().AuthorizedDir(), name+".json"))
	return target
}

// authorizedCopies finds where the key with SPKI hash sum is already
// authorized: same is the first entry in target (the name being
// authorized), others are its entries under other names. Both matter
// because only the first entry of a key takes effect.
func authorizedCopies(store *authkeys.Store, sum [32]byte, target string) (same *authkeys.Entry, others []*authkeys.Entry) {
	for e := range store.All() {
		if e.SPKIHash != sum {
			continue
		}
		if e.File != target {
			others = append(others, e)
		} else if same == nil {
			same = e
		}
	}
	return same, others
}

// addNewAuthorization stores k under name without --force, which changes
// no existing entry: a key already stored under name, a name held by
// another key, or a key authorized under another name are reported and
// left as they are.
func (c *cli) addNewAuthorization(store *authkeys.Store, k *jwk.Key, name, file string) error {
	target := c.authorizedFile(name)
	same, others := authorizedCopies(store, k.SPKIHash(), target)
	if same != nil {
		fmt.Fprintf(c.stdout, "Key %s is already authorized as %q in %s; nothing changed (--force rewrites it with the attributes given)\n", same.Fingerprint, same.Name, c.homePath(same.File))
		c.sayAcceptsRotation(same)
		return nil
	}
	// A name holding another key is refused before anything else is said.
	if err := c.checkNameFree(store, name, target, k.SPKIHash()); err != nil {
		return err
	}
	if len(others) > 0 {
		c.warnAuthorizedAs(others[0], name, file)
		return nil
	}
	err := c.addAuthorized(store, k, name, nil, "Authorized")
	// Another process (a keytool authorize, the enrollment server) wrote
	// the key since the load: the store checks again under the
	// directory's lock, and this is the same case as above.
	var already *authkeys.AlreadyAuthorizedError
	if errors.As(err, &already) {
		c.warnAuthorizedAs(already.Entry, name, file)
		return nil
	}
	return err
}

// warnAuthorizedAs says that authorize wrote nothing, the key being
// authorized already as e, and how to move it to name.
func (c *cli) warnAuthorizedAs(e *authkeys.Entry, name, file string) {
	fmt.Fprintf(c.stderr, "keytool authorize: warning: key %s is already authorized as %q (in %s); nothing written, since only the first entry of a key takes effect. To move it to %q: keytool%s authorize --force --name %s %s\n",
		e.Fingerprint, e.Name, termtext.Safe(e.File), name, c.homeFlag(), shellQuote(name), shellQuote(file))
}

// checkNameFree refuses a name whose file holds another key, or holds
// something that is not a key at all: without --force, authorize never
// writes over what the user may still need. It then refuses a name that
// another file gives another key (checkNameElsewhere).
func (c *cli) checkNameFree(store *authkeys.Store, name, target string, sum [32]byte) error {
	if old, err := jwk.ReadFile(target); err == nil && len(old) > 0 && old[0].SPKIHash() != sum {
		return c.nameTaken(name, target, old[0].Fingerprint())
	} else if _, serr := os.Lstat(target); err != nil && serr == nil {
		return c.nameTaken(name, target, "")
	}
	return c.checkNameElsewhere(store, name, target, sum)
}

// checkNameElsewhere refuses a name that an entry outside target holds
// with another key (a "name" member, a member of a JWK Set): the name is
// the client's identity, which servers hand on, so two keys under it
// would let one client pass for the other. --force does not take it:
// it replaces the name's own file only.
func (c *cli) checkNameElsewhere(store *authkeys.Store, name, target string, sum [32]byte) error {
	if e := store.NameHolder(name, sum, target); e != nil {
		return c.nameTaken(name, e.File, e.Fingerprint)
	}
	return nil
}

// forceAuthorize stores k under name with --force: it rewrites the key's
// entry, replaces another key held by the name, and moves the key out of
// other names, so that the key ends up authorized exactly once. The verb
// printed says which of these happened.
func (c *cli) forceAuthorize(store *authkeys.Store, k *jwk.Key, name string) error {
	target := c.authorizedFile(name)
	same, others := authorizedCopies(store, k.SPKIHash(), target)
	verb := "Authorized"
	if same != nil {
		verb = "Updated"
	}
	// The name's current holder, to say what --force replaces, and whose
	// limits the new key's entry may leave out.
	var replaced *authkeys.Entry
	if old, err := jwk.ReadFile(target); err == nil && len(old) > 0 && old[0].SPKIHash() != k.SPKIHash() {
		verb = "Replaced " + old[0].Fingerprint() + " with"
		replaced, _ = authorizedCopies(store, old[0].SPKIHash(), target)
	}
	if err := c.checkNameElsewhere(store, name, target, k.SPKIHash()); err != nil {
		return err
	}
	if len(others) > 0 {
		if err := c.moveOutOfOtherNames(store, k, target); err != nil {
			return err
		}
	}
	// The entry rewritten, else the one the name held for another key,
	// else the one the key moves out of, whose limits the new entry may
	// leave out or widen; none for a new key.
	before := same
	switch {
	case before == nil && replaced != nil:
		before = replaced
	case before == nil && len(others) > 0:
		before = others[0]
	case before == nil:
		before = &authkeys.Entry{}
	}
	return c.addAuthorized(store, k, name, before, verb)
}

// moveOutOfOtherNames takes k out of every entry first (Remove takes every
// copy), so that after the Add that follows the key is authorized exactly
// once; each name it leaves is reported.
func (c *cli) moveOutOfOtherNames(store *authkeys.Store, k *jwk.Key, target string) error {
	// What was moved out is said even where a later copy could not be
	// (Remove returns it with the error).
	removed, err := store.Remove(k.Fingerprint())
	for _, r := range removed {
		if r.File != target {
			fmt.Fprintf(c.stdout, "Moved %s out of %q (%s)\n", r.Fingerprint, r.Name, c.homePath(r.File))
		}
	}
	return err
}

// addAuthorized writes the entry and reports it. The store checks the
// name again, since another keytool may have taken it since it was
// checked here. before is the entry --force rewrites (empty when it
// writes a new one), nil without --force.
func (c *cli) addAuthorized(store *authkeys.Store, k *jwk.Key, name string, before *authkeys.Entry, verb string) error {
	mode := authkeys.AddNew
	if before != nil {
		mode = authkeys.Replace
	}
	e, err := store.Add(k, name, mode)
	var exists *authkeys.NameExistsError
	if errors.As(err, &exists) {
		return c.nameTaken(exists.Name, exists.File, exists.Fingerprint)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s %q: %s\nFile: %s\n", verb, e.Name, keyPhrase(k), c.homePath(e.File))
	if !e.Expires.IsZero() {
		fmt.Fprintf(c.stdout, "Expires: %s\n", e.Expires.UTC().Format(time.RFC3339))
	}
	if e.From != nil {
		fmt.Fprintf(c.stdout, "From: %s\n", strings.Join(prefixStrings(e.From), ", "))
	}
	c.warnRewritten(before, e)
	return nil
}

// sayAcceptsRotation says that e, an entry authorize leaves as it is,
// accepts rotation, when it does: its client may have other keys
// authorized under its name, which the admin authorizing it must know. (An
// entry authorize writes never does: only --accept-rotation marks one.)
func (c *cli) sayAcceptsRotation(e *authkeys.Entry) {
	if e.AcceptRotation {
		fmt.Fprintf(c.stdout, "Accepts rotation: the next key it announces is authorized as %q too\n", e.Name)
	}
}

// warnRewritten warns when a rewrite (--force) left out a limit the entry
// had: the attributes given replace the entry's, so a "from" or "expires"
// not given again is gone, and the key is let in more widely than before
// — which someone changing only the comment, or the expiry, did not mean.
// It notes an acceptance of rotation left out too, which only
// --accept-rotation gives (never a client's file).
func (c *cli) warnRewritten(before, after *authkeys.Entry) {
	if before == nil {
		return
	}
	if before.AcceptRotation && !after.AcceptRotation {
		fmt.Fprintf(c.stderr, "keytool authorize: note: %q no longer accepts rotation: a rewrite keeps only the attributes given (to accept it again: %s)\n",
			after.Name, c.command("authorize", "--accept-rotation", shellQuote(after.Name)))
	}
	if before.From != nil && after.From == nil {
		fmt.Fprintf(c.stderr, "keytool authorize: warning: %q may now connect from anywhere: it was limited to %s, and a rewrite keeps only the attributes given (add --from %s to keep the limit)\n",
			after.Name, strings.Join(prefixStrings(before.From), ", "), strings.Join(prefixStrings(before.From), ","))
	}
	if !before.Expires.IsZero() && after.Expires.IsZero() {
		exp := before.Expires.UTC().Format(time.RFC3339)
		fmt.Fprintf(c.stderr, "keytool authorize: warning: %q no longer expires: it did at %s, and a rewrite keeps only the attributes given (add --expires %s to keep it)\n",
			after.Name, exp, exp)
	}
	c.warnWidened(before, after)
}

// warnWidened warns when a rewrite kept a limit but made it wider: "from"
// networks the entry did not allow, or a later expiry — given by the flags,
// or by the client's own file (which authorize takes "from" and "expires"
// from when the flags do not give them), where the admin who rewrote the
// entry may not have looked (found by review).
func (c *cli) warnWidened(before, after *authkeys.Entry) {
	if before.From != nil && after.From != nil {
		if wider := widerNetworks(before.From, after.From); len(wider) > 0 {
			fmt.Fprintf(c.stderr, "keytool authorize: warning: %q may now connect from %s, outside the %s it was limited to (add --from %s to keep the limit)\n",
				after.Name, strings.Join(prefixStrings(wider), ", "), strings.Join(prefixStrings(before.From), ", "), strings.Join(prefixStrings(before.From), ","))
		}
	}
	if !before.Expires.IsZero() && after.Expires.After(before.Expires) {
		exp := before.Expires.UTC().Format(time.RFC3339)
		fmt.Fprintf(c.stderr, "keytool authorize: warning: %q now expires at %s, later than %s (add --expires %s to keep it)\n",
			after.Name, after.Expires.UTC().Format(time.RFC3339), exp, exp)
	}
}

// widerNetworks returns the networks of after that no network of before
// holds whole.
func widerNetworks(before, after []netip.Prefix) []netip.Prefix {
	var wider []netip.Prefix
	for _, a := range after {
		held := slices.ContainsFunc(before, func(b netip.Prefix) bool {
			return b.Addr().Is4() == a.Addr().Is4() && b.Bits() <= a.Bits() && b.Contains(a.Addr())
		})
		if !held {
			wider = append(wider, a)
		}
	}
	return wider
}

// nameTaken is the refusal to store a key under a name that holds
// another. In the name's own file, --force replaces it; in another file
// (a "name" member, a JWK Set) it does not, and the way out is to look at
// that entry and remove it, or choose another name.
func (c *cli) nameTaken(name, file, fingerprint string) error {
	held := ""
	if fingerprint != "" {
		held = " by key " + fingerprint
	}
	if file == c.authorizedFile(name) {
		return fmt.Errorf("the name %q is already taken%s in %s; choose another --name, replace it with --force, or remove it first: keytool%s authorize --remove %s",
			name, held, termtext.Safe(file), c.homeFlag(), shellQuote(name))
	}
	return fmt.Errorf("the name %q is already taken%s in %s (a name stands for one client); choose another --name, or see its entries with %s and remove them first: %s",
		name, held, termtext.Safe(file), c.command("authorize", "--list", "--long"), c.command("authorize", "--remove", shellQuote(name)))
}

// keyPhrase names a key in a message the way every command does: its
// type and fingerprint ("ECDSA P-256 key SHA256:…"), as OpenSSH says
// "ECDSA key fingerprint is …".
func keyPhrase(k *jwk.Key) string { return k.Algorithm() + " key " + k.Fingerprint() }

// pinnedKeyPhrase is keyPhrase for the key of fingerprint fp in file (a
// pin just written), or "key FP" when file does not hold it (any more).
func pinnedKeyPhrase(file, fp string) string {
	if keys, err := jwk.ReadPublicKeys(file); err == nil {
		for _, k := range keys {
			if k.Fingerprint() == fp {
				return keyPhrase(k)
			}
		}
	}
	return "key " + fp
}

// keyLabel names a key in a message: its fingerprint, and its comment if
// it has one.
func keyLabel(k *jwk.Key) string {
	if cm := k.Attrs.Comment(); cm != "" {
		return k.Fingerprint() + " " + strconv.Quote(cm)
	}
	return k.Fingerprint()
}

// parseExpiry reads --expires: an RFC 3339 time, or a positive duration
// from now — Go's (12h, 90m, 1h30m) or a whole number of days (30d) or
// weeks (2w). A time that has already passed is refused: it would
// authorize nothing (nor let an invitation be used). The message serves
// authorize and invite alike.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	var t time.Time
	if m := regexp.MustCompile(`^(\d{1,5})([dw])$`).FindStringSubmatch(s); m != nil {
		// In days of the calendar (UTC, where a day is 24 hours), not a
		// time.Duration: 99999w is some 1,900 years, past a Duration's
		// 292, which wrapped to a date 163 years on.
		n, _ := strconv.Atoi(m[1])
		if m[2] == "w" {
			n *= 7
		}
		t = now.UTC().AddDate(0, 0, n)
	} else if d, err := time.ParseDuration(s); err == nil {
		t = now.Add(d)
	} else if t, err = time.Parse(time.RFC3339, s); err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2030-01-31T00:00:00Z) nor a duration (30d, 2w, 12h, 90m)", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("%s is not in the future: it would have expired already", t.UTC().Format(time.RFC3339))
	}
	return t.UTC().Truncate(time.Second), nil
}

// parseFrom reads --from: comma-separated networks or addresses, returned
// in normal form (an address alone stays an address).
func parseFrom(s string) ([]string, error) {
	var list []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			list = append(list, f)
		}
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("%q lists no network", s)
	}
	prefixes, err := jwk.ParsePrefixes(list)
	if err != nil {
		var ae *jwk.AttrError
		if errors.As(err, &ae) {
			err = ae.Err
		}
		return nil, err
	}
	return prefixStrings(prefixes), nil
}

func prefixStrings(prefixes []netip.Prefix) []string {
	out := make([]string, len(prefixes))
	for i, p := range prefixes {
		if p.IsSingleIP() {
			out[i] = p.Addr().String()
		} else {
			out[i] = p.String()
		}
	}
	return out
}

// genericKeyNames are file names that say nothing about whose key it is.
var genericKeyNames = map[string]bool{
	"": true, "key": true, "pub": true, "public": true, "pubkey": true, "public_key": true,
	"pub_key": true, "id_rsa": true, "id_ecdsa": true, "id_ed25519": true, "id_dsa": true,
	"id_ecdsa_sk": true, "id_ed25519_sk": true, "authorized_keys": true, "cert": true, "client": true,
}

// deriveName picks an entry name when --name is not given: the key's
// "name" attribute, its comment, or the file's name without extensions
// and without gen's "pub_" prefix. It returns "" when nothing fits, and
// says where the name came from.
func deriveName(k *jwk.Key, file string) (name, why string) {
	if n, _ := k.Attrs.String(jwk.AttrName); sanitizeName(n) != "" {
		return sanitizeName(n), "from the key's name attribute"
	}
	if n := sanitizeName(k.Attrs.Comment()); n != "" {
		return n, "from the key's comment"
	}
	if file == "-" {
		return "", ""
	}
	base := filepath.Base(file)
	for {
		ext := strings.ToLower(filepath.Ext(base))
		switch ext {
		case ".json", ".jwk", ".pem", ".pub", ".key", ".crt", ".txt":
			base = base[:len(base)-len(ext)]
			continue
		}
		break
	}
	if rest, ok := strings.CutPrefix(base, "pub_"); ok && rest != "" {
		base = rest
	}
	if n := sanitizeName(base); !genericKeyNames[strings.ToLower(n)] {
		return n, "from the file name " + filepath.Base(file)
	}
	return "", ""
}

// sanitizeName turns s into a safe entry name: ASCII letters, digits and
// ._@+- only, every other run of characters becoming one '-', no leading
// dot or dash, at most 64 bytes. It returns "" when nothing is left.
func sanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range s {
		if r < unicode.MaxASCII && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._@+-", r)) {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	n := strings.Trim(b.String(), "-.")
	if len(n) > 64 {
		n = strings.Trim(n[:64], "-.")
	}
	if keydir.CheckName(n) != nil {
		return ""
	}
	return n
}

// authorizedInfo is one key in authorize --list --json: a stable interface.
type authorizedInfo struct {
	Name        string   `json:"name"`
	Fingerprint string   `json:"fingerprint"`
	KeyID       string   `json:"key_id"`
	Comment     string   `json:"comment"`
	Expires     *string  `json:"expires"` // null: never
	From        []string `json:"from"`    // null: from anywhere
	Revoked     bool     `json:"revoked"` // listed in a revocation file
	Status      string   `json:"status"`  // ok, expired, revoked, refused
	// AcceptRotation: the next key the client announces is authorized
	// under its name (authorize --accept-rotation).
	AcceptRotation bool   `json:"accept_rotation"`
	File           string `json:"file"`
}

// authorizedStatus is what the store decides for e's key from no address
// in particular: a key limited by "from" is refused only from elsewhere
// (WrongNetwork), which in a list is ok — FROM shows the limit. A list
// decides every key once: DecideOnce, which keeps no Entry for a
// handshake to come.
func authorizedStatus(store *authkeys.Store, e *authkeys.Entry) string {
	d := store.DecideOnce(e.SPKIHash, netip.Addr{})
	var re *authkeys.RevokedError
	switch d.Verdict {
	case authkeys.Authorized, authkeys.WrongNetwork:
		return "ok"
	case authkeys.Revoked:
		if errors.As(d.Err, &re) && re.Err != nil {
			return "refused" // a revocation input cannot be read: everyone is
		}
	}
	return d.Verdict.String()
}

// authorizedTable is the listing of the authorized keys, for authorize
// --list and keytool list. The ROTATION column is there only when an
// entry accepts rotation, as trust-host's PURPOSE: most homes have none,
// and one that does must show which, since such an entry lets its client
// add keys under its name.
// file names an entry's file in the FILE column: under -H as given, or
// relative to the home in the overview, which names the home once.
func authorizedTable(store *authkeys.Store, lf listFlags, file func(string) string) (jsonSeq[authorizedInfo], *table) {
	revoked := map[[32]byte]bool{}
	for _, r := range store.Revoked() {
		revoked[r.SPKIHash] = true
	}
	// Each pass makes the entries again (Store.All), one at a time: a
	// million of them, with their rows, were 1.3 GB held at once.
	info := func(e *authkeys.Entry) authorizedInfo {
		in := authorizedInfo{Name: e.Name, Fingerprint: e.Fingerprint, KeyID: jwk.FormatKeyID(e.SPKIHash), Comment: e.Comment,
			Revoked: revoked[e.SPKIHash], Status: authorizedStatus(store, e), AcceptRotation: e.AcceptRotation, File: e.File}
		if !e.Expires.IsZero() {
			s := e.Expires.UTC().Format(time.RFC3339)
			in.Expires = &s
		}
		if e.From != nil {
			in.From = prefixStrings(e.From)
		}
		return in
	}
	rotation := false
	if !lf.json { // --json prints no table
		for e := range store.All() {
			if rotation = e.AcceptRotation; rotation {
				break
			}
		}
	}
	t := newTable(column{title: "NAME", elastic: true}, column{title: "FINGERPRINT"}, column{title: "STATUS"},
		column{title: "FROM", elastic: true}, column{title: "EXPIRES"})
	if rotation {
		t.cols = append(t.cols, column{title: "ROTATION"})
	}
	if lf.long {
		t.cols = append(t.cols, column{title: "COMMENT", elastic: true}, column{title: "FILE", elastic: true, fromLeft: true})
	}
	t.each = eachOf(store.All(), func(e *authkeys.Entry) []string {
		in, exp, from := info(e), "never", "any"
		if in.Expires != nil {
			exp = *in.Expires
		}
		if e.From != nil {
			from = strings.Join(in.From, ",")
		}
		row := []string{printable(in.Name), lf.fingerprint(in.Fingerprint), in.Status, from, exp}
		if rotation {
			row = append(row, rotationWord(in.AcceptRotation))
		}
		if lf.long {
			row = append(row, printable(in.Comment), printable(file(in.File)))
		}
		return row
	})
	return jsonSeq[authorizedInfo](eachOf(store.All(), info)), t
}

// rotationWord is an entry's ROTATION: "accepts" when the next key its
// client announces is authorized, else "-".
func rotationWord(accepts bool) string {
	if accepts {
		return "accepts"
	}
	return "-"
}

func (c *cli) listAuthorized(lf listFlags) error {
	store := c.localAuthStore()
	reportSkipped(c, "authorize", c.withoutStandIns(store.Problems()))
	reportSkipped(c, "authorize", c.unheldEntries(StoreAuthorized, StoreRevoked))
	revoked := store.Revoked()
	refused := map[[32]byte][]*authkeys.Entry{} // by key, the entries a revocation refuses
	for _, r := range revoked {
		refused[r.SPKIHash] = nil
	}
	for e := range store.All() { // once, not once a revocation
		if es, ok := refused[e.SPKIHash]; ok {
			refused[e.SPKIHash] = append(es, e)
		}
	}
	for _, r := range revoked {
		for _, e := range refused[r.SPKIHash] {
			fmt.Fprintf(c.stderr, "keytool authorize: note: %q (%s) is revoked (%s): it is refused\n", e.Name, e.Fingerprint, c.homePath(r.File))
		}
	}
	reportSharedNames(c, "authorize", store)
	infos, t := authorizedTable(store, lf, c.underHome)
	return c.printList(lf, infos, t,
		fmt.Sprintf("No authorized keys in %s; add one with: keytool%s authorize --name NAME FILE", c.layout().AuthorizedDir(), c.homeFlag()))
}

// reportSharedNames warns of the names that entries of several keys hold
// (authkeys.SharedNames). Each key is still authorized; the name no
// longer tells their clients apart, wherever a server hands it on.
func reportSharedNames(c *cli, cmd string, store *authkeys.Store) {
	for _, sh := range store.SharedNames() {
		fmt.Fprintf(c.stderr, "keytool %s: warning: %v; a name should stand for one client (servers hand it on: logs, X-Keytool-Name), so rename or remove all but one: %s\n",
			cmd, sh, c.command("authorize", "--remove", "FINGERPRINT"))
	}
	for _, u := range store.UnprintableNames() {
		fmt.Fprintf(c.stderr, "keytool %s: warning: %v; the key is still authorized: %s\n", cmd, u, unprintableFix(c, u))
	}
	for _, sk := range store.SharedKeys() {
		how := "remove the one not meant from its file (authorize --remove takes every entry of a name or fingerprint)"
		if fix := sharedKeyFix(c, store, sk); fix != "" {
			how = "remove the one not meant, or edit its file: " + fix
		}
		fmt.Fprintf(c.stderr, "keytool %s: warning: %v; a key should have one entry: %s\n", cmd, sk, how)
	}
}

// sharedKeyFix is the command that leaves the entry in effect of a key
// that several hold (authkeys.SharedKeys): the removal of the next by its
// name, where no other key is in effect under that name — a name given to
// --remove takes every entry it matches: another client's key in the same
// JWK Set would go too (found by review), as would the first by its
// fingerprint — else "".
func sharedKeyFix(c *cli, store *authkeys.Store, sk authkeys.SharedKey) string {
	first, inEffect := sk.Entries[0], store.Entries()
	for _, e := range sk.Entries[1:] {
		if e.Name == "" || e.Name == first.Name {
			continue
		}
		if !slices.ContainsFunc(inEffect, func(o *authkeys.Entry) bool { return o.Name == e.Name && o.SPKIHash != e.SPKIHash }) {
			return c.command("authorize", "--remove", shellQuote(e.Name))
		}
	}
	return ""
}

// unprintableFix says how to rename an entry whose name is not shown as it
// is (authkeys.UnprintableName): its file gives the name.
func unprintableFix(c *cli, u authkeys.UnprintableName) string {
	return fmt.Sprintf("rename it in %s (its \"name\" member, else its file's name), or remove it: %s",
		termtext.Safe(u.Entry.File), c.command("authorize", "--remove", u.Entry.Fingerprint))
}

// unauthorize removes the keys each of nameOrFPs names (authorize
// --remove, repeated or not) on one load of the store, proved to hold
// every copy once for all of them (authkeys.Store.RemoveAll), and says
// each: what it removed, the key still authorized under another name,
// its error (sayEach).
func (c *cli) unauthorize(nameOrFPs []string) error {
	if slices.Contains(nameOrFPs, "") {
		return usagef("--remove needs a NAME or a FINGERPRINT")
	}
	// On a store, an entry of that name the copy does not hold (over the
	// bound: no key of it is read) is removed too, or alone.
	unheld := make([]bool, len(nameOrFPs))
	var l authkeys.Lookups
	for i, q := range nameOrFPs {
		var err error
		if unheld[i], err = c.removeUnheld(StoreAuthorized, q); err != nil {
			return err
		}
		l.Names = append(l.Names, q)
		if fp, err := jwk.ParseFingerprint(q); err == nil {
			l.Fingerprints = append(l.Fingerprints, fp)
		}
	}
	store, finish := c.adminAuthStore(l)
	defer finish()
	defer reportUnlocked(c, "authorize", store)
	// Remove takes every copy of a key given by fingerprint; a name
	// removes that name's entries, and says if the key still gets in
	// under another.
	results := store.RemoveAll(nameOrFPs)
	return c.saidOnlyIfWritten("authorize", func() error {
		errs := make([]error, len(results))
		for i, r := range results {
			errs[i] = c.saidRemoval(r, unheld[i])
		}
		c.mayBeSkipped(store, errs)
		return c.sayEach("authorize", errs)
	})
}

// mayBeSkipped turns each "not found" of a removal into one that says
// the files the store skips may hold it, and names them (once, above),
// as revoke does: "no authorized key is named x" alone, where x.json was
// skipped for its mode, sent the admin in a circle — authorize --name x
// had said the name was taken, and to remove it first (found by review).
func (c *cli) mayBeSkipped(store *authkeys.Store, errs []error) {
	var skipped []keydir.Problem
	for _, p := range c.withoutStandIns(store.Problems()) {
		if !p.Revocation {
			skipped = append(skipped, p)
		}
	}
	if len(skipped) == 0 {
		return
	}
	files, fix := skippedFiles(len(skipped))
	reported := false
	for i, err := range errs {
		var nf *authkeys.NotFoundError
		if !errors.As(err, &nf) {
			continue
		}
		if !reported {
			reportSkipped(c, "authorize", skipped)
			reported = true
		}
		errs[i] = fmt.Errorf("no authorized key that %s reads is named %q or has that fingerprint, and %s (above) may hold it: %s and run this again",
			c.home, nf.Query, files, fix)
	}
}

// saidRemoval says what one removal of unauthorize did, and returns its
// error, if any, for sayEach: none when it removed the name's entries
// from the store only (unheld), or when the key is still authorized
// under another name (said here as a note).
func (c *cli) saidRemoval(r authkeys.Removal, unheld bool) error {
	var (
		still *authkeys.StillAuthorizedError
		nf    *authkeys.NotFoundError
	)
	if unheld && errors.As(r.Err, &nf) {
		return nil // not in the copy: removed from the store only
	}
	// What was removed is said even where a later step failed (the
	// copies the load held go before the proof that finds the rest).
	for _, e := range r.Removed {
		what := "deleted"
		if _, err := os.Lstat(e.File); err == nil {
			what = "rewritten without it"
		}
		fmt.Fprintf(c.stdout, "Removed %q: %s (%s %s)\n", e.Name, e.Fingerprint, c.homePath(e.File), what)
	}
	if !errors.As(r.Err, &still) {
		return r.Err
	}
	e := still.Entry
	fmt.Fprintf(c.stderr, "keytool authorize: note: key %s is still authorized as %q (%s); to remove it everywhere: %s\n",
		e.Fingerprint, e.Name, c.homePath(e.File), c.command("authorize", "--remove", e.Fingerprint))
	return nil
}
