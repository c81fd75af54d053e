package enroll

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/atomicfile"
	homedir "github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
)

// usedDir is the subdirectory of the invitations directory that holds
// the records of used invitations, and the claims in progress.
const usedDir = "used"

// InvitesDir returns the invitations directory of a keytool home.
// It holds the pending invitations as NAME.json and the used ones in
// used/NAME.json.
func InvitesDir(dir string) string { return homedir.Dir(dir).Invites() }

// DefaultTTL is how long an invitation stays valid unless told otherwise.
const DefaultTTL = time.Hour

// Invitation is what the server keeps of a token: everything but the
// secret, of which only the SHA-256 is stored. Pending invitations are
// DIR/NAME.json; used ones move to DIR/used/NAME.json, with the time of
// use and the key that used them. Files are mode 0600, directories 0700.
type Invitation struct {
	Name              string    `json:"name"`
	SecretSHA256      string    `json:"secret_sha256"` // base64url, no padding
	ServerFingerprint string    `json:"server_fingerprint"`
	Addresses         []string  `json:"addresses"`
	Created           time.Time `json:"created"`
	Expires           time.Time `json:"expires"`
	Used              time.Time `json:"used,omitzero"`
	ClientFingerprint string    `json:"client_fingerprint,omitempty"`

	File string `json:"-"` // where it was read from or written to
	// Claimed is, for a pending invitation that ListInvites or
	// RevokeInvite found claimed, when the claim was made (its ctime, or
	// its mtime where that is not known): a client was being enrolled with
	// its token then — or a server stopped while enrolling it, and the
	// invitation stays blocked until it is removed (docs/enrollment.md).
	// Zero if it was not claimed.
	Claimed time.Time `json:"-"`
}

// Status is "pending", "expired" or "used" at time now.
func (inv *Invitation) Status(now time.Time) string {
	switch {
	case !inv.Used.IsZero():
		return "used"
	case !now.Before(inv.Expires):
		return "expired"
	}
	return "pending"
}

// InviteOptions say what NewInvite makes.
type InviteOptions struct {
	// Name is the invitation's name and the entry name the client's key
	// will get in authorized_keys.d. Empty: "client-" and 8 random hex digits.
	Name string
	// Addresses are where clients reach the enrollment endpoint, host:port,
	// tried in order. At least one.
	Addresses []string
	// Expires is when the token stops working; zero means TTL from now.
	Expires time.Time
	// TTL is the token's lifetime when Expires is zero; zero means DefaultTTL.
	TTL time.Duration
	// Clients, if set, makes NewInvite refuse a name that an authorized
	// key already has (the join would fail).
	Clients *authkeys.Store
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewInvite creates a one-time invitation in dir (see InvitesDir) for a
// server presenting serverKey, and returns it with its token. Only the
// SHA-256 of the token's secret is written. A dir that breaks the
// strict-modes rule (see HandlerOptions.Dir) is refused, since the
// handler would not honour the invitation. An invitation of the same
// name that is still in dir is never replaced: revoke it first.
func NewInvite(dir string, serverKey *jwk.Key, opts InviteOptions) (*Invitation, Token, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	t0 := now().UTC().Truncate(time.Second)
	name := opts.Name
	if name == "" {
		r, err := newSecret()
		if err != nil {
			return nil, Token{}, err
		}
		name = fmt.Sprintf("client-%x", r[:4])
	}
	exp := opts.Expires
	if exp.IsZero() {
		ttl := opts.TTL
		if ttl == 0 {
			ttl = DefaultTTL
		}
		if ttl < 0 {
			return nil, Token{}, fmt.Errorf("enroll: the lifetime of an invitation must be positive, not %s", ttl)
		}
		exp = t0.Add(ttl)
	}
	exp = exp.UTC().Truncate(time.Second)
	if !exp.After(t0) {
		return nil, Token{}, fmt.Errorf("enroll: the expiry %s is not in the future", exp.Format(time.RFC3339))
	}
	secret, err := newSecret()
	if err != nil {
		return nil, Token{}, err
	}
	tok := Token{Server: serverKey.SPKIHash(), Addresses: slices.Clone(opts.Addresses), Secret: secret, Expires: exp, Name: name}
	if err := tok.validate(); err != nil {
		return nil, Token{}, err
	}
	if opts.Clients != nil {
		// NameHolder, not the store's entries: in a store LoadFor
		// narrowed (keytool invite's), it reads the files the admin index
		// names for this name first — the store of an invitation without
		// --name was loaded before the name was generated
		// (docs/design.md, "The admin index").
		opts.Clients.Reload()
		if e := opts.Clients.NameHolder(name, [32]byte{}, ""); e != nil {
			return nil, Token{}, &NameTakenError{Name: name, Fingerprint: e.Fingerprint, File: e.File}
		}
	}
	if err := makeDirs(dir); err != nil {
		return nil, Token{}, err
	}
	if err := checkDir(dir); err != nil {
		return nil, Token{}, err // the handler would refuse the invitation
	}
	unlock, _, err := lockInvites(dir) // makes the lock file: see lockInvites
	if err != nil {
		return nil, Token{}, fmt.Errorf("enroll: the invitations in %s cannot be locked against a revocation: %w", dir, err)
	}
	unlock()
	inv := &Invitation{
		Name:              name,
		SecretSHA256:      hashSecret(secret),
		ServerFingerprint: serverKey.Fingerprint(),
		Addresses:         tok.Addresses,
		Created:           t0,
		Expires:           exp,
		File:              filepath.Join(dir, name+".json"),
	}
	data, err := inv.marshal()
	if err != nil {
		return nil, Token{}, err
	}
	if err := atomicfile.Create(inv.File, data, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, Token{}, &InviteExistsError{Name: name, File: inv.File}
		}
		return nil, Token{}, err
	}
	return inv, tok, nil
}

// NameTakenError means NewInvite was asked for a name that an authorized
// key already has: the join would fail.
type NameTakenError struct {
	Name        string
	Fingerprint string // the key that has it
	File        string // where that key is authorized
}

func (e *NameTakenError) Error() string {
	return fmt.Sprintf("enroll: an authorized key is already named %q (%s, in %s)", e.Name, e.Fingerprint, e.File)
}

// InviteExistsError means NewInvite was asked for the name of an
// invitation that is still in the directory; it is never replaced.
type InviteExistsError struct {
	Name string
	File string
}

func (e *InviteExistsError) Error() string {
	return fmt.Sprintf("enroll: an invitation named %q already exists (%s)", e.Name, e.File)
}

// NotPendingError means RevokeInvite found no pending invitation of that
// name: only a claim of it was there (InUse: removed all the same — a
// client was being enrolled with it, or a server stopped while doing so),
// it was used (Used is set, with the key that used it), or it does not
// exist.
type NotPendingError struct {
	Name              string
	Dir               string
	InUse             bool
	Used              time.Time
	ClientFingerprint string
}

func (e *NotPendingError) Error() string {
	if e.InUse {
		return fmt.Sprintf("enroll: no invitation %q was pending, but a claim of it was (a client being enrolled, or a server that stopped while enrolling one): the claim is removed, but an enrollment that succeeds authorizes the client's key as %q", e.Name, e.Name)
	}
	if !e.Used.IsZero() {
		return fmt.Sprintf("enroll: invitation %q was already used at %s by key %s", e.Name, e.Used.Format(time.RFC3339), e.ClientFingerprint)
	}
	return fmt.Sprintf("enroll: no pending invitation is named %q in %s", e.Name, e.Dir)
}

// makeDirs creates dir and dir/used, mode 0700, and tightens them to 0700
// if they exist with looser modes — not through a symbolic link, whose
// target may be any directory (checkDir decides on a link).
func makeDirs(dir string) error {
	// Nothing is made in a home the rule refuses: another user's link
	// there would have it made, or tightened, wherever they chose.
	home := filepath.Dir(filepath.Clean(dir))
	if err := inviteRule(dir).CheckDir(home); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("enroll: refusing the invitations in %s: %w", dir, err)
	}
	for _, d := range []string{dir, filepath.Join(dir, usedDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if fi.IsDir() && fi.Mode().Perm() != 0o700 {
			if err := os.Chmod(d, 0o700); err != nil {
				return err
			}
		}
	}
	return nil
}

func hashSecret(secret [32]byte) string {
	sum := sha256.Sum256(secret[:])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (inv *Invitation) marshal() ([]byte, error) {
	data, err := json.MarshalIndent(inv, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// maxInviteFile bounds what readInvite accepts.
const maxInviteFile = 64 << 10

// inviteRule is the strict-modes rule of the invitations directory dir
// (docs/design.md, "One file-trust rule"): each invitation file, dir,
// dir/used and every directory up to the keytool home — dir's parent, as
// InvitesDir makes it — must belong to root or this process's user and
// not be writable by group or others. Whoever can write an invitation can
// let any key in.
func inviteRule(dir string) trustfile.Rule {
	return trustfile.Rule{Top: filepath.Dir(filepath.Clean(dir))}
}

// readInvite reads an invitation file of the invitations directory whose
// rule is r, refusing one that breaks it.
func readInvite(r trustfile.Rule, path string) (*Invitation, error) {
	data, _, err := r.ReadFile(path)
	if err != nil {
		var pe *trustfile.PermissionError
		var le *trustfile.LinkError
		if errors.As(err, &pe) || errors.As(err, &le) {
			return nil, fmt.Errorf("enroll: refusing the invitation %s: %w", path, err)
		}
		return nil, err
	}
	if len(data) > maxInviteFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxInviteFile)
	}
	return parseInvite(path, data)
}

// parseInvite parses the content of the invitation file path (named in
// errors and kept in File).
func parseInvite(path string, data []byte) (*Invitation, error) {
	var inv Invitation
	if err := json.Unmarshal(data, &inv); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if inv.Name == "" || inv.SecretSHA256 == "" || inv.Expires.IsZero() {
		return nil, fmt.Errorf("%s: not an invitation (name, secret_sha256 or expires missing)", path)
	}
	inv.File = path
	return &inv, nil
}

// checkDir refuses an invitations directory, or its used/ subdirectory,
// that breaks the strict-modes rule (inviteRule). A directory that does
// not exist holds no invitations, and is no fault.
func checkDir(dir string) error {
	r := inviteRule(dir)
	for _, d := range []string{dir, filepath.Join(dir, usedDir)} {
		err := r.CheckDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("enroll: refusing the invitations in %s: %w", d, err)
		}
	}
	return nil
}

// ListInvites returns the invitations in dir, pending and used, by name
// (a used invitation after a pending one of the same name). Files that
// cannot be read are returned as errors beside the others.
func ListInvites(dir string) ([]*Invitation, []error) {
	var out []*Invitation
	var problems []error
	if err := checkDir(dir); err != nil {
		return nil, []error{err}
	}
	claims := claimsIn(dir) // once, not a listing of used/ for each pending invitation
	for _, d := range []string{dir, filepath.Join(dir, usedDir)} {
		ents, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			problems = append(problems, err)
			continue
		}
		for _, e := range ents {
			n := e.Name()
			if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
				continue
			}
			inv, err := readInvite(inviteRule(dir), filepath.Join(d, n))
			if err != nil {
				problems = append(problems, err)
				continue
			}
			if d == dir {
				inv.Claimed = claimedAmong(inv.File, claims[inv.Name])
			}
			out = append(out, inv)
		}
	}
	slices.SortStableFunc(out, func(a, b *Invitation) int { return strings.Compare(a.Name, b.Name) })
	return out, problems
}

// RevokeInvite deletes the invitation name from dir, so that its token no
// longer works, and returns it. A token being redeemed at that very moment
// holds a claim of the invitation (a link to its file, in used/), which
// the server removes if adding the client's key fails; a server that
// stopped while redeeming it left its claim, which blocks the invitation.
// RevokeInvite deletes the claims of the name too, and says when one of
// the invitation it revoked was there (Invitation.Claimed: a client may
// have been enrolled, or be), or, with no pending invitation, that a
// claim was there (*NotPendingError, InUse), since an enrollment that
// succeeds goes ahead.
//
// Nothing puts an invitation back once RevokeInvite has deleted it: a
// failed enrollment removes its claim and leaves the pending file as it
// is, and a claim links the pending file, which is gone. It holds the
// invitations' lock (lockInvites) throughout all the same: a successful
// enrollment removes the pending file under it (see Handler.used), and a
// server of an earlier version put claimed invitations back under it.
func RevokeInvite(dir, name string) (*Invitation, error) {
	// A file name, not a name given: an invitation an earlier version made
	// for a name CheckName now refuses can still be revoked.
	if err := keydir.CheckFileName(name); err != nil {
		return nil, err
	}
	unlock, _, err := lockInvites(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &NotPendingError{Name: name, Dir: dir} // no invitations directory
	}
	if err != nil {
		return nil, fmt.Errorf("enroll: invitation %q not revoked: %w", name, err)
	}
	defer unlock()
	path := filepath.Join(dir, name+".json")
	// Before the pending file goes: its removal changes the claim's ctime.
	claimedAt := claimedSince(dir, name, path)
	inv, err := removePending(dir, name, path)
	var unsynced error // removed, its directory not synced: the claims go too, then it is said
	if err != nil && inv != nil {
		unsynced, err = err, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	// Claims go too, whether an invitation was pending or not: a client
	// presenting the token holds one while its invitation is pending.
	if testHookRevoke != nil {
		testHookRevoke("claims")
	}
	inUse, err := removeClaims(dir, name, inv)
	switch {
	case err != nil:
		return nil, errors.Join(err, unsynced)
	case inv != nil:
		if inUse || !claimedAt.IsZero() {
			inv.Claimed = claimedAt
			if inv.Claimed.IsZero() { // claimed between the look and the removal
				inv.Claimed = time.Now()
			}
		}
		return inv, unsynced
	case inUse:
		return nil, &NotPendingError{Name: name, Dir: dir, InUse: true}
	}
	if used, err := readInvite(inviteRule(dir), filepath.Join(dir, usedDir, name+".json")); err == nil {
		return nil, &NotPendingError{Name: name, Dir: dir, Used: used.Used, ClientFingerprint: used.ClientFingerprint}
	}
	return nil, &NotPendingError{Name: name, Dir: dir}
}

// claimedSince is when the pending invitation name, at path, in dir was
// claimed (the ctime of its claim, which linking it set), or zero if it
// is not claimed or not there.
func claimedSince(dir, name, path string) time.Time {
	return claimedAmong(path, claimsOf(dir, name))
}

// claimedAmong is when the pending invitation at path was claimed, of
// claims, its name's claims (claimsOf): the one that links path.
func claimedAmong(path string, claims []string) time.Time {
	pf, err := os.Lstat(path)
	if err != nil {
		return time.Time{}
	}
	for _, claim := range claims {
		if cf, err := os.Lstat(claim); err == nil && os.SameFile(pf, cf) {
			return trustfile.StampOf(cf).Changed()
		}
	}
	return time.Time{}
}

// removeClaims deletes the claims of the invitation name in dir, and
// reports whether a client was presenting the token of inv, the
// invitation RevokeInvite deleted — a claim of its secret was there,
// whether its enrollment ended since or not —, or, with no invitation
// pending, whether a claim was deleted.
func removeClaims(dir, name string, inv *Invitation) (inUse bool, err error) {
	tag := ""
	if inv != nil {
		if sum, err := base64.RawURLEncoding.DecodeString(inv.SecretSHA256); err == nil && len(sum) == sha256.Size {
			tag = filepath.Base(claimPath(dir, name, [32]byte(sum)))
		}
	}
	for _, claim := range claimsOf(dir, name) {
		if testHookRevoke != nil {
			testHookRevoke("claim")
		}
		err := os.Remove(claim)
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // gone: the enrollment ended meanwhile
			return false, fmt.Errorf("enroll: invitation %q is revoked, but a claim of it was not deleted: %w", name, err)
		}
		if inv != nil {
			inUse = inUse || filepath.Base(claim) == tag
		} else {
			inUse = inUse || err == nil
		}
	}
	return inUse, nil
}

// lockName is the lock file of an invitations directory (lockInvites).
const lockName = ".lock"

// lockInvites takes the lock of the invitations directory dir (flock of
// dir/.lock, waiting for it), which RevokeInvite holds throughout. The
// handler no longer takes it (nothing puts an invitation back): it
// excludes servers of earlier versions, which put a claimed invitation
// back under it. Where flock(2) is not available held is false and
// unlock does nothing. NewInvite makes the file, so that a failed
// enrollment writes nothing.
func lockInvites(dir string) (unlock func(), held bool, err error) {
	return lockFile(filepath.Join(dir, lockName))
}

// lockFile is keydir.LockFile; a test makes it fail as a file system
// without flock(2) does.
var lockFile = keydir.LockFile

// removePending deletes the pending invitation name, at path, durably
// (its directory synced), and returns what it held; fs.ErrNotExist if
// there is none — claimed meanwhile included. Removed, its directory not
// synced, it returns what it held and that error.
func removePending(dir, name, path string) (*Invitation, error) {
	inv, err := readInvite(inviteRule(dir), path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		// Unreadable, but the name is valid: removing it revokes it all the same.
		inv = &Invitation{Name: name, File: path}
	}
	if testHookRevoke != nil {
		testHookRevoke("remove")
	}
	if err := os.Remove(path); err != nil {
		return nil, err
	}
	// Durable before the command says it is revoked: a removal not yet
	// committed when the power goes would bring the invitation back,
	// and its token would work again.
	if err := atomicfile.SyncDir(dir); err != nil {
		return inv, fmt.Errorf("enroll: invitation %q removed (%s), but its directory could not be synced, so the removal may not survive a power loss: %w", name, path, err)
	}
	return inv, nil
}

// testHookRevoke, if set, runs at the steps of RevokeInvite where a
// client's claim or its failure may come in between: "remove", after the
// pending invitation was read and before it is deleted, "claims", before
// the claims are listed, and "claim", before each is deleted (tests: a
// join at that moment).
var testHookRevoke func(step string)

// PruneInvites deletes from dir the invitations that can no longer be
// used — pending ones that have expired, and the records of used ones —
// and returns them; then the claims whose pending invitation is gone
// (expired and pruned, or removed by a server of an earlier version),
// which a server that stopped while enrolling a client left: they are
// returned too, with File the claim and Claimed set. It is the only thing
// that deletes used records, which let the server tell a client that its
// token was already used (rather than unknown), so keytool runs it only
// when asked. Pending invitations still valid, claims of pending ones and
// unreadable files are left alone; the last are returned as skipped, and
// deletions that failed as failed. It holds the invitations' lock
// (lockInvites): a successful enrollment removes its pending file under
// it, and must not find a new one made in the place of one pruned.
func PruneInvites(dir string, now time.Time) (removed []*Invitation, skipped, failed []error) {
	unlock, _, err := lockInvites(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil // no invitations directory
	}
	if err != nil {
		return nil, nil, []error{fmt.Errorf("enroll: invitations not pruned: %w", err)}
	}
	defer unlock()
	// The claims' ctimes before any pending file goes: removing one
	// changes its claim's.
	claims := claimTimes(dir)
	invs, skipped := ListInvites(dir)
	for _, inv := range invs {
		if inv.Status(now) == "pending" {
			continue
		}
		// The file may have been replaced since it was listed (revoked,
		// and a new invitation made under the same name): delete only the
		// one that was judged.
		if again, err := readInvite(inviteRule(dir), inv.File); err != nil || again.SecretSHA256 != inv.SecretSHA256 || !again.Used.Equal(inv.Used) {
			continue
		}
		if err := os.Remove(inv.File); err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // claimed or pruned meanwhile: not ours to report
				failed = append(failed, err)
			}
			continue
		}
		removed = append(removed, inv)
	}
	orphans, failedClaims := pruneClaims(dir, claims)
	return append(removed, orphans...), skipped, append(failed, failedClaims...)
}

// claimTimes returns the claims of the invitations directory dir, by
// path, with their ctimes (see claimedSince).
func claimTimes(dir string) map[string]time.Time {
	out := map[string]time.Time{}
	for _, claims := range claimsIn(dir) { // one listing: a claimsOf for each claim was quadratic
		for _, claim := range claims {
			if cf, err := os.Lstat(claim); err == nil {
				out[claim] = trustfile.StampOf(cf).Changed()
			}
		}
	}
	return out
}

// pruneClaims deletes those of claims (claimTimes) whose pending
// invitation is gone, and returns what they held. Such a claim blocks
// nothing a token could use: the enrollment that made it, if it still
// runs, ends without it (Handler.used and release take a claim already
// gone for removed).
func pruneClaims(dir string, claims map[string]time.Time) (removed []*Invitation, failed []error) {
	for _, claim := range slices.Sorted(maps.Keys(claims)) {
		name, _ := claimName(claim)
		if _, err := os.Lstat(filepath.Join(dir, name+".json")); !errors.Is(err, fs.ErrNotExist) {
			continue // pending: the claim is the invitation's to end (or RevokeInvite's)
		}
		inv, err := readInvite(inviteRule(dir), claim)
		if err != nil {
			inv = &Invitation{Name: name}
		}
		inv.File, inv.Claimed = claim, claims[claim]
		if err := os.Remove(claim); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				failed = append(failed, err)
			}
			continue
		}
		removed = append(removed, inv)
	}
	return removed, failed
}

// claimName is the invitation name of the claim at path (claimPath).
func claimName(path string) (string, bool) {
	base := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "."), ".claim")
	i := strings.LastIndexByte(base, '.')
	if i <= 0 {
		return "", false
	}
	return base[:i], true
}
