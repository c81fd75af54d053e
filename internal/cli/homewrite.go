package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// homeToWrite is asked by a command about to write a trust entry into
// the home — authorize, revoke, trust-host, join, and a client whose
// policy pins on first contact (connect, proxy --client) — before it
// writes anything.
// A home named by -H or $KEYTOOL_HOME that does not exist is refused,
// nothing written: most often it is a typo, and the entry would land
// where no server reads — a revoke into a mistyped -H said "Revoked"
// while the server still let the key in (found by review), where
// ssh-keygen -R HOST -f TYPO fails. The default home (~/.keytool) is
// made, private, as ssh makes ~/.ssh for its first known host.
func (c *cli) homeToWrite() error {
	if _, err := os.Lstat(c.home); !errors.Is(err, fs.ErrNotExist) {
		return nil // there, or not to be known: the write says why
	}
	if c.homeGiven == "" && os.Getenv("KEYTOOL_HOME") == "" {
		if err := os.Mkdir(c.home, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	}
	by := "-H"
	if c.homeGiven == "" {
		by = "$KEYTOOL_HOME"
	}
	return &noHomeError{home: c.home, by: by, gen: c.command("gen")}
}

// noHomeError refuses a write into a home that does not exist
// (homeToWrite, and sync's --to: syncer.checkHome).
type noHomeError struct {
	home string
	by   string // what named it: -H, $KEYTOOL_HOME, --to
	gen  string // the command that makes it, with an identity
}

func (e *noHomeError) Error() string {
	return fmt.Sprintf("the home %s does not exist (a typo in %s?): nothing was written; make it first, with its identity: %s (or: mkdir -m 700 %s)",
		e.home, e.by, e.gen, shellQuote(e.home))
}
