package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keytool/keytool/internal/atomicfile"
	"github.com/keytool/keytool/internal/termtext"
	"github.com/keytool/keytool/internal/trustfile"
)

// syncTag names the temporary files of sync's writes (the .d files it
// places, its manifest): ".NAME.DIGITS.keytool-sync.tmp", a name no other
// writer's temporary file has (atomicfile.Tag). Every such write is made
// under sync's lock (prepare), so under that lock a file of that name is
// one a sync killed mid-write left (kill -9, a power cut): the write
// that made it has ended, and no sync is writing it. Untagged, it was
// ".NAME.DIGITS.tmp", which keytool authorize or revoke writing the same
// directory (their lock is not sync's) names its temporary files too:
// none of them could be told from a live write of theirs, and every sync
// killed mid-write left one for good (TestSyncRemovesWhatAKilledSyncLeft).
const syncTag = atomicfile.Tag("keytool-sync")

// syncScratchPrefix begins the name of the directory sharedFiles makes,
// and removes, in a .d directory: os.MkdirTemp's random digits follow.
const syncScratchPrefix = ".keytool-sync-names-"

// removeLeft removes, under sync's lock (mirror: at a full pass, not at
// each change of sync --watch, which would read directories of 100,000
// files for each), what syncs killed mid-write left in the home: the
// temporary files of sync's writes (syncTag) in the home and its .d
// directories, and sharedFiles' scratch directories. Only what is
// provably sync's: named so (a name only sync gives), a regular file (a
// directory for the scratch one; a link is never followed nor removed),
// owned by the effective user, and not being written — every sync's
// write of such a name is made under the lock held here. Where flock does
// not work (the lock not held), only those unwritten for
// atomicfile.StaleAge. The untagged temporary files of the manifest
// that a keytool before the tag left are removed as atomicfile.RemoveStale
// does (an hour unwritten): only sync writes that name. Each removal is
// said on stderr; a failed look or removal leaves the file, unsaid.
func (s *syncer) removeLeft() {
	euid, stale := os.Geteuid(), time.Now().Add(-atomicfile.StaleAge)
	var removed []string
	dirs := []string{string(s.home)}
	for _, kind := range StoreKinds {
		dirs = append(dirs, kindDir(s.home, kind))
	}
	for i, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name := e.Name()
			temp, scratch := syncTag.IsTemp(name), i > 0 && isScratchDir(name)
			if !temp && !scratch {
				continue
			}
			p := filepath.Join(dir, name)
			fi, err := os.Lstat(p)
			switch {
			case err != nil, temp && !fi.Mode().IsRegular(), scratch && !fi.IsDir(),
				!s.locked && !fi.ModTime().Before(stale):
				continue
			}
			if uid, ok := trustfile.Owner(fi); !ok || uid != euid {
				continue
			}
			if scratch {
				err = os.RemoveAll(p) // never follows a link in it
			} else {
				err = os.Remove(p)
			}
			if err == nil {
				removed = append(removed, p)
			}
		}
	}
	removed = append(removed, atomicfile.RemoveStale(s.manifestPath())...)
	for _, p := range removed {
		fmt.Fprintf(s.c.stderr, "keytool sync: removed %s, left by a sync cut short while it wrote\n", termtext.Safe(p))
	}
}

// isScratchDir reports whether name is one sharedFiles gives its scratch
// directory: syncScratchPrefix, then os.MkdirTemp's digits.
func isScratchDir(name string) bool {
	digits, ok := strings.CutPrefix(name, syncScratchPrefix)
	return ok && digits != "" && strings.Trim(digits, "0123456789") == ""
}
