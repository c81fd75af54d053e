//go:build !unix

package trustfile

import "io/fs"

const openFlags = 0

// noFollow is nothing here: ReadListed follows a link as Read does where
// the system has no O_NOFOLLOW (and no owners for the rule to check).
const noFollow = 0

func isLinkRefused(error) bool { return false }

// Owner returns no owner: the system has none to say (stat_unix.go).
func Owner(fs.FileInfo) (int, bool) { return 0, false }
