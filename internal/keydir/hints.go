package keydir

import (
	"path/filepath"
	"slices"
	"strings"
)

// hints are the paths events named since the last reload.
type hints struct {
	all   bool
	paths map[string]struct{}
	// early: the reload is the one applied the moment an event came
	// (burst.event), before the writer may have finished (a chmod after
	// the write): it publishes no new problem (Loader.holdEarly).
	early bool
}

func (h *hints) add(p string) {
	if h.paths == nil {
		h.paths = map[string]struct{}{}
	}
	h.paths[filepath.Clean(p)] = struct{}{}
}

func (h *hints) empty() bool { return !h.all && len(h.paths) == 0 }

// isAncestor reports whether a is a proper ancestor of b.
func isAncestor(a, b string) bool {
	if a == "/" {
		return b != "/" && strings.HasPrefix(b, "/")
	}
	return strings.HasPrefix(b, a) && len(b) > len(a) && b[len(a)] == filepath.Separator
}

// full reports whether the source at path must be examined as a whole: the
// path itself, one of its ancestors, or a Kubernetes ".." entry beside it
// (or, for a directory, inside it) changed.
func (h *hints) full(path string, dir bool) bool {
	if h.all {
		return true
	}
	parent := filepath.Dir(path)
	for p := range h.paths {
		if p == path || isAncestor(p, path) {
			return true
		}
		if strings.HasPrefix(filepath.Base(p), "..") {
			if d := filepath.Dir(p); d == parent || dir && d == path {
				return true
			}
		}
	}
	return false
}

// namesIn returns the sorted names of visible files in dir that events
// named.
func (h *hints) namesIn(dir string) []string {
	var names []string
	for p := range h.paths {
		if filepath.Dir(p) == dir && !Ignored(filepath.Base(p)) {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names
}

// keyFileName reports whether a name has a key file's extension (.json,
// .jwk, .pem, .pub): what keytool writes, and what keys are copied in as.
// A directory source reads any name that is not Ignored, but one without
// such an extension is more likely a tool's temporary (sed's sedXXXXXX,
// Puppet's NAME.puppettmp_N) about to be renamed over a key file.
func keyFileName(name string) bool {
	switch filepath.Ext(name) {
	case ".json", ".jwk", ".pem", ".pub":
		return true
	}
	return false
}

// Ignored reports whether a directory entry is not a key file: dotfiles
// (which covers Kubernetes' ..data and ..<timestamp> entries, vim's .*.swp
// and keytool's own .*.tmp), editor backups (*~, #*#) and *.tmp files.
func Ignored(name string) bool {
	return name == "" || name[0] == '.' || strings.HasSuffix(name, "~") ||
		strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".swp") ||
		strings.HasPrefix(name, "#") && strings.HasSuffix(name, "#")
}
