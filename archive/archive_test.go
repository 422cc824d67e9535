package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// tree is a set of paths below a directory with what each is: "file 0644
// content", "dir 0755", "link target".
type tree map[string]string

// readTree describes everything below root without following symlinks.
func readTree(t testing.TB, root string) tree {
	t.Helper()
	out := tree{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch m := fi.Mode(); {
		case m.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %04o %s", unixPerm(m), b)
		case m.IsDir():
			out[rel] = fmt.Sprintf("dir %04o", unixPerm(m))
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link " + target
		default:
			out[rel] = "other " + m.String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// unixPerm is m's permission bits as chmod(1) writes them.
func unixPerm(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	for bit, flag := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if m&flag != 0 {
			u |= bit
		}
	}
	return u
}

func fromUnixPerm(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	for bit, flag := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if u&bit != 0 {
			m |= flag
		}
	}
	return m
}

// makeTree creates tr below root; it is readTree's inverse.
func makeTree(t testing.TB, root string, tr tree) {
	t.Helper()
	names := make([]string, 0, len(tr))
	for n := range tr {
		names = append(names, n)
	}
	slices.Sort(names) // parents first
	for _, n := range names {
		p := filepath.Join(root, filepath.FromSlash(n))
		var err error
		switch kind, rest, _ := strings.Cut(tr[n], " "); kind {
		case "file":
			perm, content, _ := strings.Cut(rest, " ")
			var m uint32
			fmt.Sscanf(perm, "%o", &m)
			err = os.WriteFile(p, []byte(content), 0o600)
			if err == nil {
				err = os.Chmod(p, fromUnixPerm(m))
			}
		case "dir":
			var m uint32
			fmt.Sscanf(rest, "%o", &m)
			err = os.Mkdir(p, 0o700)
			if err == nil {
				err = os.Chmod(p, fromUnixPerm(m))
			}
		case "link":
			err = os.Symlink(rest, p)
		default:
			t.Fatalf("makeTree: %q: unknown kind %q", n, kind)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	makeTree(t, src, tree{
		"README":            "file 0644 read me",
		"build":             "dir 0755",
		"build/tool":        "file 0755 #!/bin/sh",
		"build/lib":         "dir 0700",
		"build/lib/a.so":    "file 0600 ELF",
		"build/lib/link":    "link ../tool",
		"build/setuid":      "file 4755 suid",
		"build/open":        "file 0666 world-writable",
		"current":           "link build",
		"dangling":          "link not-yet",
		"empty":             "file 0644 ",
		"name with spaces":  "file 0644 spaces",
		"unicodé/ü.txt":     "file 0644 u",
		"unicodé":           "dir 0755",
		"skipped.tmp":       "file 0644 not selected",
		"build/lib/.hidden": "file 0644 hidden",
	})
	if got := readTree(t, src)["build/setuid"]; got != "file 4755 suid" {
		t.Fatalf("the source's setuid file is %q; the test needs it setuid", got)
	}
	mtime := time.Date(2024, 2, 29, 12, 30, 45, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "build/tool"), mtime, mtime); err != nil {
		t.Fatal(err)
	}

	files, warnings, err := Select(src, []string{"build/", "README", "current", "dangling", "empty", "name with spaces", "unicodé/*.txt"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"README", "build/lib/.hidden", "build/lib/a.so", "build/lib/link", "build/open", "build/setuid", "build/tool", "current", "dangling", "empty", "name with spaces", "unicodé/ü.txt"}
	if !slices.Equal(files, wantFiles) {
		t.Fatalf("Select = %q, want %q", files, wantFiles)
	}
	wantWarnings := []string{`pattern "current" is a symlink to a directory: only the symlink is archived; write "current/**" for the files it points to`}
	if !slices.Equal(warnings, wantWarnings) {
		t.Fatalf("warnings = %q, want %q", warnings, wantWarnings)
	}

	zipPath := filepath.Join(t.TempDir(), "artifacts.zip")
	if err := WriteFileAtomic(zipPath, func(w io.Writer) error { return Write(w, src, files, 0) }); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := Extract(f, fi.Size(), dst, 1<<20); err != nil {
		t.Fatal(err)
	}

	// Directories are created 0755; files keep only their execute bit.
	want := tree{
		"README":            "file 0644 read me",
		"build":             "dir 0755",
		"build/tool":        "file 0755 #!/bin/sh",
		"build/lib":         "dir 0755",
		"build/lib/a.so":    "file 0644 ELF",
		"build/lib/link":    "link ../tool",
		"build/lib/.hidden": "file 0644 hidden",
		"build/setuid":      "file 0755 suid",
		"build/open":        "file 0644 world-writable",
		"current":           "link build",
		"dangling":          "link not-yet",
		"empty":             "file 0644 ",
		"name with spaces":  "file 0644 spaces",
		"unicodé":           "dir 0755",
		"unicodé/ü.txt":     "file 0644 u",
	}
	if got := readTree(t, dst); !mapsEqual(got, want) {
		t.Errorf("extracted tree:\n%s\nwant:\n%s", got, want)
	}
	gi, err := os.Stat(filepath.Join(dst, "build/tool"))
	if err != nil {
		t.Fatal(err)
	}
	if !gi.ModTime().Equal(mtime) {
		t.Errorf("build/tool mtime = %v, want %v", gi.ModTime().UTC(), mtime)
	}
}

func (tr tree) String() string {
	var b strings.Builder
	names := make([]string, 0, len(tr))
	for n := range tr {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(&b, "  %q: %q\n", n, tr[n])
	}
	return b.String()
}

func mapsEqual(a, b tree) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestWriteLimit(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, tree{"a": "file 0644 12345", "b": "file 0644 67890", "l": "link a"})
	files := []string{"a", "b", "l"}
	// 5 + 5 bytes of content and 1 of symlink target.
	if err := Write(io.Discard, src, files, 11); err != nil {
		t.Errorf("Write with limit 11 = %v, want nil", err)
	}
	err := Write(io.Discard, src, files, 10)
	const want = `archive: adding "l": archive too large: the files come to more than 10 bytes; archive fewer files or raise the limit`
	if err == nil || err.Error() != want || !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write with limit 10 = %v, want %s", err, want)
	}
	err = Write(io.Discard, src, files, 7)
	const want7 = `archive: adding "b": archive too large: the files come to more than 7 bytes; archive fewer files or raise the limit`
	if err == nil || err.Error() != want7 || !errors.Is(err, ErrTooLarge) {
		t.Errorf("Write with limit 7 = %v, want %s", err, want7)
	}
}

// A file that grows between its Lstat and its copy is still stopped at the
// limit: the count is of bytes copied, not of the size first seen.
func TestWriteLimitCountsCopiedBytes(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, tree{"grows": "file 0644 " + strings.Repeat("x", 100)})
	aw := &writer{zw: zip.NewWriter(io.Discard), limit: 50}
	var err error
	if aw.root, err = os.OpenRoot(src); err != nil {
		t.Fatal(err)
	}
	defer aw.root.Close()
	small := fakeInfo{size: 10} // what Lstat said before the file grew
	err = aw.addFile("grows", small)
	const want = `archive: adding "grows": archive too large: the files come to more than 50 bytes; archive fewer files or raise the limit`
	if err == nil || err.Error() != want {
		t.Errorf("addFile = %v, want %s", err, want)
	}
	if aw.written != 51 {
		t.Errorf("copied %d bytes, want 51: the copy stops one byte past the limit", aw.written)
	}
}

type fakeInfo struct {
	fs.FileInfo
	size int64
}

func (f fakeInfo) Size() int64 { return f.size }

func TestWriteRefusesBadLists(t *testing.T) {
	parent := t.TempDir()
	src := filepath.Join(parent, "src")
	makeTree(t, parent, tree{
		"outside":        "dir 0755",
		"outside/secret": "file 0600 secret",
		"src":            "dir 0755",
		"src/a":          "file 0644 a",
		"src/esc":        "link ../outside",
		"src/abs":        "link /etc/passwd",
	})
	for _, tc := range []struct {
		files []string
		want  string
	}{
		{[]string{"../outside/secret"}, `archive: cannot archive "../outside/secret": its name contains a ".." segment; pass the paths Select returns`},
		{[]string{"/etc/passwd"}, `archive: cannot archive "/etc/passwd": its name is absolute; pass the paths Select returns`},
		{[]string{"a", "a"}, `archive: "a" is listed twice; pass the paths Select returns`},
		{[]string{"esc"}, `archive: cannot archive "esc": it is a symlink whose target "../outside" leads outside the directory; only relative symlinks that stay inside the project directory can be`},
		{[]string{"abs"}, `archive: cannot archive "abs": it is a symlink to the absolute path "/etc/passwd"; only relative symlinks that stay inside the project directory can be`},
		// os.Root refuses the way through the symlink.
		{[]string{"esc/secret"}, `archive: cannot archive "esc/secret": statat esc/secret: path escapes from parent; did something change the files after the job's script?`},
	} {
		var buf bytes.Buffer
		err := Write(&buf, src, tc.files, 0)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Write(%q) = %v, want %s", tc.files, err, tc.want)
		}
		if bytes.Contains(buf.Bytes(), []byte("secret")) {
			t.Errorf("Write(%q) wrote the outside file's content", tc.files)
		}
	}
}

// errAfter fails once n bytes have been written to it.
type errAfter struct{ n int }

var errFull = errors.New("disk full")

func (w *errAfter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

// Write streams: a failing writer stops it in the middle of a file, with
// that writer's error, rather than at the end.
func TestWriteStreams(t *testing.T) {
	src := t.TempDir()
	// Incompressible content, so that the deflater must pass it on.
	b := make([]byte, 4<<20)
	x := uint32(1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	if err := os.WriteFile(filepath.Join(src, "big"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	err := Write(&errAfter{n: 64 << 10}, src, []string{"big"}, 0)
	if !errors.Is(err, errFull) || !strings.HasPrefix(err.Error(), `archive: adding "big": `) {
		t.Errorf("Write = %v, want the writer's error while adding big", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cache.zip")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	errBoom := errors.New("boom")

	err := WriteFileAtomic(p, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errBoom
	})
	if !errors.Is(err, errBoom) || err.Error() != "archive: writing "+p+": boom" {
		t.Errorf("failing write: err = %v", err)
	}
	if got := readTree(t, dir); !mapsEqual(got, tree{"cache.zip": "file 0600 old"}) {
		t.Errorf("after a failing write:\n%s want only the old file", got)
	}

	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		_ = WriteFileAtomic(p, func(w io.Writer) error {
			io.WriteString(w, "half")
			panic("crash")
		})
	}()
	if got := readTree(t, dir); !mapsEqual(got, tree{"cache.zip": "file 0600 old"}) {
		t.Errorf("after a panicking write:\n%s want only the old file", got)
	}

	if err := WriteFileAtomic(p, func(w io.Writer) error {
		_, err := io.WriteString(w, "new")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dir); !mapsEqual(got, tree{"cache.zip": "file 0600 new"}) {
		t.Errorf("after a good write:\n%s want only the new file", got)
	}

	err = WriteFileAtomic(filepath.Join(dir, "missing", "x.zip"), func(io.Writer) error { return nil })
	if err == nil || !strings.HasSuffix(err.Error(), "; check that its directory exists and is writable") {
		t.Errorf("in a missing directory: err = %v", err)
	}
}
