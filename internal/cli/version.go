package cli

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// versionCommand makes the version command (also keytool --version).
func versionCommand() *command {
	return &command{
		name:    "version",
		uses:    globalNone,
		args:    "",
		summary: "print keytool's version, source revision and Go version",
		help: `Prints the module version keytool was built from ("(devel)" when built
from a checkout rather than a tagged module), the version control revision
and time, "modified" when the working tree had uncommitted changes, and the
Go version and platform. keytool --version prints the same.`,
		run: func(c *cli, args []string) error {
			if len(args) > 0 {
				return usagef("unexpected argument %q", args[0])
			}
			printVersion(c.stdout)
			return nil
		},
	}
}

// printVersion prints what runtime/debug.ReadBuildInfo knows of this
// binary: "keytool VERSION", then the revision, then the Go version.
func printVersion(w io.Writer) {
	version, revision := "(devel)", ""
	if info, ok := debug.ReadBuildInfo(); ok {
		if v := info.Main.Version; v != "" {
			version = v
		}
		revision = vcsRevision(info.Settings)
	}
	fmt.Fprintf(w, "keytool %s\n", version)
	if revision != "" {
		fmt.Fprintf(w, "revision %s\n", revision)
	}
	fmt.Fprintf(w, "built with %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// vcsRevision is "REVISION (TIME)", with ", modified" when the tree had
// uncommitted changes; "" when the binary was built without VCS stamping.
func vcsRevision(settings []debug.BuildSetting) string {
	var rev, at string
	modified := false
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return ""
	}
	if at != "" {
		rev += " (" + at + ")"
	}
	if modified {
		rev += ", modified"
	}
	return rev
}
