package knownhosts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/jwk"
)

// Options say where the host keys are: the files and directories of
// pinned host keys and of revoked keys, the home whose strict modes apply,
// and how to watch. They are the same options as authkeys.Options.
//
// Its fields (documented on the type it names, internal to this module:
// go doc github.com/keytool/keytool/internal/keydir Options):
//
//	Files, Dirs                []string // pinned host keys: single files, directories
//	RevokedFiles, RevokedDirs  []string // refused keys: single files, directories
//	Feeds, RevokedFeeds        []Feed   // entries from elsewhere than files (etcd)
//	Home                       string   // the top of the trust tree, for strict modes
//	NoStrictModes              bool     // only where permissions mean nothing
//	Logger                     *slog.Logger
//	Debounce, Rescan           time.Duration
//	Index                      string   // the admin index's directory
//
// Set Logger: a trust file refused for its permissions or content is
// skipped (Problems lists it), and with no Logger nothing says so — a
// client whose file was skipped is simply not authorized.
type Options = keydir.Options

// Feed is a source of entries other than files (Options.Feeds,
// Options.RevokedFeeds): a consistent view of named key files, and a
// notification when it changes. The etcd module's Source is one.
type Feed = keydir.Feed

// FeedView is one consistent state of a Feed.
type FeedView = keydir.FeedView

// HomeOptions returns the Options for a keytool home directory:
// trusted_hosts.{json,jwk,pem} and trusted_hosts.d, with
// revoked_keys.{json,pem} and revoked_keys.d.
func HomeOptions(dir string) Options {
	h := home.Dir(dir)
	return keydir.HomeOptions(dir, h.TrustedFiles(), h.TrustedDir())
}

// Entry is one pinned host key and the addresses it is bound to.
type Entry struct {
	// Addresses are the patterns, in normal form ("!" for negation). None
	// for a key pinned without an address (AnyNamedAddress).
	Addresses   []string
	Comment     string
	File        string
	Fingerprint string
	SPKIHash    [32]byte
	// Purposes, from the "purpose" member, limit the pin to connections
	// of those purposes (DecidePurpose); none: every purpose.
	Purposes []string

	pos, neg []pattern
	exact    bool // has a positive non-wildcard pattern
	// src is the index of the entry's source (as the loader tells
	// Convert), which orders it in the index's lists (fileBefore).
	src int32
}

// AnyNamedAddress reports whether e is a key pinned without an address: a
// public key file copied as it is into a trusted-hosts directory, as in
// Docker's engine-keys proposal. It admits the key at any address its
// certificate names (see PinnedIfNamed and WithCertificate): a weaker
// guarantee than an address-bound pin, because whoever holds the key can
// make a certificate for any name.
func (e *Entry) AnyNamedAddress() bool { return len(e.Addresses) == 0 }

// Problem is a file that was skipped, and why.
type Problem = keydir.Problem

// Status sums up the store's current snapshot (Store.Status): keys,
// revoked keys, skipped files, a revocation input failing closed.
type Status = keydir.Status

// Change is what a reload changed (OnChange): the host keys pinned and
// the keys revoked that came and went, the pins and skipped files now.
type Change = keydir.Change

type snapshot struct {
	pins    pinIndex
	revoked *keydir.Revocations[*Entry] // the one revocation set, shared with authkeys' rule
	// files is the loader's snapshot the index was made of (nil before
	// the first load): the next reload's index is derived from it.
	files *keydir.Snapshot[*Entry]
	// entries lists the pins in file order, made on first use (admin
	// commands ask for it, handshakes never do): a reload that costs
	// what changed cannot make a list of every pin.
	entries func() []*Entry
	// skipped are the problems of the pin sources (not revocation ones):
	// while there are any, no address is treated as unknown.
	skipped []Problem
}

// all returns the pins in file order (do not modify).
func (sn *snapshot) all() []*Entry {
	if sn.entries == nil {
		return nil
	}
	return sn.entries()
}

// Store answers "is this the key that this address must present?" from a
// snapshot of the host key files. Its methods are safe for concurrent use;
// Close, Reload, Subscribe and Problems are the lifecycle both stores
// share.
type Store struct {
	keydir.Lifecycle[*Entry]
	opts Options
	snap atomic.Pointer[snapshot]
	// sources are the loader's sources, by index (File.Source).
	sources []keydir.Source
	// updates and rebuilds count the reloads whose index was derived
	// from the previous one, and those that built it from every file.
	updates, rebuilds atomic.Int64
}

func newStore(opts Options) *Store {
	s := &Store{opts: opts}
	s.snap.Store(&snapshot{})
	s.Lifecycle = keydir.NewLifecycle(opts, convert, entrySPKI, s.build)
	s.sources = s.Loader().Sources()
	return s
}

// Load reads the host key files once (the store's own Add and Remove are
// reflected at once, other changes are not).
func Load(opts Options) *Store {
	s := newStore(opts)
	s.Start(context.Background(), false)
	return s
}

// Open reads the host key files and keeps the store current as they
// change, until ctx is cancelled or Close is called.
func Open(ctx context.Context, opts Options) *Store {
	s := newStore(opts)
	s.Start(ctx, true)
	return s
}

// Entries returns the pinned host keys in file order.
func (s *Store) Entries() []*Entry { return slices.Clone(s.snap.Load().all()) }

// Revoked returns the revoked keys in file order.
func (s *Store) Revoked() []*Entry { return s.snap.Load().revoked.List() }

func convert(src keydir.SourceRef, path string, k *jwk.Key) (*Entry, error) {
	e := &Entry{File: path, Fingerprint: k.Fingerprint(), SPKIHash: k.SPKIHash(), Comment: k.Attrs.Comment(), src: int32(src.Index)}
	if src.Revocation {
		return e, nil
	}
	addrs, err := k.Attrs.Addresses()
	if err != nil {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrAddress, Err: err}
	}
	if e.Purposes, err = k.Attrs.List(jwk.AttrPurpose); err != nil {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrPurpose, Err: err}
	}
	if e.Purposes != nil && len(e.Purposes) == 0 {
		// An empty list would read as "every purpose": refuse it rather
		// than widen a pin someone meant to narrow.
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrPurpose, Err: errors.New("an empty list: name the purposes, or leave the member out for every purpose")}
	}
	for _, p := range e.Purposes {
		if !home.ValidName(p) {
			// The rule of a CA's purpose (ca.d/PURPOSE/): a name no
			// connection can have would leave the pin silently unused.
			return nil, &jwk.ParseError{File: path, Member: jwk.AttrPurpose, Err: fmt.Errorf("%q is not a purpose: a purpose is %s", p, home.NameRule)}
		}
	}
	if len(addrs) == 0 {
		if src.Dir {
			// A key file copied as it is into the directory (Docker's
			// proposal): pinned for any address its certificate names.
			return e, nil
		}
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrAddress, Err: errors.New(`a host key in a trusted-hosts file needs an "address" member saying where it may be seen, e.g. "address": "host.example.com:443" (only a key in a trusted-hosts directory may have none: it is then trusted where its certificate names the host)`)}
	}
	for _, a := range addrs {
		p, err := parsePattern(a)
		if err != nil {
			return nil, &jwk.ParseError{File: path, Member: jwk.AttrAddress, Err: err}
		}
		e.Addresses = append(e.Addresses, p.String())
		switch {
		case p.neg:
			e.neg = append(e.neg, p)
		default:
			e.pos = append(e.pos, p)
			e.exact = e.exact || !p.wild
		}
	}
	if len(e.pos) == 0 {
		return nil, &jwk.ParseError{File: path, Member: jwk.AttrAddress, Err: errors.New("only negated patterns: the key would match no address")}
	}
	return e, nil
}

// build publishes the index of a new loader snapshot: derived from the
// previous one when both come from this store's loader and a reload
// changed a few files (updateIndex: a reload costs what changed), else
// built from every file. Either way the index is the same, and the
// snapshots already published are never written.
func (s *Store) build(ks *keydir.Snapshot[*Entry]) {
	isRevocation := func(i int) bool { return s.sources[i].Revocation }
	prev := s.snap.Load()
	sn := &snapshot{files: ks, revoked: keydir.NextRevocations(prev.revoked, prev.files, ks, isRevocation, entrySPKI)}
	for _, p := range ks.Problems {
		if !p.Revocation {
			sn.skipped = append(sn.skipped, p)
		}
	}
	ok := false
	if prev.files != nil {
		gone, came := keydir.Diff(prev.files, ks)
		gone, came = s.pinFiles(gone), s.pinFiles(came)
		sn.pins, ok = updateIndex(prev.pins, gone, came)
	}
	if ok {
		s.updates.Add(1)
	} else {
		sn.pins = buildIndex(ks.Files(), isRevocation)
		s.rebuilds.Add(1)
	}
	sn.entries = sync.OnceValue(func() []*Entry {
		var out []*Entry
		for f := range ks.All {
			if !isRevocation(f.Source()) {
				out = append(out, f.Items()...)
			}
		}
		return out
	})
	s.snap.Store(sn)
}

// pinFiles returns the files of files that are pin files, not revocation
// ones, in file order (filtering in place).
func (s *Store) pinFiles(files []*keydir.File[*Entry]) []*keydir.File[*Entry] {
	out := files[:0]
	for _, f := range files {
		if !s.sources[f.Source()].Revocation {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b *keydir.File[*Entry]) int {
		if a.Source() != b.Source() {
			return a.Source() - b.Source()
		}
		return strings.Compare(a.Path(), b.Path())
	})
	return out
}

// excluded reports whether e is not there for a connection of purpose
// to the address: one of its negated patterns matches, or it is a pin for
// other purposes. A connection without a purpose sees every pin, but
// only those for every purpose admit it (admits).
func (e *Entry) excluded(ip netip.Addr, host string, port uint16, purpose string) bool {
	if purpose != "" && len(e.Purposes) > 0 && !slices.Contains(e.Purposes, purpose) {
		return true // a pin for other purposes
	}
	for i := range e.neg {
		if e.neg[i].match(ip, host, port) {
			return true
		}
	}
	return false
}

// admits reports whether e, not excluded, admits its key for a connection
// of purpose: any pin there does for a connection of a purpose; for one
// without a purpose, only a pin for every purpose. A pin for some
// purposes still makes another key a changed one there: the address is
// pinned (docs/design.md, "Purposes").
func (e *Entry) admits(purpose string) bool {
	return purpose != "" || len(e.Purposes) == 0
}

// Check decides whether key may be presented by the host at addr ("host",
// "host:port", "[v6]:port"). It returns nil when a pin for the address
// (exact or wildcard) holds the key, and otherwise:
//   - *RevokedError if the key is revoked or a revocation list cannot be read;
//   - *KeyChangedError if an exact (non-wildcard) pin for the address holds
//     another key: a reinstall, or an interception;
//   - *NeedsNameError if no pin for the address holds the key (and no exact
//     pin holds another), but the key is pinned without an address: only
//     a certificate naming the host can admit it (WithCertificate);
//   - *UnknownHostError if no pin applies, or only wildcard pins with
//     other keys (a wildcard cannot tell that this host changed);
//   - *PurposesOnlyError, for a connection without a purpose (Check,
//     Decide), if only pins for some purposes hold the key;
//   - *SkippedFilesError instead of the last two (of *PurposesOnlyError
//     only where no exact pin for the address applies), while any file of pins
//     is skipped (bad modes, unreadable, malformed): the pin for the
//     address may be in it — of another key, which a key pinned without
//     an address never overrules — and skipped trust must never widen
//     trust: no prompt, no accept-new, no CA in its place.
//
// A pin without a port applies to every port; a negated pattern that
// matches excludes its entry.
func (s *Store) Check(addr string, key *jwk.Key) error {
	return s.check(addr, key.SPKIHash(), key, "")
}

// CheckSPKI is Check for a key known by its SPKI hash (the SHA-256 of a
// certificate's RawSubjectPublicKeyInfo).
func (s *Store) CheckSPKI(addr string, sum [32]byte) error {
	return s.check(addr, sum, nil, "")
}

// check decides on the key (its hash sum, and the key when known) at
// addr, for a connection of purpose ("": every pin is there, and those
// for every purpose admit; else the pins without a purpose and those for
// it are there, and admit).
func (s *Store) check(addr string, sum [32]byte, key *jwk.Key, purpose string) error {
	sn := s.snap.Load()
	if err := sn.revoked.Err(); err != nil {
		return &RevokedError{Addr: addr, Fingerprint: jwk.FormatFingerprint(sum), Err: err}
	}
	if r, ok := sn.revoked.Get(sum); ok {
		return &RevokedError{Addr: addr, Fingerprint: r.Fingerprint, File: r.File}
	}
	ip, host, port, err := parseTarget(addr)
	if err != nil {
		return err
	}
	k := hostKey{port: port}
	if ip.IsValid() {
		k.ip = ip
	} else {
		k.name = host
	}
	h := hashAddr(k.ip, k.name)
	exactPort := sn.pins.exact.get(hashPort(h, port), k)
	var anyPort []*Entry
	if port != 0 {
		k.port = 0
		anyPort = sn.pins.exact.get(hashPort(h, 0), k)
	}
	var forSome purposesOf // pins of the key that do not admit it: for some purposes, and the connection has none
	admitted, pinned := exactPins([2][]*Entry{exactPort, anyPort}, sum, ip, host, port, purpose, &forSome)
	if admitted || wildAdmits(sn.pins.wild.get(hashSPKI(sum), sum), ip, host, port, purpose, &forSome) {
		return nil
	}
	fp := jwk.FormatFingerprint(sum)
	purposesOnly := func() error {
		e := &PurposesOnlyError{Addr: addr, Fingerprint: fp, File: forSome.file, Purposes: forSome.purposes}
		if pinned {
			for _, w := range changedError(addr, key, fp, ip, host, port, purpose, exactPort, anyPort).Want {
				if w.Fingerprint != fp {
					e.Others = append(e.Others, w)
				}
			}
		}
		return e
	}
	// A key pinned for some purposes by wildcards only (no exact pin: the
	// named pins below are still asked) is decided after them: a pin
	// without an address for every purpose admits it where its
	// certificate names the host, as it would without the wildcard.
	if !pinned && len(sn.skipped) > 0 {
		// Before a key pinned without an address: it is admitted only
		// where no pin of the address holds another key, and the
		// skipped files may hold one.
		return &SkippedFilesError{Addr: addr, Fingerprint: fp, Problems: slices.Clone(sn.skipped)}
	}
	for _, e := range sn.pins.named.get(hashSPKI(sum), sum) {
		if pinned || e.excluded(ip, host, port, purpose) {
			continue
		}
		if !e.admits(purpose) {
			forSome.add(e)
			continue
		}
		// Pinned without an address: the address's own pins came first
		// (a pin of another key there is a changed key, which this one
		// never rescues); now the certificate must name the host.
		return &NeedsNameError{Addr: addr, Fingerprint: fp, File: e.File}
	}
	if forSome.file != "" {
		return purposesOnly()
	}
	if !pinned {
		return &UnknownHostError{Addr: addr, Key: key, Fingerprint: fp}
	}
	return changedError(addr, key, fp, ip, host, port, purpose, exactPort, anyPort)
}

// exactPins looks at the pins naming the address itself (with its port,
// or every port): admitted if one of them admits the key sum, pinned if
// any is there for the connection; the key's pins that are there but do
// not admit it go to forSome.
func exactPins(lists [2][]*Entry, sum [32]byte, ip netip.Addr, host string, port uint16, purpose string, forSome *purposesOf) (admitted, pinned bool) {
	for _, list := range lists {
		for _, e := range list {
			if e.excluded(ip, host, port, purpose) {
				continue
			}
			if e.SPKIHash == sum {
				if e.admits(purpose) {
					return true, true
				}
				forSome.add(e)
			}
			pinned = true
		}
	}
	return false, pinned
}

// wildAdmits reports whether one of entries, the wildcard pins of a key,
// matches the address and admits the key; those that match but do not
// admit it go to forSome. A wildcard never makes another key a changed
// one: it cannot tell that this host changed.
func wildAdmits(entries []*Entry, ip netip.Addr, host string, port uint16, purpose string, forSome *purposesOf) bool {
	for _, e := range entries {
		if e.excluded(ip, host, port, purpose) {
			continue
		}
		for i := range e.pos {
			if e.pos[i].wild && e.pos[i].match(ip, host, port) {
				if e.admits(purpose) {
					return true
				}
				forSome.add(e)
				break
			}
		}
	}
	return false
}

// purposesOf gathers, for a *PurposesOnlyError, the pins of a key for
// some purposes only: the first one's file and every purpose they serve.
type purposesOf struct {
	file     string
	purposes []string
}

func (p *purposesOf) add(e *Entry) {
	if p.file == "" {
		p.file = e.File
	}
	for _, name := range e.Purposes {
		if !slices.Contains(p.purposes, name) {
			p.purposes = append(p.purposes, name)
		}
	}
}

// changedError is check's *KeyChangedError for addr (parsed as ip, host
// and port), naming the keys its exact pins (with the port, or every
// port) hold.
func changedError(addr string, key *jwk.Key, fp string, ip netip.Addr, host string, port uint16, purpose string, exactPort, anyPort []*Entry) *KeyChangedError {
	ce := &KeyChangedError{Addr: addr, Got: key, Fingerprint: fp}
	for i, list := range [2][]*Entry{exactPort, anyPort} {
		// The address as the pin holds it: with the port, or without
		// (a pin for every port of the host).
		pinned := pattern{ip: ip, host: host, port: port}
		if i == 1 {
			pinned.port = 0
		}
		if ip.IsValid() {
			pinned.host = ""
		}
		for _, e := range list {
			if !e.excluded(ip, host, port, purpose) {
				ce.Want = append(ce.Want, PinnedKey{Fingerprint: e.Fingerprint, File: e.File, Address: pinned.String()})
			}
		}
	}
	return ce
}

// NormalizeAddr checks an address for Add and returns its normal form.
func NormalizeAddr(addr string) (string, error) {
	p, err := pinnable(addr)
	if err != nil {
		return "", err
	}
	return p.String(), nil
}

// pinnable parses an address that a pin may hold: any pattern but a
// negated one, which alone would match nothing.
func pinnable(addr string) (pattern, error) {
	p, err := parsePattern(addr)
	if err != nil {
		return pattern{}, err
	}
	if p.neg {
		return pattern{}, fmt.Errorf("address %q: a negated pattern cannot be pinned on its own", addr)
	}
	return p, nil
}

// FileName returns the name Add gives the file pinning addr (normal form):
// the host with IPv6 brackets dropped and ':' turned into '_', then '_' and
// the port; any byte outside [A-Za-z0-9.-] is percent-encoded, so the name
// can never leave the directory, start with a dot or hold a separator.
func FileName(addr string) (string, error) {
	p, err := pinnable(addr)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, c := range []byte(p.hostString()) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-':
			b.WriteByte(c)
		case c == '.' && b.Len() > 0:
			b.WriteByte(c)
		case c == ':':
			b.WriteByte('_')
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	if p.port != 0 {
		b.WriteString("_" + strconv.Itoa(int(p.port)))
	}
	name := b.String()
	if err := keydir.CheckName(name); err != nil {
		return "", err
	}
	return name + ".json", nil
}

// AddMode says what Add does when the address is already pinned to other
// keys.
type AddMode int

const (
	// AddNew pins a first key: if an exact pin for the address holds
	// another key, Add returns *KeyChangedError and writes nothing.
	AddNew AddMode = iota
	// AddAnother pins one more key beside the address's pins (a key
	// rollover: both are admitted until the old one is removed), in a
	// file of its own (see AnotherFileName).
	AddAnother
)

func (m AddMode) String() string {
	switch m {
	case AddNew:
		return "new"
	case AddAnother:
		return "another"
	}
	return "AddMode(" + strconv.Itoa(int(m)) + ")"
}

// Add pins key for addr (a host, host:port, [v6]:port or wildcard pattern):
// it writes the public key with "address" set to trusted_hosts.d/NAME.json
// (see FileName), atomically with mode 0644, and returns the file's path.
// If an exact pin for the address already holds another key, it returns
// *KeyChangedError and writes nothing; if the key is already pinned there,
// it writes nothing and returns the file that pins it. Add is AddKey with
// AddNew.
func (s *Store) Add(addr string, key *jwk.Key) (string, error) {
	return s.AddKey(addr, key, AddNew)
}

// AddKey is Add with a mode. Under AddAnother, an address whose pins hold
// other keys keeps them and key is pinned too, in
// trusted_hosts.d/AnotherFileName; an address without pins gets
// FileName, as under AddNew. Either mode refuses a revoked key
// (*RevokedError), and refuses while a file of pins is skipped
// (*SkippedFilesError): skipped trust never widens trust. A key with a
// "purpose" member is pinned for those purposes only, and pins count as
// DecidePurpose sees them: a pin for other purposes neither makes it
// already pinned nor a changed key, and the new pin goes beside the
// address's file (AnotherFileName).
func (s *Store) AddKey(addr string, key *jwk.Key, mode AddMode) (string, error) {
	return s.addKey(addr, key, mode, 0)
}

// AddKeyAtMost is AddKey that never makes more than most keys pinned for
// addr (KeysPinnedAt): a key not pinned there yet, where most are, is
// refused with *TooManyKeysError and nothing is written. A client
// pinning the keys a host announces (tlsbridge's UpdateHostKeys) bounds
// an address's pins so. The count and the write are one step for every
// writer of the directory, as AddKey's other checks are: counted by the
// caller first, then written, concurrent handshakes announcing other
// keys each found room and together passed the bound (found by review,
// 2026-12-05: TestAddKeyAtMostConcurrent). most must be positive.
func (s *Store) AddKeyAtMost(addr string, key *jwk.Key, mode AddMode, most int) (string, error) {
	if most <= 0 {
		return "", fmt.Errorf("knownhosts: invalid bound of %d keys for an address", most)
	}
	return s.addKey(addr, key, mode, most)
}

// addKey is AddKey, bounded by most keys pinned for the address when
// most is positive (AddKeyAtMost).
func (s *Store) addKey(addr string, key *jwk.Key, mode AddMode, most int) (string, error) {
	if mode != AddNew && mode != AddAnother {
		return "", fmt.Errorf("knownhosts: invalid add mode %v", mode)
	}
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return "", err
	}
	if len(s.opts.Dirs) == 0 {
		return "", errors.New("knownhosts: no trusted-hosts directory configured to add keys to")
	}
	dir := s.opts.Dirs[0]
	// Looked at first without the lock, so that an add refused (a key
	// pinned already, revoked, changed; a file skipped) makes no
	// directory and takes no lock.
	if _, f, err := s.addPath(dir, norm, key, mode, most); f != "" || err != nil {
		return f, err
	}
	if err := s.Loader().MakeDir(dir, 0o755); err != nil {
		return "", fmt.Errorf("knownhosts: %w", err)
	}
	// Then again, and written, as one step for every writer of the
	// directory (docs/design.md, "Concurrent writers"): in this process
	// under adding, across processes sharing trusted_hosts.d under the
	// directory's lock (keydir.Loader.LockDir, the one EditFile's
	// rewrites take), as authkeys.Store.Add makes its checks. Else two
	// adds of other keys for one address, each counting the address's
	// pins before either wrote, both found room under a bound
	// (AddKeyAtMost) and both wrote (found by review, 2026-12-05).
	adding.Lock()
	defer adding.Unlock()
	unlock, _, err := s.Loader().LockDir(dir)
	if err != nil {
		return "", fmt.Errorf("knownhosts: %w", err)
	}
	defer unlock()
	path, f, err := s.addPath(dir, norm, key, mode, most)
	if f != "" || err != nil {
		return f, err
	}
	pk := key.PublicKey()
	if pk.Attrs == nil {
		pk.Attrs = jwk.Attributes{}
	}
	delete(pk.Attrs, jwk.AttrHosts)
	pk.Attrs.SetList(jwk.AttrAddress, []string{norm})
	data, err := pk.MarshalPublic(jwk.JWK)
	if err != nil {
		return "", err
	}
	err = keydir.CreateFile(path, data, 0o644)
	if errors.Is(err, fs.ErrExist) {
		// Another writer got there first (one that takes no lock, or
		// where none can be had): decide from what is on disk now.
		s.Loader().Reload(path)
		if f, _, err := s.addable(norm, key, mode); f != "" || err != nil {
			return f, err
		}
		return "", &FileExistsError{Addr: norm, File: path}
	}
	if err != nil {
		return "", err
	}
	s.Loader().Reload(path)
	return path, nil
}

// addPath makes addKey's checks on the pins as they are now, and returns
// the file to write the pin of key for the normal address norm to in
// dir; or the file pinning it already (file), or why it is not pinned.
func (s *Store) addPath(dir, norm string, key *jwk.Key, mode AddMode, most int) (path, file string, err error) {
	// In a store LoadFor narrowed, a file another writer added since the
	// load (a key file copied in while trust-host asked the user) is in
	// no index yet, and a plain Reload reads only the narrowed files
	// again. Where the directory's stamp changed since the load,
	// ReloadCurrent proves the index complete first (as
	// authkeys.Store.Add does; docs/design.md, "The admin index").
	s.Loader().ReloadCurrent()
	file, others, err := s.addable(norm, key, mode)
	if file != "" || err != nil {
		return "", file, err
	}
	if most > 0 {
		if n, room := s.roomFor(norm, key.SPKIHash(), most); !room {
			return "", "", &TooManyKeysError{Addr: norm, Fingerprint: key.Fingerprint(), Pinned: n, Most: most}
		}
	}
	name, err := FileName(norm)
	if err != nil {
		return "", "", err
	}
	if !others {
		// The address's file may pin it already for other purposes
		// (existingPin): the key goes beside it, as one more pin.
		others = s.pinsIn(norm, filepath.Join(dir, name))
	}
	if others {
		if name, err = AnotherFileName(norm, key); err != nil {
			return "", "", err
		}
	}
	// Pinning while a file of pins is skipped could pin beside a pin that
	// says otherwise, in the very directory that was refused.
	if sn := s.snap.Load(); len(sn.skipped) > 0 {
		return "", "", &SkippedFilesError{Addr: norm, Fingerprint: key.Fingerprint(), Problems: slices.Clone(sn.skipped)}
	}
	return filepath.Join(dir, name), "", nil
}

// adding serialises this process's adds (Store.AddKey): the directory's
// lock serialises them too where flock(2) is had, since each takes it on
// a descriptor of its own, but not where it is not (keydir.Loader.LockDir's
// held false), and one process's adds must not race even there.
var adding sync.Mutex

// pinsIn reports whether file holds a pin of the normal address norm
// (the loader may name files by their absolute paths).
func (s *Store) pinsIn(norm, file string) bool {
	entries := s.snap.Load().holding(norm)
	abs, err := filepath.Abs(file)
	if err != nil {
		abs = file
	}
	return slices.ContainsFunc(entries, func(e *Entry) bool {
		return (e.File == file || e.File == abs) && slices.Contains(e.Addresses, norm)
	})
}

// addable decides whether key may be pinned for the normal address norm
// under mode: the file already pinning it, or an error (revoked, or under
// AddNew a changed key); others says that other keys are pinned for the
// address (AddAnother then writes a file of its own).
func (s *Store) addable(norm string, key *jwk.Key, mode AddMode) (file string, others bool, err error) {
	file, err = s.existingPin(norm, key)
	var ce *KeyChangedError
	if mode == AddAnother && errors.As(err, &ce) {
		return "", true, nil
	}
	return file, false, err
}

// AnotherFileName returns the name AddKey gives the file of one more key
// pinned for addr (AddAnother): FileName's name, then "+" and the first
// 32 characters of the key's ID (KG4UJTP2…, 160 bits), which no
// address's FileName holds ("+" is percent-encoded there) and which tell
// the keys of one address apart; for a key with a "purpose" member, then
// "+" and each purpose (KG4UJTP2…+ldap), since the same key may be
// pinned beside for other purposes (no purpose holds a "+": ValidName).
//
// Earlier versions took 8 characters, 40 bits: a host that made about a
// million keys had two whose files were one, and the second key it
// announced was refused (TestAddAnotherKeysSharingShortIDs). Nothing
// reads a pin from its file's name, so the files they wrote pin as
// before.
func AnotherFileName(addr string, key *jwk.Key) (string, error) {
	name, err := FileName(addr)
	if err != nil {
		return "", err
	}
	id := strings.ReplaceAll(key.KeyID(), ":", "")[:32]
	name = strings.TrimSuffix(name, ".json") + "+" + id
	if purposes, _ := key.Attrs.List(jwk.AttrPurpose); len(purposes) > 0 {
		// The same key may be pinned beside for other purposes.
		name += "+" + strings.Join(purposes, "+")
	}
	if err := keydir.CheckName(name); err != nil {
		return "", err
	}
	return name + ".json", nil
}

// existingPin looks for pins of the normal address norm: the file already
// pinning key, or a *KeyChangedError naming the pins of other keys.
// Purposes count (docs/design.md, "Purposes"): key, with its "purpose"
// member, is already pinned only by a pin that serves each of its purposes
// (a pin without one serves every purpose; key without one needs such a
// pin), and another key's pin is a changed key only for a purpose both
// pins serve — as DecidePurpose sees them.
func (s *Store) existingPin(norm string, key *jwk.Key) (string, error) {
	sum := key.SPKIHash()
	sn := s.snap.Load()
	if err := sn.revoked.Err(); err != nil {
		return "", &RevokedError{Addr: norm, Fingerprint: key.Fingerprint(), Err: err}
	}
	if r, ok := sn.revoked.Get(sum); ok {
		return "", &RevokedError{Addr: norm, Fingerprint: r.Fingerprint, File: r.File}
	}
	purposes, err := key.Attrs.List(jwk.AttrPurpose)
	if err != nil {
		return "", &jwk.ParseError{Member: jwk.AttrPurpose, Err: err}
	}
	p, _ := parsePattern(norm)
	var want []PinnedKey
	if p.wild {
		for _, e := range sn.all() {
			if !slices.Contains(e.Addresses, norm) {
				continue
			}
			switch {
			case e.SPKIHash == sum && servesAll(e.Purposes, purposes):
				return e.File, nil
			case e.SPKIHash != sum && servesSome(e.Purposes, purposes):
				want = append(want, PinnedKey{Fingerprint: e.Fingerprint, File: e.File})
			}
		}
	} else {
		checks := purposes
		if len(checks) == 0 {
			checks = []string{""} // every pin is there for every purpose
		}
		pinned := true
		for _, purpose := range checks {
			err := s.check(norm, sum, key, purpose)
			var (
				ce   *KeyChangedError
				only *PurposesOnlyError // the key pinned for some purposes: the others' pins still count
			)
			if errors.As(err, &ce) || errors.As(err, &only) {
				if ce == nil {
					ce = &KeyChangedError{Want: only.Others}
				}
				for _, w := range ce.Want {
					if !slices.Contains(want, w) {
						want = append(want, w)
					}
				}
			}
			pinned = pinned && err == nil
		}
		if file := servingPin(s.exactEntries(p), sum, purposes); pinned && file != "" {
			return file, nil
		}
		// Else accepted through a wildcard, or by pins for fewer
		// purposes: pin it exactly as asked.
	}
	if len(want) > 0 {
		return "", &KeyChangedError{Addr: norm, Got: key, Fingerprint: key.Fingerprint(), Want: want}
	}
	return "", nil
}

// servingPin returns the file of a pin among entries holding the key sum
// for each of purposes (none: a pin for every purpose), or "" if some
// purpose has none.
func servingPin(entries []*Entry, sum [32]byte, purposes []string) string {
	wants := [][]string{nil} // a pin for every purpose
	if len(purposes) > 0 {
		wants = wants[:0]
		for i := range purposes {
			wants = append(wants, purposes[i:i+1]) // a pin serving each, maybe a different one
		}
	}
	first := ""
	for _, want := range wants {
		i := slices.IndexFunc(entries, func(e *Entry) bool { return e.SPKIHash == sum && servesAll(e.Purposes, want) })
		if i < 0 {
			return ""
		}
		if first == "" {
			first = entries[i].File
		}
	}
	return first
}

// servesAll reports whether a pin for the purposes have (none: every
// purpose) serves every purpose of want (none: every purpose).
func servesAll(have, want []string) bool {
	if len(have) == 0 {
		return true
	}
	if len(want) == 0 {
		return false
	}
	for _, p := range want {
		if !slices.Contains(have, p) {
			return false
		}
	}
	return true
}

// servesSome reports whether pins for the purposes a and b (none: every
// purpose) serve a purpose in common.
func servesSome(a, b []string) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	for _, p := range a {
		if slices.Contains(b, p) {
			return true
		}
	}
	return false
}

// RoomNow reports whether AddKeyAtMost(addr, key, mode, most) would find
// room for the key whose sum is given, on the files as they are now, not
// as the store last loaded them (the pins other processes sharing the
// directory wrote since are counted: Loader.ReloadCurrent, as
// AddKeyAtMost counts them), and how many keys are pinned for addr
// (KeysPinnedAt). A client asks it before it asks its user about a key a
// host announces, so that no question is asked whose yes AddKeyAtMost
// then refuses for the bound (*TooManyKeysError), and none is left
// unasked that AddKeyAtMost would pin: both decide by one rule (roomFor).
// AddKeyAtMost decides again, under the directory's lock, as it writes.
func (s *Store) RoomNow(addr string, sum [32]byte, most int) (pinned int, room bool) {
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return 0, false // AddKeyAtMost refuses the address
	}
	s.Loader().ReloadCurrent()
	return s.roomFor(norm, sum, most)
}

// roomFor reports whether pinning the key sum for the normal address norm
// keeps it within most keys pinned (KeysPinnedAt), and how many are
// pinned: a key the address pins already (for other purposes:
// existingPin) adds none to the count.
func (s *Store) roomFor(norm string, sum [32]byte, most int) (pinned int, room bool) {
	pinned = s.KeysPinnedAt(norm)
	return pinned, pinned < most || s.pinsKeyAt(norm, sum)
}

// KeysPinnedAt returns how many keys are pinned for addr by pins that
// name it exactly (with its port, or port-less; not by a wildcard nor
// without an address), each key once: the pins AddKey writes for it.
func (s *Store) KeysPinnedAt(addr string) int {
	norm, err := NormalizeAddr(addr)
	if err != nil {
		return 0
	}
	p, err := parsePattern(norm)
	if err != nil || p.wild {
		return 0
	}
	keys := map[[32]byte]bool{}
	for _, e := range s.exactEntries(p) {
		keys[e.SPKIHash] = true
	}
	return len(keys)
}

// pinsKeyAt reports whether the key sum is among the keys KeysPinnedAt
// counts for the normal address norm.
func (s *Store) pinsKeyAt(norm string, sum [32]byte) bool {
	p, err := parsePattern(norm)
	if err != nil || p.wild {
		return false
	}
	return slices.ContainsFunc(s.exactEntries(p), func(e *Entry) bool { return e.SPKIHash == sum })
}

// KeysPinnableAt returns the keys Decide may find Pinned at addr, each
// once: those the address's exact pins hold (with its port, or
// port-less), and every key with a wildcard pin. It is a superset: a
// caller asks Decide of the pins of these keys only (trust-host's note of
// the pins that still cover an address it unpinned) where asking of
// every pin, for each of thousands of addresses, cost their product (26
// s for 5,000 addresses in a store of 20,000). Nil when addr is not an
// address Decide takes.
func (s *Store) KeysPinnableAt(addr string) map[[32]byte]bool {
	ip, host, port, err := parseTarget(addr)
	if err != nil {
		return nil
	}
	sn := s.snap.Load()
	at := pattern{ip: ip, port: port}
	if !ip.IsValid() {
		at.host = host // as check looks it up
	}
	keys := map[[32]byte]bool{}
	for _, e := range sn.exactEntries(at) {
		keys[e.SPKIHash] = true
	}
	for _, shard := range sn.pins.wild.shards {
		for sum := range shard {
			keys[sum] = true
		}
	}
	return keys
}

// exactEntries returns the entries an exact pattern's address is pinned
// by exactly (with its port, or port-less).
func (s *Store) exactEntries(p pattern) []*Entry { return s.snap.Load().exactEntries(p) }

// holding returns the pins whose addresses may hold the normal pattern
// norm, in file order, for a caller to keep those whose Addresses do (do
// not modify): an exact address's list in the index, one lookup where a
// scan of every pin cost a removal of 5,000 addresses 25 million
// comparisons; for a wildcard, every pin.
func (sn *snapshot) holding(norm string) []*Entry {
	p, err := parsePattern(norm)
	if err != nil || p.wild || p.neg {
		return sn.all()
	}
	k := p.key()
	return sn.pins.exact.get(hashHost(k), k)
}

// exactEntries is Store.exactEntries in sn.
func (sn *snapshot) exactEntries(p pattern) []*Entry {
	k := p.key()
	out := slices.Clone(sn.pins.exact.get(hashHost(k), k))
	if k.port != 0 {
		k.port = 0
		out = append(out, sn.pins.exact.get(hashHost(k), k)...)
	}
	return out
}

// FindKeys returns the pinned entries, in file order and duplicates
// included, whose key fp names (keydir.Loader.Find: every fingerprint
// form). A file that the strict-modes rule now refuses, and that a
// fingerprint in a form the entries do not hold (a thumbprint) needed read
// again, is left out: the next load trusts nothing from it.
func (s *Store) FindKeys(fp jwk.Fingerprint) []*Entry {
	finder := s.finder([]jwk.Fingerprint{fp})
	found, _ := finder.Find(s.Loader().Snapshot(), fp)
	if len(found) == 0 && s.Loader().Widen() {
		found, _ = finder.Find(s.Loader().Snapshot(), fp)
	}
	out := make([]*Entry, len(found))
	for i, f := range found {
		out[i] = *f.Item
	}
	return out
}

// AddressesOf returns the addresses and patterns, in normal form and file
// order, each once, for which the key whose SPKI hash is sum is pinned:
// the other names a prompt about that key at a new address can list, as
// ssh lists them. Negated patterns are left out.
func (s *Store) AddressesOf(sum [32]byte) []string {
	var out []string
	seen := map[string]bool{} // a key pinned for 40,000 hosts took 3 s searching out
	for _, e := range s.snap.Load().all() {
		if e.SPKIHash != sum {
			continue
		}
		for _, p := range e.pos {
			if a := p.String(); !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// dropAddresses returns k without the addresses drop holds (in normal
// form): itself if it has none of them, nil if no positive address would
// remain — as dropping them one after the other would, reading k's
// addresses once (a step removing 2,000 addresses of a pin of 20,000
// read them for each).
func dropAddresses(k *jwk.Key, drop map[string]bool) *jwk.Key {
	addrs, err := k.Attrs.Addresses()
	if err != nil {
		return k
	}
	var rest []string
	found, positive := false, false
	for _, a := range addrs {
		if n, err := ParsePattern(a); err == nil && drop[n] {
			found = true
			continue
		}
		rest = append(rest, a)
		if !strings.HasPrefix(a, "!") {
			positive = true
		}
	}
	if !found {
		return k
	}
	if !positive {
		return nil
	}
	nk := k.PublicKey()
	delete(nk.Attrs, jwk.AttrHosts)
	nk.Attrs.SetList(jwk.AttrAddress, rest)
	return nk
}
