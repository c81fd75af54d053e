// Package toolpath finds the programs tests run (nsd, unbound, nginx and
// the tools the documentation's examples need): in PATH first, then in the
// sbin directories where Debian installs daemons, which the PATH of a user
// other than root usually lacks. Every test that needs such a program
// looks it up here, so that two tests never disagree on whether it is
// installed — one skipping, silently, what the other runs.
package toolpath

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SbinDirs are the directories searched after PATH.
var SbinDirs = []string{"/usr/sbin", "/sbin", "/usr/local/sbin"}

// Find returns the path of the program name: from PATH, else from
// SbinDirs, else from the extra directories given (such as a program's
// own install prefix). An error says where it looked.
func Find(name string, extra ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	dirs := append(append([]string{}, SbinDirs...), extra...)
	for _, dir := range dirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (not in PATH, nor in %s)", name, strings.Join(dirs, ", "))
}
