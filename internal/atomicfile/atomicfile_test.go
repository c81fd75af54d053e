package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// WriteFrom replaces the file with what fill writes, in pieces, with the
// mode asked; when fill fails the old file stays and no temporary file is
// left behind.
func TestWriteFrom(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bundle.pem")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("the third piece failed")
	err := WriteFrom(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "one\n")
		io.WriteString(w, "two\n")
		return failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("WriteFrom with a failing fill: %v, want its error", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "old\n" {
		t.Errorf("after a failed fill the file holds %q, want the old content", data)
	}
	if err := WriteFrom(path, 0o644, func(w io.Writer) error {
		for _, s := range []string{"one\n", "two\n", "three\n"} {
			if _, err := io.WriteString(w, s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "one\ntwo\nthree\n" || fi.Mode().Perm() != 0o644 {
		t.Errorf("the file holds %q mode %v, want the three pieces, mode 0644", data, fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file (no temporary file left)", len(entries))
	}
}

// WriteLocked replaces a file (a new inode: the old one was removed, not
// renamed over) and creates one that did not exist, with the mode asked,
// leaving no temporary file.
func TestWriteLocked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0001")
	if err := WriteLocked(path, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLocked(path, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "two" || after.Mode().Perm() != 0o600 {
		t.Errorf("the file holds %q mode %v, want \"two\", mode 0600", data, after.Mode().Perm())
	}
	if os.SameFile(before, after) {
		t.Error("the file was written in place, want a new file renamed in")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries, want only the file (no temporary file left)", len(entries))
	}
}

// When Create and Write make the file durable (the sync of its
// directory), its temporary name is gone already: a power loss after
// that cannot leave it. Create places the file by a hard link, and
// removed after the sync the temporary name could survive as a second
// link to the file — a private key that a later rotation's removal would
// not remove (found by review). Until then the temporary file has mode
// perm, and 0600 before its first byte.
func TestNoTemporaryNameAtTheSync(t *testing.T) {
	for _, tc := range []struct {
		name  string
		write func(string, []byte, os.FileMode) error
	}{{"Create", Create}, {"Write", Write}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key.json")
			synced := 0
			t.Cleanup(func() { SyncDir = syncDir })
			SyncDir = func(d string) error {
				synced++
				entries, err := os.ReadDir(d)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					if e.Name() != "key.json" {
						t.Errorf("%s is in the directory when it is synced", e.Name())
					}
				}
				return syncDir(d)
			}
			if err := tc.write(path, []byte(`{"d":"secret"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if synced != 1 {
				t.Fatalf("the directory was synced %d times, want once", synced)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the file: %v, %v; want mode 0600", fi, err)
			}
		})
	}
}

// The temporary file that a crash may leave holds a private key at the
// key's mode, never more open: 0600 from its creation, before a byte.
func TestTemporaryFileModeFromTheFirstByte(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	err := WriteFrom(path, 0o600, func(w io.Writer) error {
		fi, err := w.(*os.File).Stat()
		if err != nil {
			return err
		}
		if fi.Mode().Perm() != 0o600 || fi.Size() != 0 {
			t.Errorf("the temporary file before its first byte: mode %v, size %d; want 0600, empty", fi.Mode().Perm(), fi.Size())
		}
		_, err = io.WriteString(w, "secret")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// WriteIf asks its check once the new content is written, before the
// rename: a check that fails (the file was replaced meanwhile, here by a
// rename inside the check, as another writer's would land) leaves that
// other writer's file in place and no temporary file behind, and returns
// the check's own error; a check that passes replaces the file, mode perm.
func TestWriteIf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	if err := os.WriteFile(path, []byte("read\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	changed := errors.New("changed since it was read")
	calls := 0
	err := WriteIf(path, []byte("rewritten\n"), 0o600, func() error {
		calls++
		// The temporary file is complete when the check runs.
		tmps, _ := filepath.Glob(filepath.Join(dir, ".key.json.*.tmp"))
		if len(tmps) != 1 {
			t.Errorf("at the check: temporary files %q, want one", tmps)
		} else if data, _ := os.ReadFile(tmps[0]); string(data) != "rewritten\n" {
			t.Errorf("at the check the temporary file holds %q, want the new content", data)
		}
		other := filepath.Join(dir, "other")
		if err := os.WriteFile(other, []byte("another writer's\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(other, path); err != nil {
			t.Fatal(err)
		}
		return changed
	})
	if err != changed || calls != 1 {
		t.Fatalf("WriteIf with a failing check: %v after %d calls, want the check's error after 1", err, calls)
	}
	if data, _ := os.ReadFile(path); string(data) != "another writer's\n" {
		t.Errorf("after a failed check the file holds %q, want the other writer's", data)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("after a failed check the directory holds %d files, want the file alone", len(entries))
	}
	if err := WriteIf(path, []byte("rewritten\n"), 0o600, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != "rewritten\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after a passing check: %q, mode %v; want the new content, 0600", data, fi.Mode().Perm())
	}
}
