package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/keytool/keytool/internal/keydir"
	"github.com/keytool/keytool/tlsbridge"
)

// reportUnlocked warns, one line each, of the lock files that store's
// edits went ahead without (keydir.UnlockedError), with what fixes each:
// the command is not failed — refusing to remove a key would be worse
// than the race (docs/design.md, "Concurrent writers") — but the admin
// learns that two keytools editing the directory at the same moment
// could undo each other's edits, and why. Said of the directory, not of
// this command's edit: the command may have written nothing (a name
// found taken under the lock, a key already authorized, a failure),
// and it may have written some files before it failed; the lock file
// wants its fix either way. Called once a command's edits are done.
func reportUnlocked(c *cli, cmd string, store unlockedStore) {
	for _, u := range store.Unlocked() {
		if u.Index {
			fmt.Fprintf(c.stderr, "keytool %s: warning: %v; %s\n", cmd, u, unlockedFix(u))
			continue
		}
		fmt.Fprintf(c.stderr, "keytool %s: warning: %v, so two keytools editing the same file at the same moment could undo each other's edits; %s\n",
			cmd, u, unlockedFix(u))
	}
}

// lockIdentity takes the lock of the identity's writers in dir
// (tlsbridge.LockIdentity: the home, or the directory of the key file -i
// names), for gen; done, called once the identity is written, warns of
// a lock file the writes went ahead without (reportIdentityUnlocked).
func (c *cli) lockIdentity(dir string) (unlock func(), done func(), err error) {
	unlock, unlocked, err := tlsbridge.LockIdentity(dir)
	if err != nil {
		return nil, nil, err
	}
	return unlock, func() { reportIdentityUnlocked(c, "gen", unlocked) }, nil
}

// reportIdentityUnlocked warns, as reportUnlocked does for a trust
// store's edits, that cmd wrote the identity without the lock of its
// writers (unlocked, from tlsbridge.LockIdentity; nothing when nil), with
// what fixes it: the command is not failed — refusing to make a key
// would be worse than the race (docs/design.md, "Concurrent writers").
func reportIdentityUnlocked(c *cli, cmd string, unlocked error) {
	var u *keydir.UnlockedError
	if !errors.As(unlocked, &u) {
		return
	}
	fmt.Fprintf(c.stderr, "keytool %s: warning: %v, so another keytool writing the identity at the same moment could leave its private key and public half from different runs; %s\n",
		cmd, u, unlockedFix(u))
}

// unlockedStore is a trust store whose edits say why they went ahead
// without their directory's lock (keydir.Lifecycle.Unlocked).
type unlockedStore interface {
	Unlocked() []*keydir.UnlockedError
}

// unlockedFix says what makes the lock file of u usable again: where the
// file itself is wrong, the command that fixes or removes it (keytool
// makes it again, right, at its next edit).
func unlockedFix(u *keydir.UnlockedError) string {
	path := shellQuote(u.Path)
	remake := "the next keytool makes it again"
	switch u.Reason {
	case keydir.LockNotRegular:
		if u.Mode&fs.ModeDir != 0 {
			return "to fix: rmdir " + path + " (" + remake + ")"
		}
		return "to fix: rm " + path + " (" + remake + ")"
	case keydir.LockOpenToOthers:
		return "to fix: chmod 600 " + path
	case keydir.LockOtherOwner:
		return "to fix: rm " + path + " (" + remake + ", the directory owner's)"
	case keydir.LockNotPermitted:
		if u.UID == os.Geteuid() {
			return "to fix: chmod 600 " + path
		}
		return fmt.Sprintf("run keytool as uid %d, the lock file's owner (or root): a directory two users may write is one the servers' strict modes refuse", u.UID)
	case keydir.LockNoFlock:
		return "mount the file system with locks (NFS: lockd, not -o nolock), or run one keytool at a time"
	case keydir.LockHeld:
		return "see which process holds it: fuser -v " + path
	case keydir.LockReplaced:
		return "something removes it while keytool takes it (config management purging what it does not manage?): leave it in place"
	}
	return "to fix: rm " + path + " (" + remake + ")"
}
