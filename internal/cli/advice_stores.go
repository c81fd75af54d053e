package cli

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/keytool/keytool/authkeys"
	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/home"
	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
	"github.com/keytool/keytool/jwk"
	"github.com/keytool/keytool/knownhosts"
	"github.com/keytool/keytool/tlsbridge"
)

// adviseHostScope returns the advice for a host key pinned, but not for
// this connection: without an address for names its certificate does not
// give, or for other purposes only; or "".
func (c *cli) adviseHostScope(err error) string {
	var (
		unnamed *knownhosts.NameMismatchError
		forSome *knownhosts.PurposesOnlyError
	)
	switch {
	case errors.As(err, &unnamed):
		how := "Connect by a name its certificate names"
		if len(unnamed.Names) == 0 {
			how = "Its certificate names no host (the server's identity can save names, keeping its key, with: keytool gen --host NAME --keep-key)"
		}
		return fmt.Sprintf("%s pins that key without an address, for the names its certificate gives only. %s, or, after checking the fingerprint with the host's administrator, pin the key for this address:\n  %s",
			unnamed.File, how, c.pinCommand(unnamed.Addr, "--fingerprint", unnamed.Fingerprint))
	case errors.As(err, &forSome):
		return c.purposesOnlyAdvice(forSome)
	}
	return ""
}

// adviseStores returns the advice for the errors of the trust stores
// (authkeys, knownhosts), or "".
func (c *cli) adviseStores(err error) string {
	var (
		unknown   *knownhosts.UnknownHostError
		skipped   *knownhosts.SkippedFilesError
		hRevoked  *knownhosts.RevokedError
		hNotFound *knownhosts.NotFoundError
		hExists   *knownhosts.FileExistsError
		notAuth   *authkeys.NotAuthorizedError
		aRevoked  *authkeys.RevokedError
		expired   *authkeys.ExpiredError
		nameTaken *authkeys.NameExistsError
		already   *authkeys.AlreadyAuthorizedError
		aNotFound *authkeys.NotFoundError
		still     *authkeys.StillAuthorizedError
		covered   *coveredPinError
	)
	switch {
	case errors.As(err, &skipped):
		var b strings.Builder
		b.WriteString("Pinned host keys were skipped, so no host is trusted on first use until they are fixed:\n")
		for i, p := range skipped.Problems {
			if i == maxSkippedShown { // as reportSkipped counts them
				fmt.Fprintf(&b, "  and %d more: %s lists them all\n", len(skipped.Problems)-i, c.command("list"))
				break
			}
			fmt.Fprintf(&b, "  %s\n", termtext.SafeLines(p.Error()))
			if fix := c.fileFix(p.Err); fix != "" {
				fmt.Fprintf(&b, "    fix with: %s\n", termtext.Safe(fix))
			}
		}
		return b.String()
	case errors.As(err, &unknown):
		return c.unknownHostAdvice(err, unknown)
	case errors.As(err, &hRevoked) && hRevoked.Err != nil, errors.As(err, &aRevoked) && aRevoked.Err != nil:
		if fix := c.fileFix(err); fix != "" {
			return "Every key is refused until the revocation list is fixed: " + fix
		}
		return "Every key is refused until the revocation list can be read again."
	case errors.As(err, &hRevoked):
		return "To lift the revocation: " + c.command("revoke", "--remove", hRevoked.Fingerprint)
	case errors.As(err, &aRevoked):
		return "To lift the revocation: " + c.command("revoke", "--remove", aRevoked.Fingerprint)
	case errors.As(err, &covered):
		return c.coveredAdvice(covered)
	case errors.As(err, &hNotFound):
		if hint := c.shortenedHint(cmp.Or(hNotFound.Key, hNotFound.Query), "trust-host", "--list"); hint != "" {
			return hint
		}
		return "List the pinned hosts with: " + c.command("trust-host", "--list")
	case errors.As(err, &hExists):
		return "Move that file away, or remove the pin it may hold: " + c.command("trust-host", "--remove", shellQuote(hExists.Addr))
	case errors.As(err, &notAuth):
		return "To let it in, save the client's public key to a file and run: " + c.command("authorize", "--name", "NAME", "FILE")
	case errors.As(err, &expired):
		return fmt.Sprintf("To renew it, edit \"expires\" in %s, or run: %s", shellQuote(expired.Entry.File),
			c.command("authorize", "--force", "--name", shellQuote(expired.Entry.Name), "--expires", "TIME", "FILE"))
	case errors.As(err, &nameTaken):
		return fmt.Sprintf("Choose another name, or see the entries holding it (%s) with %s and remove them first: %s",
			termtext.Safe(nameTaken.File), c.command("authorize", "--list", "--long"), c.command("authorize", "--remove", shellQuote(nameTaken.Name)))
	case errors.As(err, &already):
		return fmt.Sprintf("To rename it: %s, then add it again", c.command("authorize", "--remove", entryRef(already.Entry)))
	case errors.As(err, &aNotFound) && aNotFound.Revoked:
		return cmp.Or(c.shortenedHint(aNotFound.Query, "revoke", "--list"), "List the revoked keys with: "+c.command("revoke", "--list"))
	case errors.As(err, &aNotFound):
		return cmp.Or(c.shortenedHint(aNotFound.Query, "authorize", "--list"), "List the authorized keys with: "+c.command("authorize", "--list"))
	case errors.As(err, &still):
		return "It still gets in. To remove that entry too: " + c.command("authorize", "--remove", entryRef(still.Entry))
	}
	return ""
}

// unknownHostAdvice is the advice for a host no pin applies to, or ""
// for a *tlsbridge.NotPinnedError, which is one too and of which
// adviseTLS says more (the other addresses its key is pinned for).
func (c *cli) unknownHostAdvice(err error, unknown *knownhosts.UnknownHostError) string {
	if errors.As(err, new(*tlsbridge.NotPinnedError)) {
		return ""
	}
	return fmt.Sprintf("After checking that fingerprint with the host's administrator, pin it with:\n  %s",
		c.pinCommand(unknown.Addr, "--fingerprint", unknown.Fingerprint))
}

// purposesOnlyAdvice says what to do about a connection without a purpose
// that met a key pinned for some purposes only: connect for one of them,
// or pin the key for every purpose once it is checked — beside the other
// keys pinned for the address, if any (--add: without it they make it a
// changed key), which keeps their pins as they are; unpinning them is not
// advice to give unasked.
func (c *cli) purposesOnlyAdvice(e *knownhosts.PurposesOnlyError) string {
	connect := fmt.Sprintf("A key pinned for some purposes is trusted for those only, not for a connection without a purpose. Connect for its purpose (--purpose %s)", e.Purposes[0])
	if len(e.Others) > 0 {
		others := make([]string, len(e.Others))
		for i, w := range e.Others {
			others[i] = w.Fingerprint
		}
		return fmt.Sprintf("%s, or, after checking the fingerprint with the host's administrator, pin it for every purpose beside the other keys %s pins (%s), which keep their pins:\n  %s",
			connect, e.Addr, strings.Join(others, ", "), c.pinCommandFor(nil, e.Addr, "--add", "--fingerprint", e.Fingerprint))
	}
	return fmt.Sprintf("%s, or, after checking the fingerprint with the host's administrator, pin it for every purpose:\n  %s",
		connect, c.pinCommandFor(nil, e.Addr, "--fingerprint", e.Fingerprint))
}

// adviseName returns the advice for a name refused for a character that
// is not shown as itself or for letters of several scripts, or "".
func adviseName(err error) string {
	var badChar *keydir.NameCharError
	var mixed *keydir.NameScriptError
	switch {
	case errors.As(err, &badChar):
		return nameCharAdvice(badChar)
	case errors.As(err, &mixed):
		return nameScriptAdvice
	}
	return ""
}

// nameScriptAdvice says what to do about a name mixing scripts
// (keydir.NameScriptError). No name is suggested: which letter was meant
// (a Latin a for the Cyrillic а, or the reverse) only its writer knows.
const nameScriptAdvice = "A name is shown as written (keytool list, logs, X-Keytool-Name), and one mixing scripts can read as another client's name: " +
	"type the name again in one script (Latin may go with Han and Kana, Bopomofo or Hangul)"

// nameCharAdvice says what to do about a name holding a character that is
// not shown as itself (keydir.NameCharError): give it without.
func nameCharAdvice(e *keydir.NameCharError) string {
	without := strings.Map(func(r rune) rune {
		switch {
		case keydir.PrintableName(string(r)):
			return r
		case unicode.Is(unicode.Zs, r):
			return ' '
		}
		return -1
	}, e.Name)
	advice := "A name is shown as written (keytool list, logs, X-Keytool-Name), and that character would show it as another: type the name again"
	if keydir.CheckName(without) == nil {
		return fmt.Sprintf("%s, without it: --name %s", advice, shellQuote(without))
	}
	return advice + ", of printable characters only"
}

// entryRef names an authorized entry for authorize --remove: its name, or
// its key's fingerprint when it has none (an unnamed key in a single
// file), since an empty name to --remove names nothing.
func entryRef(e *authkeys.Entry) string {
	if e.Name == "" {
		return e.Fingerprint
	}
	return shellQuote(e.Name)
}

// keyChangedAdvice is OpenSSH's warning about a changed host key, naming
// every key pinned for the address, with the commands that replace the pin
// when the change is expected, or add the key beside the pins when the host
// announced it as an additional key. Those commands give the key as
// trust-host did when it met the change (repin), else by its fingerprint.
func (c *cli) keyChangedAdvice(e *knownhosts.KeyChangedError, repin *repinError) string {
	key := []string{"--fingerprint", e.Fingerprint}
	if repin != nil && repin.keyFile != "" {
		key = []string{"--key", shellQuote(repin.keyFile)}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The host key of %s has changed!\n", e.Addr)
	fmt.Fprintf(&b, "  it presented now:  %s\n", e.Fingerprint)
	for _, w := range e.Want {
		fmt.Fprintf(&b, "  pinned before:     %s  (in %s)\n", w.Fingerprint, termtext.Safe(w.File))
	}
	b.WriteString("Either the host was reinstalled with a new key, or someone is intercepting the connection (a man-in-the-middle attack).\n")
	b.WriteString("Check the new fingerprint with the host's administrator through another channel. If the change is expected, replace the pin:\n")
	// Unpin the addresses as the pins hold them (a pin without a port
	// holds every port: removing the dialled host:port would not find it).
	seen := map[string]bool{}
	for _, w := range e.Want {
		addr := cmp.Or(w.Address, e.Addr)
		if !seen[addr] {
			seen[addr] = true
			fmt.Fprintf(&b, "  %s\n", c.command("trust-host", "--remove", shellQuote(addr)))
		}
	}
	// The purposes trust-host was asked to pin for, not a connection's:
	// after --remove ADDR, which unpins every purpose, a pin for the
	// connection's purpose alone would lose the others.
	fmt.Fprintf(&b, "  %s\n", c.pinCommandFor(c.pinPurposes, e.Addr, key...))
	// A host rolling its key over announces the new one beforehand: then
	// both are pinned for a while, the old one is not removed.
	b.WriteString("If the host announced this key as an additional one (a key rollover), keep the pinned keys and add it, only after checking it:\n")
	fmt.Fprintf(&b, "  %s", c.pinCommandFor(c.pinPurposes, e.Addr, append([]string{"--add"}, key...)...))
	return b.String()
}

// adviseFiles returns the advice for a trust file refused by the
// strict-mode rule or a private key others can read, or "".
func (c *cli) adviseFiles(err error) string {
	var (
		none      *jwk.NoIdentityError
		several   *jwk.SeveralIdentitiesError
		encrypted *encryptedKeyError
		notPriv   *jwk.NotPrivateKeyError
		unsynced  *atomicfile.UnsyncedError
	)
	switch {
	case errors.As(err, &unsynced):
		// Running the command again would find the change made, and say
		// nothing of the disk.
		return "The change is made, and in effect; the disk did not confirm it (its errors are in dmesg). Once the disk is sound, run: sync — until then a power loss may undo the change."
	case errors.As(err, &notPriv) && c.identity != "":
		return "-i names the identity, a file holding its private key (ssh's id_ed25519, not id_ed25519.pub); to make one: keytool -i FILE gen"
	case errors.As(err, &encrypted):
		return encryptedKeyAdvice(encrypted)
	case errors.As(err, &none):
		return "Create one with: " + c.command("gen")
	case errors.As(err, &several):
		return "Keep one and move the others away."
	}
	if fix := c.fileFix(err); fix != "" {
		return "Fix with: " + termtext.Safe(fix)
	}
	return ""
}

// homeOwner returns the uid that owns the home, or -1.
func (c *cli) homeOwner() int {
	fi, err := os.Stat(c.home)
	if err != nil {
		return -1
	}
	if uid, ok := trustfile.Owner(fi); ok {
		return uid
	}
	return -1
}

// isInHome reports whether path is the home or inside it.
func (c *cli) isInHome(path string) bool {
	home, err := filepath.Abs(c.home)
	if err != nil {
		return false
	}
	if real, err := filepath.EvalSymlinks(home); err == nil {
		home = real
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(home, abs)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// fileFix is the shell command that fixes a file refused for its modes,
// its owner or a dangling link, or "".
func (c *cli) fileFix(err error) string {
	var (
		pe   *trustfile.PermissionError
		le   *trustfile.LinkError
		priv *jwk.PermissionError
		skip *SkippedEntryError
		sub  *keydir.RevocationSubdirectoryError
		ck   *tlsbridge.CertKeyError
		nk   *tlsbridge.NextKeyWithoutIdentityError
		pk   *tlsbridge.PublicKeyError
	)
	switch {
	case errors.As(err, &pk):
		return c.publicHalfFix(pk)
	case errors.As(err, &ck) && ck.Key == "":
		return fmt.Sprintf("%s && %s, then install the certificate your CA issues for the new key as %s",
			c.certAside(ck.File), c.command("gen"), shellQuote(ck.File))
	case errors.As(err, &ck):
		return fmt.Sprintf("install the certificate your CA issues for key %s as %s, or move it aside to present a self-signed certificate: %s",
			ck.Key, shellQuote(ck.File), c.certAside(ck.File))
	case errors.As(err, &nk):
		return c.nextKeyFix(nk)
	case errors.As(err, &skip):
		return c.removeUnheldCommand(skip.Kind, skip.Name)
	case errors.As(err, &pe) && pe.Mode.IsDir() && !c.isInHome(pe.Path):
		// A directory outside the home (/tmp, someone else's), too open
		// or not its owner's, is not ours to change: the trust file does
		// not belong there.
		what := cmp.Or(pe.For, pe.Path)
		return fmt.Sprintf("move %s into a directory that only you or root may write (%s is not one)", shellQuote(what), shellQuote(pe.Path))
	case errors.As(err, &pe) && pe.Owner >= 0 && !c.isInHome(pe.Path):
		// A file of another user's outside the home: taking it from its
		// owner (chown) is not the fix; a copy of one's own is.
		return fmt.Sprintf("copy %s to a file of your own, in a directory that only you or root may write, and use that instead (%s is owned by uid %d)", shellQuote(pe.Path), shellQuote(pe.Path), pe.Owner)
	case errors.As(err, &pe) && pe.Owner > 0 && pe.Euid == 0 && c.homeOwner() == pe.Owner:
		// Root in a service's home, meeting the service's own file: it
		// is the service's to keep (chown 0 of its home or key.json
		// would lock the service out); the command is the service's to
		// run.
		return fmt.Sprintf("run the command as uid %d, the home's owner: sudo -u '#%d' %s (or, for root to own it: chown 0 %s)",
			pe.Owner, pe.Owner, typedCommand(c.argv), shellQuote(pe.Path))
	case errors.As(err, &pe) && pe.Owner >= 0:
		return "chown " + strconv.Itoa(os.Geteuid()) + " " + shellQuote(pe.Path)
	case errors.As(err, &pe):
		return "chmod go-w " + shellQuote(pe.Path)
	case errors.As(err, &le):
		// Restoring comes first: for a revocation list, removing the link
		// would lift its revocations.
		return "restore the file the link points to, or remove the link: rm " + shellQuote(le.Path)
	case errors.As(err, &priv):
		return "chmod 600 " + shellQuote(priv.File)
	case errors.As(err, &sub):
		// Renaming it away first would lift whatever it was meant to
		// revoke: the files come up first.
		dot := filepath.Join(filepath.Dir(sub.Path), "."+filepath.Base(sub.Path))
		return "move the revocations in it up into " + shellQuote(filepath.Dir(sub.Path)) + ", then: mv " + shellQuote(sub.Path) + " " + shellQuote(dot)
	}
	return ""
}

// publicHalfFix writes the key's public half over a public file that is
// not it (tlsbridge.PublicKeyError): keytool pub reads the key file
// itself, not the home the error refuses, and prints what gen and rotate
// write there — the home's identity (pub_key.*), its next key
// (pub_key.next.*, named as pub's FILE), or the key -i names (pub_NAME.*
// beside it: keytool -i FILE pub, as the user gave -i). A pub_key.next.*
// of a home with no next key is the public half of no key of the home:
// removed.
func (c *cli) publicHalfFix(pk *tlsbridge.PublicKeyError) string {
	format := ""
	if filepath.Ext(pk.File) == ".pem" {
		format = " -f pem"
	}
	switch {
	case pk.Next && pk.KeyFile == "":
		return "rm " + shellQuote(pk.File)
	case pk.Next:
		return fmt.Sprintf("keytool -H %s pub%s %s > %s", shellQuote(filepath.Dir(pk.KeyFile)), format, shellQuote(pk.KeyFile), shellQuote(pk.File))
	case c.identity != "" && pk.KeyFile == c.identity:
		return fmt.Sprintf("keytool -i %s pub%s > %s", shellQuote(c.identity), format, shellQuote(pk.File))
	}
	return fmt.Sprintf("keytool -H %s pub%s > %s", shellQuote(filepath.Dir(pk.KeyFile)), format, shellQuote(pk.File))
}

// nextKeyFix is what to do with a home that holds a next key and no
// identity (tlsbridge.NextKeyWithoutIdentityError): make the next key the
// identity (rotate, tlsbridge.RotateHome), as a rotation would have; or
// make a new identity, which announces it (gen --force); or, if the
// identity was removed because it was compromised, remove the next key,
// which lay beside it, then make a new identity.
func (c *cli) nextKeyFix(nk *tlsbridge.NextKeyWithoutIdentityError) string {
	rm := "rm " + shellQuote(nk.File)
	for _, p := range home.Dir(nk.Home).NextPublic() {
		if _, err := os.Lstat(p); err == nil {
			rm += " " + shellQuote(p)
		}
	}
	return fmt.Sprintf("make the next key the identity (peers that learned it accept it): %s; or make a new identity, which announces it: %s; if the identity was removed because it was compromised, the next key beside it may be too: %s, then: %s",
		c.command("rotate"), c.command("gen", "--force"), rm, c.command("gen"))
}

// adviseSync returns the advice for a sync that left the home as it is,
// its lists of the store older than what the home was mirrored to
// (*syncBehindError): run again (a member behind the others catches up),
// or, for a store restored from a backup to an older revision, the
// command as the user typed it with --restored (its URL's password
// hidden); else "".
func (c *cli) adviseSync(err error) string {
	var behind *syncBehindError
	if !errors.As(err, &behind) {
		return ""
	}
	args := slices.Clone(c.argv)
	for i, a := range args {
		if strings.Contains(a, "://") {
			args[i] = redactURL(a)
		}
	}
	if !slices.Contains(args, "--restored") {
		args = append(args, "--restored")
	}
	return "A member of the store behind the others answers it: run the sync again later. If the store was restored from a backup to an older revision, mirror it as it now is:\n  " + typedCommand(args)
}
