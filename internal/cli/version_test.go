package cli

import (
	"runtime/debug"
	"testing"
)

// TestVCSRevision: the revision line says the commit, its time, and
// whether the tree had uncommitted changes, from the settings Go stamps
// into a binary built in a checkout (testdata/script/version.txt runs the
// command itself; the test binary carries no VCS stamp).
func TestVCSRevision(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.modified", Value: "true"}}, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "27f0c83e"}}, "27f0c83e"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "27f0c83e"}, {Key: "vcs.time", Value: "2026-11-30T14:00:38Z"}, {Key: "vcs.modified", Value: "false"}},
			"27f0c83e (2026-11-30T14:00:38Z)"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.time", Value: "2026-11-30T14:00:38Z"}, {Key: "vcs.revision", Value: "27f0c83e"}},
			"27f0c83e (2026-11-30T14:00:38Z), modified"},
	} {
		if got := vcsRevision(tc.settings); got != tc.want {
			t.Errorf("vcsRevision(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}
