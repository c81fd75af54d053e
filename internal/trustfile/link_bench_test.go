package trustfile

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkCheckFileInDir is what the check of one file of a checked .d
// directory costs (CheckFile with dirChecked, as a scan calls it for each
// file): "file" a regular file, "kubernetes" the same file as a
// Kubernetes volume shows it (NAME -> ..data/NAME, ..data ->
// ..2024_…/), whose links make CheckFile resolve and climb from the .d
// directory again for each file.
//
//	go test ./internal/trustfile -run '^$' -bench CheckFileInDir -benchmem
func BenchmarkCheckFileInDir(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	plain := filepath.Join(home, "plain.d")
	kube := filepath.Join(home, "kube.d")
	stamped := filepath.Join(kube, "..2026_12_01_16_00_00.123456789")
	for _, d := range []string{plain, stamped} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Base(stamped), filepath.Join(kube, "..data")); err != nil {
		b.Fatal(err)
	}
	const files = 100
	for i := range files {
		name := "client" + strconv.Itoa(i) + ".json"
		for _, p := range []string{filepath.Join(plain, name), filepath.Join(stamped, name)} {
			if err := os.WriteFile(p, []byte("{}"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(kube, name)); err != nil {
			b.Fatal(err)
		}
	}
	r := Rule{Top: home}
	for _, tc := range []struct {
		name string
		dir  string
		link bool
	}{{"file", plain, false}, {"kubernetes", kube, true}} {
		b.Run(tc.name, func(b *testing.B) {
			if err := r.CheckDir(tc.dir); err != nil {
				b.Fatal(err)
			}
			paths := make([]string, files)
			infos := make([]os.FileInfo, files)
			for i := range paths {
				paths[i] = filepath.Join(tc.dir, "client"+strconv.Itoa(i)+".json")
				fi, err := os.Stat(paths[i])
				if err != nil {
					b.Fatal(err)
				}
				infos[i] = fi
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if err := r.CheckFile(paths[i%files], infos[i%files], tc.link, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A Kubernetes volume's file is checked through both its links: the
// second climb, from ..2024_…, stops at the .d directory the first
// checked (climber), but checks ..2024_… itself, and a .d directory or a
// home others may write is refused from either.
func TestKubernetesLinksEveryDirectoryChecked(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	kube := filepath.Join(home, "authorized_keys.d")
	stamped := filepath.Join(kube, "..2026_12_01_16_00_00.1")
	if err := os.MkdirAll(stamped, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stamped, "alice.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(stamped), filepath.Join(kube, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(kube, "alice.json")
	if err := os.Symlink(filepath.Join("..data", "alice.json"), path); err != nil {
		t.Fatal(err)
	}
	r := Rule{Top: home}
	check := func() error {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return r.CheckFile(path, fi, true, true)
	}
	if err := check(); err != nil {
		t.Fatalf("a Kubernetes volume's file: %v", err)
	}
	for _, dir := range []string{stamped, kube, home} {
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		var pe *PermissionError
		if err := check(); !errors.As(err, &pe) || pe.Path != dir {
			t.Errorf("%s writable by others: %v, want a *PermissionError naming it", dir, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// A check's realPath resolves as filepath.EvalSymlinks does (it replaced
// it, to stat each directory once): relative and absolute links, a link
// to a link, ".." in a link's target and in the path, and the errors of
// a dangling link and of a file used as a directory.
func TestRealPathAsEvalSymlinks(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a/b/c", "x/y"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "a/b/c/f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"x/rel":      "../a/b",
		"x/abs":      filepath.Join(base, "a/b/c"),
		"x/chain":    "rel/c",
		"x/up":       "y/../../a",
		"x/y/dot":    ".",
		"x/dangling": "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(base, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"a/b/c/f", "x/rel/c/f", "x/abs/f", "x/chain/f", "x/up/b/../b/c", "x/y/dot/dot/../rel", "x/dangling", "a/b/c/f/g", "x/rel/c/../../b/c"} {
		want, wantErr := filepath.EvalSymlinks(filepath.Join(base, p))
		got, err := (Rule{}).climber().realPath(filepath.Join(base, p))
		if got != want || (err == nil) != (wantErr == nil) {
			t.Errorf("%s: %q, %v; EvalSymlinks: %q, %v", p, got, err, want, wantErr)
		}
	}
}
