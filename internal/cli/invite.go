package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/enroll"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/spf13/pflag"
)

// inviteCommand makes the invite command, with flag variables of its own.
func inviteCommand() *command {
	var (
		name      string
		expires   string
		addresses []string
		list      bool
		lf        listFlags
		remove    string
		revoke    string // the deprecated name of --remove
		prune     bool
	)
	return &command{
		name:    "invite",
		uses:    globalHome | globalIdentity,
		args:    "[--name N] [--expires D] [--address ADDR…]  ·  --list [--json|--long|--full] | --remove NAME | --prune",
		summary: "make a one-time token that lets a client enroll (keytool join)",
		help: `Makes a one-time invitation and prints its token: one string, last on
standard output, alone on its line. Give it to the person setting up the
client (chat, ticket, mail); there, 'keytool join TOKEN' connects to the
token's address, checks that the server presents this identity's key (the
token carries its fingerprint, so there is no question to answer), and
sends the token's secret. The server then authorizes the client's key in
authorized_keys.d under the invitation's name, and the client pins the
server's key in trusted_hosts.d. The token works once, until it expires.

The server must serve enrollment on ADDR: keytool proxy --enroll, or a Go
server mounting the enroll package's handler.

  --name N        the client's entry name in authorized_keys.d (default:
                  client-XXXXXXXX); must not be taken by an authorized key
  --expires D     lifetime (1h, 90m, 7d, 2w) or an RFC 3339 time; default 1h
  --address ADDR  host:port where clients reach this server, tried in order;
                  repeat it or separate with commas. Required, unless the
                  identity key file has an "address" member listing them.

Stored: HOME/invites.d/NAME.json (mode 0600, directory 0700) with the name,
the SHA-256 of the secret (never the secret), the server's fingerprint, the
addresses and the times. A used invitation moves to invites.d/used/.

The token is a secret until it is used: invite refuses to print it into
a regular file that group or others may read ('invite > FILE' under the
usual umask, 022), before anything is made. Use
(umask 077 && keytool invite … > FILE), a file chmod-ed 600, or a pipe.

  --list           pending, expired and used invitations: NAME, STATUS,
                   EXPIRES, ADDRESSES and CLIENT (short fingerprint) in 80
                   columns; -l/--long adds FILE, --full whole fingerprints,
                   --json everything. "claimed since T": a client was
                   being enrolled then, or a server stopped while enrolling
                   it, and the token is refused until --remove
  --remove NAME    delete a pending invitation, claimed or not: its token
                   stops working (--revoke, its old name, still works;
                   'keytool revoke' is what refuses a key)
  --prune          delete the expired invitations, the records of used
                   ones (a client that tries a used token is then told the
                   invitation is unknown, not that it was used) and the
                   claims left of invitations gone

Example:
  keytool invite --name laptop --address db.example.com:8443 --expires 30m`,
		flags: func(set *pflag.FlagSet, _ *cli) {
			set.StringVar(&name, "name", "", "entry `NAME` the client's key will get (default: client-XXXXXXXX)")
			set.StringVar(&expires, "expires", "1h", "token lifetime (`D`: 1h, 30m, 7d) or RFC 3339 time")
			set.StringSliceVar(&addresses, "address", nil, "`ADDR` (host:port) where clients reach this server; repeatable")
			set.BoolVar(&list, "list", false, "list the invitations")
			lf.register(set, "with --list: ")
			set.StringVar(&remove, "remove", "", "delete the pending invitation `NAME`")
			set.StringVar(&revoke, "revoke", "", "deprecated: --remove")
			_ = set.MarkHidden("revoke")
			set.BoolVar(&prune, "prune", false, "delete expired invitations and the records of used ones")
		},
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q (the options are --name, --expires and --address)", args[0])
			}
			making := name != "" || len(addresses) > 0
			if revoke != "" {
				if remove != "" {
					return usagef("--revoke is the old name of --remove: give one of them")
				}
				fmt.Fprintln(c.stderr, "keytool invite: --revoke is deprecated, use --remove (it deletes an invitation; 'keytool revoke' refuses a key)")
				remove = revoke
			}
			switch {
			case prune:
				if making || list || remove != "" || lf.given() {
					return usagef("--prune takes no other option")
				}
				return c.pruneInvites()
			case list:
				if making || remove != "" {
					return usagef("--list takes no other option but --json")
				}
				return c.listInvites(lf)
			case remove != "":
				if making || lf.given() {
					return usagef("--remove takes no other option")
				}
				return c.removeInvite(remove)
			case lf.given():
				return usagef("--json, --long and --full go with --list")
			}
			return c.invite(name, expires, addresses)
		},
	}
}

// invite makes an invitation and prints its token last on stdout.
func (c *cli) invite(name, expires string, addresses []string) error {
	if err := c.checkTokenOutput(); err != nil {
		return err
	}
	id, err := c.loadIdentity()
	if err != nil {
		return err
	}
	var addrs []string
	for _, a := range addresses {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	// A bad address names where it came from: the flag (bad usage), or
	// the identity file's "address" member (a bad file).
	bad := func(err error) error { return usagef("--address: %v", err) }
	if len(addrs) == 0 {
		addrs, _ = id.Key.Attrs.Addresses()
		bad = func(err error) error {
			file, ferr := c.identityPath()
			if ferr != nil {
				file = "the identity"
			}
			return fmt.Errorf("%s: member \"address\" (the addresses invite uses without --address): %w", file, err)
		}
	}
	if len(addrs) == 0 {
		return usagef("invite needs --address HOST:PORT: where clients reach this server's enrollment endpoint (keytool proxy --enroll --listen ADDR …)")
	}
	for _, a := range addrs {
		if err := enroll.CheckAddress(a); err != nil {
			return bad(err)
		}
	}
	now := time.Now()
	exp, err := parseExpiry(expires, now)
	if err != nil {
		return usagef("--expires: %v", err)
	}
	clients, finish := c.adminAuthStore(authkeys.Lookups{Names: []string{name}})
	defer finish()
	inv, tok, err := enroll.NewInvite(enroll.InvitesDir(c.home), id.Key, enroll.InviteOptions{
		Name: name, Addresses: addrs, Expires: exp, Clients: clients, Now: func() time.Time { return now },
	})
	if err != nil {
		return err
	}
	enc, err := tok.Encode()
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stderr, "Invitation %q saved in %s (mode 0600; only a hash of the secret is kept).\n", inv.Name, inv.File)
	fmt.Fprintf(c.stderr, "  server key:  %s %s\n", id.Key.Algorithm(), id.Key.Fingerprint())
	fmt.Fprintf(c.stderr, "  addresses:   %s\n", strings.Join(inv.Addresses, ", "))
	fmt.Fprintf(c.stderr, "  expires:     %s (in %s); works once\n", inv.Expires.Format(time.RFC3339), inv.Expires.Sub(inv.Created))
	fmt.Fprintf(c.stderr, "  the client's key will be authorized as %q in %s\n", inv.Name, c.layout().AuthorizedDir())
	fmt.Fprintf(c.stderr, "On the client, run:  keytool join TOKEN   (or: keytool join - < FILE)\n")
	fmt.Fprintf(c.stderr, "This server must serve enrollment at that address: keytool%s proxy --enroll --listen ADDR --target …\n", c.homeFlag())
	fmt.Fprintf(c.stderr, "To cancel: %s\n", c.command("invite", "--remove", shellQuote(inv.Name)))
	fmt.Fprintln(c.stdout, enc)
	return nil
}

// inviteInfo is one invitation in invite --list --json.
type inviteInfo struct {
	Name              string    `json:"name"`
	Status            string    `json:"status"`
	Expires           time.Time `json:"expires"`
	Created           time.Time `json:"created"`
	Addresses         []string  `json:"addresses"`
	ServerFingerprint string    `json:"server_fingerprint"`
	Used              time.Time `json:"used,omitzero"`
	ClientFingerprint string    `json:"client_fingerprint,omitempty"`
	Claimed           time.Time `json:"claimed,omitzero"` // a pending invitation claimed since then (enroll.Invitation.Claimed)
	File              string    `json:"file"`
}

// invitesTable is the listing of the invitations, for invite --list and
// keytool list.
func invitesTable(invs []*enroll.Invitation, lf listFlags, file func(string) string) ([]inviteInfo, *table) {
	now := time.Now()
	infos := []inviteInfo{}
	t := newTable(column{title: "NAME", elastic: true}, column{title: "STATUS"}, column{title: "EXPIRES"},
		column{title: "ADDRESSES", elastic: true}, column{title: "CLIENT"})
	if lf.long {
		t.cols = append(t.cols, column{title: "FILE", elastic: true, fromLeft: true})
	}
	for _, inv := range invs {
		in := inviteInfo{Name: inv.Name, Status: inv.Status(now), Expires: inv.Expires, Created: inv.Created, Addresses: inv.Addresses,
			ServerFingerprint: inv.ServerFingerprint, Used: inv.Used, ClientFingerprint: inv.ClientFingerprint, Claimed: inv.Claimed, File: inv.File}
		infos = append(infos, in)
		status := in.Status
		if status == "pending" && !in.Claimed.IsZero() {
			// A client is being enrolled, or a server stopped while
			// enrolling one: the token is refused until invite --remove.
			status = "claimed since " + in.Claimed.UTC().Format("2006-01-02T15:04Z") // to the minute: 80 columns
		}
		client := "-"
		if in.ClientFingerprint != "" {
			client = lf.fingerprint(in.ClientFingerprint)
		}
		row := []string{printable(in.Name), status, in.Expires.UTC().Format(time.RFC3339), printable(strings.Join(in.Addresses, ",")), client}
		if lf.long {
			row = append(row, printable(file(in.File)))
		}
		t.add(row...)
	}
	return infos, t
}

func (c *cli) listInvites(lf listFlags) error {
	dir := enroll.InvitesDir(c.home)
	invs, problems := enroll.ListInvites(dir)
	reportSkipped(c, "invite", problems)
	infos, t := invitesTable(invs, lf, c.underHome)
	return c.printList(lf, infos, t,
		fmt.Sprintf("No invitations in %s; make one with: keytool%s invite --address HOST:PORT", dir, c.homeFlag()))
}

func (c *cli) removeInvite(name string) error {
	inv, err := enroll.RevokeInvite(enroll.InvitesDir(c.home), name)
	if inv == nil {
		return err
	}
	// Removed, even where its directory could not be synced (err says
	// that after), as revoke says a key revoked.
	fmt.Fprintf(c.stdout, "Removed invitation %q (%s): its token no longer works\n", inv.Name, printable(inv.File))
	if !inv.Claimed.IsZero() {
		fmt.Fprintf(c.stderr, "Warning: it was claimed since %s: a client may have been enrolling with its token then (or a server stopped while enrolling it), and one that succeeds is authorized as %q. Check with: %s\n",
			inv.Claimed.UTC().Format(time.RFC3339), inv.Name, c.command("authorize", "--list"))
	}
	return err
}

func (c *cli) pruneInvites() error {
	removed, skipped, failed := enroll.PruneInvites(enroll.InvitesDir(c.home), time.Now())
	reportSkipped(c, "invite", skipped)
	for _, inv := range removed {
		what := "expired " + inv.Expires.UTC().Format(time.RFC3339)
		switch {
		case strings.HasSuffix(inv.File, ".claim"):
			// Left by a server that stopped while enrolling a client.
			fmt.Fprintf(c.stdout, "Deleted a claim of invitation %q (claimed %s, the invitation gone): %s\n", inv.Name, inv.Claimed.UTC().Format(time.RFC3339), printable(inv.File))
			continue
		case !inv.Used.IsZero():
			what = "used " + inv.Used.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(c.stdout, "Deleted invitation %q (%s): %s\n", inv.Name, what, printable(inv.File)) // %q escapes what printable would
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not delete %d invitation(s): %w", len(failed), errors.Join(failed...))
	}
	if len(removed) == 0 {
		fmt.Fprintln(c.stdout, "No expired or used invitations to delete")
	}
	return nil
}

// checkTokenOutput refuses to print a token into a regular file that
// group or others may read — what the shell makes of "keytool invite >
// token.txt" under the usual umask, 022: whoever of the machine's users
// reads the token before its client does enrolls a key of their own
// under its name. Nor into one another user owns, whatever its mode: one
// who made it beforehand (mode 0602, say, where the administrator would
// write the token) reads it as its owner. It runs before anything is
// made. A pipe, a terminal and a file only its owner may read (umask 077,
// or chmod 600 first), owned by this user, root, or under sudo the user
// who ran it, are written to, as is a writer that is not a file (Main's
// caller's).
func (c *cli) checkTokenOutput() error {
	f, ok := c.stdout.(*os.File)
	if !ok || runtime.GOOS == "windows" { // no POSIX modes there
		return nil
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil
	}
	owner, known := trustfile.Owner(fi)
	another := known && !tokenFileOwnerTrusted(owner)
	if fi.Mode().Perm()&0o044 == 0 && !another {
		return nil
	}
	file := "standard output"
	if p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd()))); err == nil {
		file = p // Linux: the file's name
	}
	e := &tokenFileError{file: file, mode: fi.Mode().Perm(), owner: -1}
	if another {
		e.owner = owner
	}
	return e
}

// tokenFileOwnerTrusted reports whether a token file owned by uid is
// this user's to write to: the effective user's own, root's, or, when
// root runs invite under sudo (the shell of the user who ran sudo made
// the file), that user's. SUDO_UID is the environment's word, believed
// only by root: whoever sets root's environment is root already.
func tokenFileOwnerTrusted(uid int) bool {
	euid := os.Geteuid()
	if uid == euid || uid == 0 {
		return true
	}
	sudo, err := strconv.Atoi(os.Getenv("SUDO_UID"))
	return euid == 0 && err == nil && uid == sudo
}

// tokenFileError: invite's standard output is a regular file that group
// or others may read, or that another user owns, where the token would
// be printed.
type tokenFileError struct {
	file  string // its name, or "standard output"
	mode  fs.FileMode
	owner int // the user owning it, if not this one; else -1
}

func (e *tokenFileError) Error() string {
	who := fmt.Sprintf("mode %04o, which other users of this machine may read", e.mode)
	if e.owner >= 0 {
		who = fmt.Sprintf("owned by another user (uid %d), who may read it", e.owner)
	}
	return fmt.Sprintf("the token would go to %s, %s: one who read it before its client could enroll a key of their own with it; no invitation was made",
		printable(e.file), who)
}
