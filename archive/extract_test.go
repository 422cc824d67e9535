package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alloyci/hardened-runner/internal/ziptest"
)

// manyEntries is a zip of n empty files.
func manyEntries(t testing.TB, n int) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	for i := range n {
		if _, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("f%06d", i), Method: zip.Store}); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// flipped is b with the first byte of the first occurrence of s inverted.
func flipped(t testing.TB, b []byte, s string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte(s))
	if i < 0 {
		t.Fatalf("%q not in the zip", s)
	}
	c := bytes.Clone(b)
	c[i] ^= 0xff
	return c
}

// hostile ends the error of an entry no archive from the runner holds.
const hostile = "; the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it"

const damagedEnd = ": the archive is damaged; run the job that made it again"

const notZip = "archive: not a readable zip archive (zip: not a valid zip file): it is truncated, damaged or not an archive; run the job that made it again"

const mib = 1 << 20

// attack is an archive Extract must refuse with exactly err.
type attack struct {
	name   string
	zip    func(t testing.TB) []byte
	before tree  // in dir before extracting, besides what every case has
	limit  int64 // 10 MiB unless set
	err    string
	// Whether the refusal comes before anything is written: dir is then
	// exactly as it was.
	untouched bool
	tooLarge  bool
}

func zipOf(ents ...ziptest.Entry) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return ziptest.Zip(t, ents...) }
}

// ok is an entry that is fine on its own: the cases put it first to show that
// refusals found while checking come before anything is written.
var ok = ziptest.Entry{Name: "ok.txt", Body: "fine"}

func attacks() []attack {
	return []attack{
		{name: "parent escape", zip: zipOf(ok, ziptest.Entry{Name: "../../escape", Body: "x"}), untouched: true,
			err: `archive: entry "../../escape" refused: its name contains a ".." segment` + hostile},
		{name: "absolute", zip: zipOf(ok, ziptest.Entry{Name: "/etc/passwd", Body: "x"}), untouched: true,
			err: `archive: entry "/etc/passwd" refused: its name is absolute` + hostile},
		{name: "dot dot inside", zip: zipOf(ok, ziptest.Entry{Name: "a/../../b", Body: "x"}), untouched: true,
			err: `archive: entry "a/../../b" refused: its name contains a ".." segment` + hostile},
		{name: "drive letter and backslash", zip: zipOf(ok, ziptest.Entry{Name: `C:\x`, Body: "x"}), untouched: true,
			err: `archive: entry "C:\\x" refused: its name contains a backslash` + hostile},
		{name: "drive letter", zip: zipOf(ok, ziptest.Entry{Name: "C:x", Body: "x"}), untouched: true,
			err: `archive: entry "C:x" refused: its name starts with a drive letter` + hostile},
		{name: "backslash dot dot", zip: zipOf(ok, ziptest.Entry{Name: `a\..\b`, Body: "x"}), untouched: true,
			err: `archive: entry "a\\..\\b" refused: its name contains a backslash` + hostile},
		{name: "empty name", zip: zipOf(ok, ziptest.Entry{Name: "", Body: "x"}), untouched: true,
			err: `archive: entry "" refused: its name is empty` + hostile},
		{name: "the directory itself", zip: zipOf(ok, ziptest.Entry{Name: "./"}), untouched: true,
			err: `archive: entry "./" refused: its name is the extraction directory itself` + hostile},
		{name: "NUL in name", zip: zipOf(ok, ziptest.Entry{Name: "a\x00/etc/passwd", Body: "x"}), untouched: true,
			err: `archive: entry "a\x00/etc/passwd" refused: its name contains a NUL byte` + hostile},
		{name: "terminal escapes are quoted", zip: zipOf(ok, ziptest.Entry{Name: "/\x1b[2J", Body: "x"}), untouched: true,
			err: `archive: entry "/\x1b[2J" refused: its name is absolute` + hostile},

		{name: "fifo", zip: zipOf(ok, ziptest.Entry{Name: "fifo", Attrs: 0o010644}), untouched: true,
			err: `archive: entry "fifo" refused: it is a named pipe; only files, directories and symlinks are extracted` + hostile},
		{name: "character device", zip: zipOf(ok, ziptest.Entry{Name: "null", Attrs: 0o020666}), untouched: true,
			err: `archive: entry "null" refused: it is a character device; only files, directories and symlinks are extracted` + hostile},
		{name: "block device", zip: zipOf(ok, ziptest.Entry{Name: "sda", Attrs: 0o060660}), untouched: true,
			err: `archive: entry "sda" refused: it is a device; only files, directories and symlinks are extracted` + hostile},
		{name: "socket", zip: zipOf(ok, ziptest.Entry{Name: "sock", Attrs: 0o140755}), untouched: true,
			err: `archive: entry "sock" refused: it is a socket; only files, directories and symlinks are extracted` + hostile},
		{name: "directory symlink", zip: zipOf(ok, ziptest.Entry{Name: "d/", Attrs: 0o120777}), untouched: true,
			err: `archive: entry "d/" refused: it is a directory and symlink at once; only files, directories and symlinks are extracted` + hostile},

		{name: "symlink up and out", zip: zipOf(ok, ziptest.Symlink("l", "../../x")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "../../x" leads outside the directory` + hostile},
		{name: "symlink one level out", zip: zipOf(ok, ziptest.Symlink("d/l", "../../outside")), untouched: true,
			err: `archive: entry "d/l" refused: it is a symlink whose target "../../outside" leads outside the directory` + hostile},
		{name: "absolute symlink then through it", zip: zipOf(ok, ziptest.Symlink("link", "/etc"), ziptest.Entry{Name: "link/passwd", Body: "root::0:0::/:/bin/sh"}), untouched: true,
			err: `archive: entry "link" refused: it is a symlink to the absolute path "/etc"` + hostile},
		{name: "through a symlink entry", zip: zipOf(ok, ziptest.Entry{Name: "sub/"}, ziptest.Symlink("link", "sub"), ziptest.Entry{Name: "link/passwd", Body: "x"}), untouched: true,
			err: `archive: entry "link/passwd" refused: it would be written through the symlink entry "link"` + hostile},
		{name: "through a later symlink entry", zip: zipOf(ok, ziptest.Entry{Name: "link/passwd", Body: "x"}, ziptest.Symlink("link", "sub")), untouched: true,
			err: `archive: entry "link/passwd" refused: it would be written through the symlink entry "link"` + hostile},
		{name: "dot dot after a symlink", zip: zipOf(ok, ziptest.Symlink("d/l", ".."), ziptest.Symlink("x", "d/l/..")), untouched: true,
			err: `archive: entry "x" refused: it is a symlink whose target "d/l/.." has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "dot dot after a symlink, counted within depth", zip: zipOf(ok, ziptest.Symlink("e/l", ".."), ziptest.Symlink("e/x", "l/..")), untouched: true,
			err: `archive: entry "e/x" refused: it is a symlink whose target "l/.." has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "empty symlink", zip: zipOf(ok, ziptest.Symlink("l", "")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink with an empty target` + hostile},
		{name: "backslash symlink", zip: zipOf(ok, ziptest.Symlink("l", `..\..\x`)), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "..\\..\\x" contains a backslash` + hostile},
		{name: "drive letter symlink", zip: zipOf(ok, ziptest.Symlink("l", "C:/x")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink to the absolute path "C:/x"` + hostile},
		{name: "long symlink", zip: zipOf(ok, ziptest.Symlink("l", strings.Repeat("a/", 2049))), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target is longer than 4096 bytes` + hostile},

		{name: "duplicate", zip: zipOf(ok, ziptest.Entry{Name: "a", Body: "1"}, ziptest.Entry{Name: "a", Body: "2"}), untouched: true,
			err: `archive: entry "a" refused: it is a second entry for "a"` + hostile},
		{name: "duplicate file and directory", zip: zipOf(ok, ziptest.Entry{Name: "a/"}, ziptest.Entry{Name: "a", Body: "2"}), untouched: true,
			err: `archive: entry "a" refused: it is a second entry for "a"` + hostile},
		{name: "duplicate once cleaned", zip: zipOf(ok, ziptest.Entry{Name: "a/b", Body: "1"}, ziptest.Entry{Name: "a//b", Body: "2"}), untouched: true,
			err: `archive: entry "a//b" refused: it is a second entry for "a/b"` + hostile},
		{name: "below a file", zip: zipOf(ok, ziptest.Entry{Name: "x", Body: "1"}, ziptest.Entry{Name: "x/y", Body: "2"}), untouched: true,
			err: `archive: entry "x/y" refused: it is below "x", which is a file entry` + hostile},

		{name: "through an existing symlink out", before: tree{"dir/pre": "link ../outside"},
			zip: zipOf(ziptest.Entry{Name: "pre/secret", Body: "overwritten"}), untouched: true,
			err: `archive: entry "pre/secret" cannot be extracted: "pre" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "through an existing symlink inside", before: tree{"dir/sub": "dir 0755", "dir/inner": "link sub"},
			zip: zipOf(ziptest.Entry{Name: "inner/x", Body: "x"}), untouched: true,
			err: `archive: entry "inner/x" cannot be extracted: "inner" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "directory entry on an existing symlink", before: tree{"dir/pre": "link ../outside"},
			zip: zipOf(ziptest.Entry{Name: "pre/"}), untouched: true,
			err: `archive: entry "pre/" cannot be extracted: "pre" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "file on an existing directory", before: tree{"dir/d": "dir 0755"},
			zip: zipOf(ziptest.Entry{Name: "d", Body: "x"}), untouched: true,
			err: `archive: entry "d" cannot be extracted: "d" already exists as a directory; the archive and the directory disagree about what it is`},
		{name: "below an existing file", before: tree{"dir/f": "file 0644 f"},
			zip: zipOf(ziptest.Entry{Name: "f/x", Body: "x"}), untouched: true,
			err: `archive: entry "f/x" cannot be extracted: "f" already exists as a file, not a directory; the archive and the directory disagree about what it is`},

		{name: "1 GiB of zeros", zip: func(t testing.TB) []byte { return ziptest.ZeroBomb(t, "zeros", 1<<30, 0) }, untouched: true, tooLarge: true,
			err: `archive: entry "zeros": archive too large: the archive holds more than 10485760 bytes; archive fewer files or raise the limit`},
		{name: "header understates", zip: func(t testing.TB) []byte { return ziptest.ZeroBomb(t, "liar", 64*mib, 1024) }, untouched: true,
			err: `archive: entry "liar" cannot be read (zip: not a valid zip file)` + damagedEnd},
		{name: "many entries each under the limit", tooLarge: true, zip: func(t testing.TB) []byte {
			var ents []ziptest.Entry
			for i := range 11 {
				ents = append(ents, ziptest.Entry{Name: fmt.Sprintf("f%02d", i), Body: strings.Repeat("0", mib)})
			}
			return ziptest.Zip(t, ents...)
		}, err: `archive: entry "f10": archive too large: the archive holds more than 10485760 bytes; archive fewer files or raise the limit`},
		{name: "symlink targets count", limit: 5, zip: zipOf(ziptest.Entry{Name: "a", Body: "1234"}, ziptest.Symlink("l", "a/../a")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "a/../a" has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "symlink target over the limit", limit: 5, tooLarge: true, zip: zipOf(ziptest.Entry{Name: "a", Body: "1234"}, ziptest.Symlink("l", "./a")),
			err: `archive: entry "l": archive too large: the archive holds more than 5 bytes; archive fewer files or raise the limit`},
		{name: "symlink targets held", limit: 10, tooLarge: true, untouched: true,
			zip: zipOf(ok, ziptest.Symlink("l0", "ok.txt"), ziptest.Symlink("l1", "ok.txt")),
			err: `archive: entry "l1": archive too large: the archive holds more than 10 bytes; archive fewer files or raise the limit`},
		{name: "entries", zip: func(t testing.TB) []byte { return manyEntries(t, 100_001) }, untouched: true, tooLarge: true,
			err: `archive: archive too large: 100001 entries, more than the 100000 allowed; archive fewer files`},

		{name: "truncated", zip: func(t testing.TB) []byte {
			b := ziptest.Zip(t, ok, ziptest.Entry{Name: "b.txt", Body: strings.Repeat("b", 1000)})
			return ziptest.Truncated(b)
		}, untouched: true, err: notZip},
		{name: "random bytes", zip: func(testing.TB) []byte {
			b := make([]byte, 4096)
			rand.NewChaCha8([32]byte{1}).Read(b)
			return b
		}, untouched: true, err: notZip},
		{name: "empty", zip: func(testing.TB) []byte { return nil }, untouched: true, err: notZip},
		{name: "checksum", zip: func(t testing.TB) []byte {
			return flipped(t, ziptest.Zip(t, ok, ziptest.Entry{Name: "b.txt", Body: "hello, world", Store: true}), "hello, world")
		}, err: `archive: entry "b.txt" cannot be read (zip: checksum error)` + damagedEnd},
		{name: "symlink checksum", zip: func(t testing.TB) []byte {
			return flipped(t, ziptest.Zip(t, ok, ziptest.Entry{Name: "l", Attrs: 0o120777, Body: "ok.txt", Store: true}), "ok.txt\x50\x4b")
		}, untouched: true, err: `archive: entry "l" cannot be read (zip: checksum error)` + damagedEnd},
	}
}

// extractCase runs Extract on b in a fresh parent/dir next to parent/outside,
// and fails if anything outside dir changed, if dir holds a symlink leading
// out of it, or a file with a mode Extract never creates.
func extractCase(t *testing.T, b []byte, before tree, limit int64) (dirBefore, dirAfter tree, err error) {
	t.Helper()
	parent := t.TempDir()
	start := tree{
		"outside":        "dir 0755",
		"outside/secret": "file 0600 secret",
		"dir":            "dir 0755",
	}
	for k, v := range before {
		start[k] = v
	}
	makeTree(t, parent, start)
	dir := filepath.Join(parent, "dir")
	was := readTree(t, parent)
	err = Extract(bytes.NewReader(b), int64(len(b)), dir, limit)
	now := readTree(t, parent)
	dirBefore, dirAfter = tree{}, tree{}
	for _, s := range []struct {
		all tree
		in  tree
	}{{was, dirBefore}, {now, dirAfter}} {
		for k, v := range s.all {
			if rel, ok := strings.CutPrefix(k, "dir/"); ok {
				s.in[rel] = v
				delete(s.all, k)
			}
		}
	}
	if !mapsEqual(was, now) {
		t.Errorf("outside dir, before:\n%s\nafter:\n%s", was, now)
	}
	assertExtractedSafe(t, dir, dirBefore, dirAfter)
	return dirBefore, dirAfter, err
}

// assertExtractedSafe checks what Extract made or changed in dir; what
// was there before is the checkout's.
func assertExtractedSafe(t *testing.T, dir string, before, after tree) {
	t.Helper()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, what := range after {
		if before[name] == what {
			continue
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		switch kind, rest, _ := strings.Cut(what, " "); kind {
		case "link":
			if real := realPrefix(t, p); !inside(realDir, real) {
				t.Errorf("%q is a symlink to %q, which leads to %q, outside %q", name, rest, real, realDir)
			}
		case "file", "dir":
			if perm, _, _ := strings.Cut(rest, " "); perm != "0644" && perm != "0755" {
				t.Errorf("%q is %s", name, what)
			}
		default:
			t.Errorf("%q is %s", name, what)
		}
	}
}

func TestExtractRefuses(t *testing.T) {
	for _, a := range attacks() {
		t.Run(a.name, func(t *testing.T) {
			limit := a.limit
			if limit == 0 {
				limit = 10 * mib
			}
			before, after, err := extractCase(t, a.zip(t), a.before, limit)
			if err == nil || err.Error() != a.err {
				t.Fatalf("Extract error:\n%v\nwant:\n%s", err, a.err)
			}
			if errors.Is(err, ErrTooLarge) != a.tooLarge {
				t.Errorf("errors.Is(err, ErrTooLarge) = %v, want %v", !a.tooLarge, a.tooLarge)
			}
			if a.untouched && !mapsEqual(before, after) {
				t.Errorf("dir changed; before:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// The checks before a file is created are not the boundary: when a
// directory is swapped for a symlink out between the check and the create,
// as a process racing Extract could, the os.Root refuses.
func TestExtractRootIsTheBoundary(t *testing.T) {
	parent := t.TempDir()
	makeTree(t, parent, tree{"outside": "dir 0755", "dir": "dir 0755"})
	dir := filepath.Join(parent, "dir")
	b := ziptest.Zip(t, ziptest.Entry{Name: "sub/file", Body: "planted"})
	swap := func(name string) {
		if name != "sub/file" {
			t.Errorf("beforeCreate(%q), want sub/file", name)
		}
		if err := os.Remove(filepath.Join(dir, "sub")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../outside", filepath.Join(dir, "sub")); err != nil {
			t.Fatal(err)
		}
	}
	err := extract(bytes.NewReader(b), int64(len(b)), dir, 0, maxEntries, swap)
	const want = `archive: entry "sub/file": openat sub/file: path escapes from parent`
	if err == nil || err.Error() != want {
		t.Errorf("Extract = %v, want %s", err, want)
	}
	if got := readTree(t, filepath.Join(parent, "outside")); len(got) != 0 {
		t.Errorf("written outside:\n%s", got)
	}
}

func TestExtractReplaces(t *testing.T) {
	b := ziptest.Zip(t,
		ziptest.Entry{Name: "f", Body: "new f"},
		ziptest.Entry{Name: "g", Body: "new g"},
		ziptest.Entry{Name: "h", Body: "new h", Mode: 0o755},
		ziptest.Symlink("s", "g"),
		ziptest.Entry{Name: "d/", Mode: fs.ModeDir | 0o755},
		ziptest.Entry{Name: "d/e", Body: "new e"},
	)
	before := tree{
		"dir/f":   "link ../outside/secret", // replaced, never followed
		"dir/g":   "file 0666 old g",        // replaced by a 0644 file
		"dir/h":   "file 4755 old h",        // replaced by a plain 0755 file
		"dir/s":   "link ../outside",
		"dir/d":   "dir 0700", // kept as it is
		"dir/d/e": "file 0644 old e",
		"dir/k":   "file 0644 kept",
	}
	_, after, err := extractCase(t, b, before, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := tree{
		"f":   "file 0644 new f",
		"g":   "file 0644 new g",
		"h":   "file 0755 new h",
		"s":   "link g",
		"d":   "dir 0700",
		"d/e": "file 0644 new e",
		"k":   "file 0644 kept",
	}
	if !mapsEqual(after, want) {
		t.Errorf("dir after:\n%s\nwant:\n%s", after, want)
	}
}

func TestExtractModes(t *testing.T) {
	b := ziptest.Zip(t,
		ziptest.Entry{Name: "setuid", Attrs: 0o104755, Body: "x"},
		ziptest.Entry{Name: "setgid", Attrs: 0o102711, Body: "x"},
		ziptest.Entry{Name: "sticky", Attrs: 0o101777, Body: "x"},
		ziptest.Entry{Name: "world", Attrs: 0o100666, Body: "x"},
		ziptest.Entry{Name: "private", Attrs: 0o100600, Body: "x"},
		ziptest.Entry{Name: "exec-other", Attrs: 0o100001, Body: "x"},
		ziptest.Entry{Name: "no-type", Attrs: 0o000755, Body: "x"},
		ziptest.Entry{Name: "open/", Attrs: 0o041777},
		ziptest.Entry{Name: "closed/", Attrs: 0o040500},
		ziptest.Entry{Name: "implicit/file", Attrs: 0o100644, Body: "x"},
	)
	// An MS-DOS entry: read-only attribute, no Unix mode.
	zr, _ := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	var dos bytes.Buffer
	zw := zip.NewWriter(&dos)
	for _, f := range zr.File {
		zw.Copy(f)
	}
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "dos.txt", Method: zip.Store, ExternalAttrs: 0x01})
	io.WriteString(w, "x")
	zw.Close()

	_, after, err := extractCase(t, dos.Bytes(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := tree{
		"setuid":        "file 0755 x",
		"setgid":        "file 0755 x",
		"sticky":        "file 0755 x",
		"world":         "file 0644 x",
		"private":       "file 0644 x",
		"exec-other":    "file 0755 x",
		"no-type":       "file 0755 x",
		"open":          "dir 0755",
		"closed":        "dir 0755",
		"implicit":      "dir 0755",
		"implicit/file": "file 0644 x",
		"dos.txt":       "file 0644 x",
	}
	if !mapsEqual(after, want) {
		t.Errorf("dir after:\n%s\nwant:\n%s", after, want)
	}
}

// With GODEBUG=zipinsecurepath=0, zip.NewReader itself objects to such
// names; Extract still says which entry and why.
func TestExtractInsecurePathGodebug(t *testing.T) {
	t.Setenv("GODEBUG", "zipinsecurepath=0")
	b := ziptest.Zip(t, ok, ziptest.Entry{Name: "../../escape", Body: "x"})
	if _, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); !errors.Is(err, zip.ErrInsecurePath) {
		t.Fatalf("zip.NewReader = %v, want ErrInsecurePath: the GODEBUG setting did not take", err)
	}
	_, _, err := extractCase(t, b, nil, 0)
	const want = `archive: entry "../../escape" refused: its name contains a ".." segment` + hostile
	if err == nil || err.Error() != want {
		t.Errorf("Extract = %v, want %s", err, want)
	}
}

func TestExtractLimitIsInclusive(t *testing.T) {
	b := ziptest.Zip(t, ziptest.Entry{Name: "a", Body: "12345"}, ziptest.Symlink("l", "a"))
	if _, _, err := extractCase(t, b, nil, 6); err != nil {
		t.Errorf("6 bytes with a limit of 6: %v", err)
	}
}

func TestExtractMissingDir(t *testing.T) {
	b := ziptest.Zip(t, ok)
	err := Extract(bytes.NewReader(b), int64(len(b)), filepath.Join(t.TempDir(), "missing"), 0)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasSuffix(err.Error(), "; create it first") {
		t.Errorf("Extract into a missing directory = %v", err)
	}
}

// FuzzExtract unpacks arbitrary bytes: Extract never panics, never changes
// anything outside dir, and never leaves a symlink there that leads out or
// a file with another mode than 0644 or 0755.
func FuzzExtract(f *testing.F) {
	for _, a := range attacks() {
		// TestExtractRefuses has the bombs; as seeds they slow every run.
		if b := a.zip(f); len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add(ziptest.Zip(f, ok, ziptest.Entry{Name: "d/"}, ziptest.Entry{Name: "d/x", Body: "x", Mode: 0o755}, ziptest.Symlink("d/l", "../ok.txt"), ziptest.Symlink("up", "d/..")))
	f.Fuzz(func(t *testing.T, b []byte) {
		extractCase(t, b, tree{"dir/pre": "link ../outside", "dir/file": "file 0644 f"}, 64<<10)
	})
}
