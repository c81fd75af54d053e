package cli

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
	"github.com/spf13/pflag"
)

// listsHelp is what keytool --help says of the listings.
const listsHelp = `
To see what a home trusts: keytool list (all of it, problems included), or
authorize, revoke, trust-host and invite --list (one kind each). Tables fit
80 columns; -l/--long adds files, --full whole fingerprints, --json prints
every field for scripts.
`

// listCommand makes the list command: one overview of what a home trusts.
func listCommand() *command {
	var lf listFlags
	return &command{
		name:    "list",
		uses:    globalHome | globalIdentity | globalPKI,
		args:    "[--json|--long|--full]",
		summary: "show what a home trusts, and the trust files it had to skip",
		help: `Prints one overview of the home: the identity (type, fingerprint, file;
with the next key of a rotation and the previous identities kept as
key.old.*), the authorized keys, the revoked keys, the pinned hosts, the
invitations (pending, used, expired), PKI mode's CA bundle and CRL and the
CAs installed in ca.d, by purpose (subjects, expiry, next update) and the
PROBLEMS: trust files that were skipped and why, each with the command that
fixes it when there is one. Each section is the table of its own --list
(authorize, revoke, trust-host, invite), in 80 columns; -l/--long adds
COMMENT and FILE, --full shows whole fingerprints.

--json prints one object: home, identity (with next and previous; null when
there is none), authorized, revoked, hosts and invitations (the arrays of
each --list --json), pki (kind, file, purpose, subject, until, status) and
problems (file, error, fix). The exit status is 0 even when there are
problems: they are listed.`,
		flags: func(set *pflag.FlagSet, _ *cli) { lf.register(set, "") },
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("list takes no argument (to list one kind: authorize, revoke, trust-host or invite --list)")
			}
			return c.overview(lf)
		},
	}
}

// overview is keytool list --json: a stable interface for scripts.
type overview struct {
	Home        string           `json:"home"`
	Identity    *identityInfo    `json:"identity"` // null: none usable
	Authorized  []authorizedInfo `json:"authorized"`
	Revoked     []revokedInfo    `json:"revoked"`
	Hosts       []hostInfo       `json:"hosts"`
	Invitations []inviteInfo     `json:"invitations"`
	PKI         []pkiInfo        `json:"pki"`
	Problems    []problemInfo    `json:"problems"`

	tables map[string]*table // the sections' tables, for the text form
	// authorizedN, hostsN: how many rows those tables make (Authorized
	// and Hosts stay empty: --json prints them from the stores).
	authorizedN, hostsN int
	// unusable: the identity is there but could not be used (its mode, a
	// bad file, several of them): the text says so, not just "none".
	unusable bool
	// said: the problems' messages, each printed once.
	said map[string]bool
}

// identityInfo is the home's identity in keytool list --json, with the
// keys of a rotation: the next key (announced, docs/rotation.md) and the
// identities a rotation replaced (key.old.*), kept until removed.
type identityInfo struct {
	Type        string         `json:"type"`
	Fingerprint string         `json:"fingerprint"`
	KeyID       string         `json:"key_id"`
	File        string         `json:"file"`
	Certificate string         `json:"certificate,omitempty"` // cert.pem, in PKI mode
	Next        *identityInfo  `json:"next,omitempty"`
	Previous    []identityInfo `json:"previous,omitempty"`
	Found       []identityInfo `json:"found,omitempty"` // key.found.*: keys a stopped rotation kept
}

// pkiInfo is a CA certificate of ca.pem, or a CRL of crl.pem.
type pkiInfo struct {
	Kind    string    `json:"kind"` // "ca" or "crl"
	File    string    `json:"file"`
	Purpose string    `json:"purpose,omitempty"` // an installed CA's (ca.d/PURPOSE/), "" for every purpose
	Subject string    `json:"subject"`           // a CRL's issuer
	Until   time.Time `json:"until"`             // a CA's NotAfter, a CRL's NextUpdate (zero: none)
	Status  string    `json:"status"`            // ok, expired, not yet valid; a CRL: ok, stale, not yet valid, not verified
}

// problemInfo is a trust input that could not be used, and its fix.
type problemInfo struct {
	File  string `json:"file,omitempty"`
	Error string `json:"error"`
	Fix   string `json:"fix,omitempty"`
}

func (c *cli) overview(lf listFlags) error {
	o := &overview{Home: c.home, Problems: []problemInfo{}, PKI: []pkiInfo{}, tables: map[string]*table{}, said: map[string]bool{}}
	c.overviewIdentity(o, lf)
	auth := c.localAuthStore()
	hosts := knownhosts.Load(knownhosts.HomeOptions(c.home))
	authorized, authTable := authorizedTable(auth, lf, c.inHome)
	o.tables["authorized"], o.authorizedN = authTable, auth.Len()
	revoked, revTable := revokedTable(auth, hosts, lf, c.inHome)
	o.Revoked, o.tables["revoked"] = slices.AppendSeq([]revokedInfo{}, iter.Seq[revokedInfo](revoked)), revTable
	pinned, hostTable := hostsTable(hosts, lf, c.inHome)
	o.tables["hosts"], o.hostsN = hostTable, len(hosts.Entries())
	invs, invProblems := enroll.ListInvites(enroll.InvitesDir(c.home))
	o.Invitations, o.tables["invitations"] = invitesTable(invs, lf, c.inHome)
	c.overviewPKI(o)
	for _, p := range auth.Problems() {
		o.problem(c, p)
	}
	for _, sh := range auth.SharedNames() {
		o.problem(c, sh)
	}
	for _, u := range auth.UnprintableNames() {
		o.problem(c, u)
	}
	for _, sk := range auth.SharedKeys() {
		o.problem(c, sharedKeyProblem{sk, sharedKeyFix(c, auth, sk)})
	}
	for _, p := range hosts.Problems() {
		o.problem(c, p)
	}
	for _, err := range invProblems {
		o.problem(c, err)
	}
	if lf.json {
		// Authorized and Hosts are printed as they are made, as the
		// text form counts them and makes its rows as it prints.
		return c.printObject(o, map[string]jsonArray{"authorized": authorized, "hosts": pinned})
	}
	return o.write(c.stdout, lf)
}

// sharedKeyProblem is a key several entries hold, with the command that
// leaves one (sharedKeyFix, which reads the store), as a problem.
type sharedKeyProblem struct {
	authkeys.SharedKey
	fix string
}

// problem adds err to the problems, once (the revocation inputs are read
// by both stores), with the command that fixes it.
func (o *overview) problem(c *cli, err error) {
	if o.said[err.Error()] {
		return
	}
	o.said[err.Error()] = true
	p := problemInfo{Error: err.Error(), Fix: c.fileFix(err)}
	var (
		kp   keydir.Problem
		pkiE *tlsbridge.PKIFileError
		pe   *trustfile.PermissionError
		none *jwk.NoIdentityError
		ck   *tlsbridge.CertKeyError
		nk   *tlsbridge.NextKeyWithoutIdentityError
		pk   *tlsbridge.PublicKeyError
	)
	var shared authkeys.SharedName
	var sharedKey sharedKeyProblem
	var unprintable authkeys.UnprintableName
	switch {
	case errors.As(err, &kp):
		p.File = kp.Path
	case errors.As(err, &sharedKey):
		p.File, p.Fix = sharedKey.Entries[1].File, sharedKey.fix
	case errors.As(err, &shared):
		p.Fix = c.command("authorize", "--remove", "FINGERPRINT") // of all but one of its keys: the admin's choice
	case errors.As(err, &unprintable):
		p.File, p.Fix = unprintable.Entry.File, c.command("authorize", "--remove", unprintable.Entry.Fingerprint) // or a rename: the warning of authorize --list says how
	case errors.As(err, &pkiE):
		p.File = pkiE.File
	case errors.As(err, &pe):
		p.File = pe.Path
	case errors.As(err, &none):
		p.Fix = c.command("gen")
	case errors.As(err, &ck):
		p.File = ck.File
	case errors.As(err, &nk):
		p.File = nk.File
	case errors.As(err, &pk):
		p.File = pk.File
	}
	o.Problems = append(o.Problems, p)
}

// overviewIdentity describes the identity, and its certificate in PKI
// mode; what cannot be read is a problem.
func (c *cli) overviewIdentity(o *overview, lf listFlags) {
	t := newTable(column{title: "KEY"}, column{title: "TYPE"}, column{title: "FINGERPRINT"}, column{title: "FILE", elastic: true, fromLeft: true})
	o.tables["identity"] = t
	path, err := c.identityPath()
	if err != nil {
		var none *jwk.NoIdentityError
		if errors.As(err, &none) && c.identity == "" {
			// Said as a server loading the home says it: a next key or
			// a cert.pem left without an identity is more than "no
			// identity", and gen alone is not its fix.
			_, err = c.loadIdentity()
		}
		o.unusable = !errors.As(err, &none)
		o.problem(c, err)
		return
	}
	read := func(role, path string) *identityInfo {
		k, err := c.readPrivateKey(path)
		if err != nil {
			o.problem(c, err)
			return nil
		}
		t.add(role, k.Algorithm(), lf.fingerprint(k.Fingerprint()), printable(c.inHome(path)))
		return &identityInfo{Type: k.Algorithm(), Fingerprint: k.Fingerprint(), KeyID: k.KeyID(), File: path}
	}
	if o.Identity = read("current", path); o.Identity == nil {
		o.unusable = true
		return
	}
	for _, p := range c.layout().Next() {
		if _, err := os.Lstat(p); err == nil {
			o.Identity.Next = read("next", p)
			break
		}
	}
	for _, p := range c.homeFiles(home.IsOld) {
		if in := read("previous", p); in != nil {
			o.Identity.Previous = append(o.Identity.Previous, *in)
		}
	}
	// Private keys too, left for the admin to decide on: a rotation that
	// stopped could not put them back (docs/rotation.md).
	for _, p := range c.homeFiles(home.IsFound) {
		if in := read("found", p); in != nil {
			o.Identity.Found = append(o.Identity.Found, *in)
		}
	}
	if _, err := os.Lstat(c.layout().Cert()); err == nil {
		o.Identity.Certificate = c.layout().Cert()
	}
	// The identity as a server loads it: the key with its certificate,
	// or with the next key it announces — a next key weaker than the
	// identity does not load (tlsbridge.CheckNextKey) though each key
	// reads, and a list that said "Problems: none" of a home no server
	// could start with was found by review, 2026-12-05. A home's own
	// identity is loaded always: its pub_key.* must be its public half
	// (tlsbridge.PublicKeyError), and a rotation cut short before it
	// wrote it is finished by the load. So is a key -i names: the public
	// half gen -i wrote beside it must be its own.
	if _, err := c.loadIdentity(); err != nil {
		o.problem(c, err)
	}
}

// homeFiles lists the files of the home whose names is says are of a
// kind — the identities rotations replaced (home.IsOld), the keys a
// stopped rotation kept (home.IsFound) —, the oldest first (their names
// hold the time).
func (c *cli) homeFiles(is func(name string) bool) []string {
	entries, _ := os.ReadDir(c.home) // sorted by name; an unreadable home has shown its problem already
	var out []string
	for _, e := range entries {
		if is(e.Name()) {
			out = append(out, filepath.Join(c.home, e.Name()))
		}
	}
	return out
}

// inHome names a file of the home relative to it, since the overview
// names the home once.
func (c *cli) inHome(path string) string {
	if rel, ok := c.relToHome(path); ok {
		return rel
	}
	return path
}

// overviewPKI describes PKI mode's CA bundle and CRL — --ca and --crl,
// else the home's ca.pem and crl.pem, as c.pki finds them; their load
// error is a problem (every CA-based decision fails).
func (c *cli) overviewPKI(o *overview) {
	t := newTable(column{title: "KIND"}, column{title: "FILE", elastic: true, fromLeft: true},
		column{title: "SUBJECT", elastic: true}, column{title: "UNTIL"}, column{title: "STATUS"})
	o.tables["pki"] = t
	if _, err := c.pki(); err != nil {
		o.problem(c, err)
	}
	ca, crl := c.caFile, c.crlFile
	if ca == "" {
		ca = c.layout().CA()
		if crl == "" {
			crl = c.layout().CRL()
		}
	}
	o.pkiFiles(ca, crl, "")
	cas, _ := tlsbridge.ReadCADir(c.layout().CADir()) // c.pki reported what cannot be read
	for _, in := range cas {
		o.pkiFiles(in.File, in.CRLFile, in.Purpose)
	}
	for _, p := range o.PKI {
		until := "-"
		if !p.Until.IsZero() {
			until = p.Until.UTC().Format(time.RFC3339)
		}
		t.add(strings.ToUpper(p.Kind), printable(c.inHome(p.File)), printable(p.Subject), until, p.Status)
	}
}

// pkiFiles adds the CA certificates of ca and the CRLs of crl, for
// purpose ("" for every purpose), to the overview.
func (o *overview) pkiFiles(ca, crl, purpose string) {
	now := time.Now()
	var cas []*x509.Certificate
	for _, b := range pemBlocks(ca, "CERTIFICATE") {
		cert, err := x509.ParseCertificate(b)
		if err != nil {
			continue // the load error says why
		}
		cas = append(cas, cert)
		status := "ok"
		switch {
		case now.After(cert.NotAfter):
			status = "expired"
		case now.Before(cert.NotBefore):
			status = "not yet valid"
		}
		o.PKI = append(o.PKI, pkiInfo{Kind: "ca", File: ca, Purpose: purpose, Subject: cert.Subject.String(), Until: cert.NotAfter, Status: status})
	}
	for _, b := range pemBlocks(crl, "X509 CRL") {
		list, err := x509.ParseRevocationList(b)
		if err != nil {
			continue
		}
		status := "not verified" // until a CA of its CA file is found to sign it
		for _, cert := range cas {
			if bytes.Equal(list.RawIssuer, cert.RawSubject) && list.CheckSignatureFrom(cert) == nil {
				status = "ok"
			}
		}
		switch {
		case status != "ok":
		case list.ThisUpdate.After(now.Add(tlsbridge.CRLClockSkew)):
			// PKI mode does not use it (a CA's clock wrong): shown ok,
			// the refusals of what its CA signed would go unexplained.
			status = "not yet valid"
		case !list.NextUpdate.IsZero() && now.After(list.NextUpdate):
			status = "stale"
		}
		o.PKI = append(o.PKI, pkiInfo{Kind: "crl", File: crl, Purpose: purpose, Subject: list.Issuer.String(), Until: list.NextUpdate, Status: status})
	}
}

// pemBlocks returns the DER of the blocks of type typ in file, read
// through the bounded reader; nothing when it cannot be read (c.pki says
// why) — a CRL in DER is one block.
func pemBlocks(file, typ string) [][]byte {
	if file == "" {
		return nil
	}
	data, _, err := trustfile.Read(file)
	if err != nil {
		return nil
	}
	return pemBlocksOf(data, typ)
}

// pemBlocksOf is pemBlocks of a file's content.
func pemBlocksOf(data []byte, typ string) [][]byte {
	if typ == "X509 CRL" && !bytes.Contains(data, []byte("-----BEGIN")) {
		return [][]byte{data}
	}
	var out [][]byte
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		if b.Type == typ {
			out = append(out, b.Bytes)
		}
	}
}

// write prints the overview: the home, then each section with its count
// and table, then the problems with their fixes.
func (o *overview) write(w io.Writer, lf listFlags) error {
	// A home that is not there is most often a typo in -H or
	// KEYTOOL_HOME: every section would say none, and the fix below says
	// to gen there, so the first line says it.
	missing := ""
	if _, err := os.Stat(o.Home); errors.Is(err, fs.ErrNotExist) {
		missing = " (does not exist)"
	}
	fmt.Fprintf(w, "Home: %s%s\n", printable(o.Home), missing)
	section := func(title string, n int, detail string, t *table) {
		if n == 0 {
			fmt.Fprintf(w, "\n%s: none\n", title)
			return
		}
		fmt.Fprintf(w, "\n%s: %s\n", title, detail)
		_ = t.write(w, lf.width())
	}
	count := func(n int) string { return strconv.Itoa(n) }
	switch {
	case o.Identity == nil && o.unusable:
		// Refused, not absent (review: "none" read as no key at all).
		fmt.Fprintf(w, "\nIdentity: none usable (see Problems)\n")
	case o.Identity == nil:
		section("Identity", 0, "", nil)
	default:
		fmt.Fprintf(w, "\nIdentity:\n")
		_ = o.tables["identity"].write(w, lf.width())
	}
	section("Authorized keys", o.authorizedN, count(o.authorizedN), o.tables["authorized"])
	section("Revoked keys", len(o.Revoked), count(len(o.Revoked)), o.tables["revoked"])
	section("Pinned hosts", o.hostsN, count(o.hostsN), o.tables["hosts"])
	section("Invitations", len(o.Invitations), count(len(o.Invitations))+inviteCounts(o.Invitations), o.tables["invitations"])
	section("PKI", len(o.PKI), count(len(o.PKI)), o.tables["pki"])
	if len(o.Problems) == 0 {
		fmt.Fprintf(w, "\nProblems: none\n")
		return nil
	}
	fmt.Fprintf(w, "\nProblems: %d\n", len(o.Problems))
	for _, p := range o.Problems {
		fmt.Fprintf(w, "  %s\n", printable(p.Error))
		if p.Fix != "" {
			fmt.Fprintf(w, "    fix with: %s\n", p.Fix)
		}
	}
	return nil
}

// inviteCounts is " (1 pending, 2 used)": the invitations by status.
func inviteCounts(infos []inviteInfo) string {
	var parts []string
	for _, s := range []string{"pending", "used", "expired"} {
		n := 0
		for _, in := range infos {
			if in.Status == s {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
