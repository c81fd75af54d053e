//go:build !unix

package trustfile

import "io/fs"

const openFlags = 0

// noFollow is nothing here: ReadListed follows a link as Read does where
// the system has no O_NOFOLLOW (and no owners for the rule to check).
const noFollow = 0

func isLinkRefused(error) bool { return false }

func ownerOf(fs.FileInfo) (int, bool) { return 0, false }
