package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zent is an entry of a zip made by makeZip. attrs, when set, is the raw
// Unix mode put into the external attributes by hand, as a hostile archiver
// would; otherwise mode goes through FileHeader.SetMode.
type zent struct {
	name  string
	mode  fs.FileMode
	attrs uint32
	body  string
	store bool // no compression, so that tests can find and flip its bytes
}

// makeZip builds a zip of ents in memory, taking names and modes as given.
func makeZip(t testing.TB, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		if e.store {
			h.Method = zip.Store
		}
		switch {
		case e.attrs != 0:
			h.CreatorVersion = 3<<8 | 20 // made on Unix, zip 2.0
			h.ExternalAttrs = e.attrs << 16
		case e.mode == 0:
			h.SetMode(0o644)
		default:
			h.SetMode(e.mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatalf("creating entry %q: %v", e.name, err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatalf("writing entry %q: %v", e.name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// link is a symlink entry with the Unix mode set by hand.
func link(name, target string) zent { return zent{name: name, attrs: 0o120777, body: target} }

// zeroBomb is a zip of one entry of size bytes of zeros (a multiple of
// 1 MiB), made without ever holding them: one MiB is deflated and flushed so
// that it ends on a byte boundary and refers only to itself, and then
// repeated. Its header tells the truth about the size unless claimed is set.
func zeroBomb(t testing.TB, name string, size int64, claimed uint64) []byte {
	t.Helper()
	const mib = 1 << 20
	zeros := make([]byte, mib)
	var blk bytes.Buffer
	fw, err := flate.NewWriter(&blk, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(zeros)
	fw.Flush()
	var comp bytes.Buffer
	crc := uint32(0)
	for range size / mib {
		comp.Write(blk.Bytes())
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	comp.Write([]byte{0x03, 0x00}) // a final, empty block
	if claimed == 0 {
		claimed = uint64(size)
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, CRC32: crc, CompressedSize64: uint64(comp.Len()), UncompressedSize64: claimed}
	h.SetMode(0o644)
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, err := zw.CreateRaw(h)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(comp.Bytes())
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestZeroBombIsOne(t *testing.T) {
	b := zeroBomb(t, "zeros", 1<<30, 0)
	if len(b) > 2<<20 {
		t.Fatalf("the bomb is %d bytes compressed, want under 2 MiB", len(b))
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got := zr.File[0].UncompressedSize64; got != 1<<30 {
		t.Fatalf("the bomb claims %d bytes, want 1 GiB", got)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	// Past the 10 MiB limit of the tests is enough: beyond it nothing is read.
	n, err := io.Copy(io.Discard, io.LimitReader(rc, 11<<20))
	if n != 11<<20 || err != nil {
		t.Fatalf("the bomb inflates to %d bytes (%v), want at least 11 MiB", n, err)
	}
}

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

func zipOf(ents ...zent) func(testing.TB) []byte {
	return func(t testing.TB) []byte { return makeZip(t, ents...) }
}

// ok is an entry that is fine on its own: the cases put it first to show that
// refusals found while checking come before anything is written.
var ok = zent{name: "ok.txt", body: "fine"}

func attacks() []attack {
	return []attack{
		{name: "parent escape", zip: zipOf(ok, zent{name: "../../escape", body: "x"}), untouched: true,
			err: `archive: entry "../../escape" refused: its name contains a ".." segment` + hostile},
		{name: "absolute", zip: zipOf(ok, zent{name: "/etc/passwd", body: "x"}), untouched: true,
			err: `archive: entry "/etc/passwd" refused: its name is absolute` + hostile},
		{name: "dot dot inside", zip: zipOf(ok, zent{name: "a/../../b", body: "x"}), untouched: true,
			err: `archive: entry "a/../../b" refused: its name contains a ".." segment` + hostile},
		{name: "drive letter and backslash", zip: zipOf(ok, zent{name: `C:\x`, body: "x"}), untouched: true,
			err: `archive: entry "C:\\x" refused: its name contains a backslash` + hostile},
		{name: "drive letter", zip: zipOf(ok, zent{name: "C:x", body: "x"}), untouched: true,
			err: `archive: entry "C:x" refused: its name starts with a drive letter` + hostile},
		{name: "backslash dot dot", zip: zipOf(ok, zent{name: `a\..\b`, body: "x"}), untouched: true,
			err: `archive: entry "a\\..\\b" refused: its name contains a backslash` + hostile},
		{name: "empty name", zip: zipOf(ok, zent{name: "", body: "x"}), untouched: true,
			err: `archive: entry "" refused: its name is empty` + hostile},
		{name: "the directory itself", zip: zipOf(ok, zent{name: "./"}), untouched: true,
			err: `archive: entry "./" refused: its name is the extraction directory itself` + hostile},
		{name: "NUL in name", zip: zipOf(ok, zent{name: "a\x00/etc/passwd", body: "x"}), untouched: true,
			err: `archive: entry "a\x00/etc/passwd" refused: its name contains a NUL byte` + hostile},
		{name: "terminal escapes are quoted", zip: zipOf(ok, zent{name: "/\x1b[2J", body: "x"}), untouched: true,
			err: `archive: entry "/\x1b[2J" refused: its name is absolute` + hostile},

		{name: "fifo", zip: zipOf(ok, zent{name: "fifo", attrs: 0o010644}), untouched: true,
			err: `archive: entry "fifo" refused: it is a named pipe; only files, directories and symlinks are extracted` + hostile},
		{name: "character device", zip: zipOf(ok, zent{name: "null", attrs: 0o020666}), untouched: true,
			err: `archive: entry "null" refused: it is a character device; only files, directories and symlinks are extracted` + hostile},
		{name: "block device", zip: zipOf(ok, zent{name: "sda", attrs: 0o060660}), untouched: true,
			err: `archive: entry "sda" refused: it is a device; only files, directories and symlinks are extracted` + hostile},
		{name: "socket", zip: zipOf(ok, zent{name: "sock", attrs: 0o140755}), untouched: true,
			err: `archive: entry "sock" refused: it is a socket; only files, directories and symlinks are extracted` + hostile},
		{name: "directory symlink", zip: zipOf(ok, zent{name: "d/", attrs: 0o120777}), untouched: true,
			err: `archive: entry "d/" refused: it is a directory and symlink at once; only files, directories and symlinks are extracted` + hostile},

		{name: "symlink up and out", zip: zipOf(ok, link("l", "../../x")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "../../x" leads outside the directory` + hostile},
		{name: "symlink one level out", zip: zipOf(ok, link("d/l", "../../outside")), untouched: true,
			err: `archive: entry "d/l" refused: it is a symlink whose target "../../outside" leads outside the directory` + hostile},
		{name: "absolute symlink then through it", zip: zipOf(ok, link("link", "/etc"), zent{name: "link/passwd", body: "root::0:0::/:/bin/sh"}), untouched: true,
			err: `archive: entry "link" refused: it is a symlink to the absolute path "/etc"` + hostile},
		{name: "through a symlink entry", zip: zipOf(ok, zent{name: "sub/"}, link("link", "sub"), zent{name: "link/passwd", body: "x"}), untouched: true,
			err: `archive: entry "link/passwd" refused: it would be written through the symlink entry "link"` + hostile},
		{name: "through a later symlink entry", zip: zipOf(ok, zent{name: "link/passwd", body: "x"}, link("link", "sub")), untouched: true,
			err: `archive: entry "link/passwd" refused: it would be written through the symlink entry "link"` + hostile},
		{name: "dot dot after a symlink", zip: zipOf(ok, link("d/l", ".."), link("x", "d/l/..")), untouched: true,
			err: `archive: entry "x" refused: it is a symlink whose target "d/l/.." has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "dot dot after a symlink, counted within depth", zip: zipOf(ok, link("e/l", ".."), link("e/x", "l/..")), untouched: true,
			err: `archive: entry "e/x" refused: it is a symlink whose target "l/.." has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "empty symlink", zip: zipOf(ok, link("l", "")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink with an empty target` + hostile},
		{name: "backslash symlink", zip: zipOf(ok, link("l", `..\..\x`)), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "..\\..\\x" contains a backslash` + hostile},
		{name: "drive letter symlink", zip: zipOf(ok, link("l", "C:/x")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink to the absolute path "C:/x"` + hostile},
		{name: "long symlink", zip: zipOf(ok, link("l", strings.Repeat("a/", 2049))), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target is longer than 4096 bytes` + hostile},

		{name: "duplicate", zip: zipOf(ok, zent{name: "a", body: "1"}, zent{name: "a", body: "2"}), untouched: true,
			err: `archive: entry "a" refused: it is a second entry for "a"` + hostile},
		{name: "duplicate file and directory", zip: zipOf(ok, zent{name: "a/"}, zent{name: "a", body: "2"}), untouched: true,
			err: `archive: entry "a" refused: it is a second entry for "a"` + hostile},
		{name: "duplicate once cleaned", zip: zipOf(ok, zent{name: "a/b", body: "1"}, zent{name: "a//b", body: "2"}), untouched: true,
			err: `archive: entry "a//b" refused: it is a second entry for "a/b"` + hostile},
		{name: "below a file", zip: zipOf(ok, zent{name: "x", body: "1"}, zent{name: "x/y", body: "2"}), untouched: true,
			err: `archive: entry "x/y" refused: it is below "x", which is a file entry` + hostile},

		{name: "through an existing symlink out", before: tree{"dir/pre": "link ../outside"},
			zip: zipOf(zent{name: "pre/secret", body: "overwritten"}), untouched: true,
			err: `archive: entry "pre/secret" cannot be extracted: "pre" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "through an existing symlink inside", before: tree{"dir/sub": "dir 0755", "dir/inner": "link sub"},
			zip: zipOf(zent{name: "inner/x", body: "x"}), untouched: true,
			err: `archive: entry "inner/x" cannot be extracted: "inner" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "directory entry on an existing symlink", before: tree{"dir/pre": "link ../outside"},
			zip: zipOf(zent{name: "pre/"}), untouched: true,
			err: `archive: entry "pre/" cannot be extracted: "pre" is a symlink in the directory, and nothing is written through one; archive the directory it points to instead`},
		{name: "file on an existing directory", before: tree{"dir/d": "dir 0755"},
			zip: zipOf(zent{name: "d", body: "x"}), untouched: true,
			err: `archive: entry "d" cannot be extracted: "d" already exists as a directory; the archive and the directory disagree about what it is`},
		{name: "below an existing file", before: tree{"dir/f": "file 0644 f"},
			zip: zipOf(zent{name: "f/x", body: "x"}), untouched: true,
			err: `archive: entry "f/x" cannot be extracted: "f" already exists as a file, not a directory; the archive and the directory disagree about what it is`},

		{name: "1 GiB of zeros", zip: func(t testing.TB) []byte { return zeroBomb(t, "zeros", 1<<30, 0) }, untouched: true, tooLarge: true,
			err: `archive: entry "zeros": archive too large: the archive holds more than 10485760 bytes; archive fewer files or raise the limit`},
		{name: "header understates", zip: func(t testing.TB) []byte { return zeroBomb(t, "liar", 64*mib, 1024) }, untouched: true,
			err: `archive: entry "liar" cannot be read (zip: not a valid zip file)` + damagedEnd},
		{name: "many entries each under the limit", tooLarge: true, zip: func(t testing.TB) []byte {
			var ents []zent
			for i := range 11 {
				ents = append(ents, zent{name: fmt.Sprintf("f%02d", i), body: strings.Repeat("0", mib)})
			}
			return makeZip(t, ents...)
		}, err: `archive: entry "f10": archive too large: the archive holds more than 10485760 bytes; archive fewer files or raise the limit`},
		{name: "symlink targets count", limit: 5, zip: zipOf(zent{name: "a", body: "1234"}, link("l", "a/../a")), untouched: true,
			err: `archive: entry "l" refused: it is a symlink whose target "a/../a" has ".." after a name, so a symlink on the way could lead it anywhere` + hostile},
		{name: "symlink target over the limit", limit: 5, tooLarge: true, zip: zipOf(zent{name: "a", body: "1234"}, link("l", "./a")),
			err: `archive: entry "l": archive too large: the archive holds more than 5 bytes; archive fewer files or raise the limit`},
		{name: "symlink targets held", limit: 10, tooLarge: true, untouched: true,
			zip: zipOf(ok, link("l0", "ok.txt"), link("l1", "ok.txt")),
			err: `archive: entry "l1": archive too large: the archive holds more than 10 bytes; archive fewer files or raise the limit`},
		{name: "entries", zip: func(t testing.TB) []byte { return manyEntries(t, 100_001) }, untouched: true, tooLarge: true,
			err: `archive: archive too large: 100001 entries, more than the 100000 allowed; archive fewer files`},

		{name: "truncated", zip: func(t testing.TB) []byte {
			b := makeZip(t, ok, zent{name: "b.txt", body: strings.Repeat("b", 1000)})
			return b[:len(b)/2]
		}, untouched: true, err: notZip},
		{name: "random bytes", zip: func(testing.TB) []byte {
			b := make([]byte, 4096)
			rand.NewChaCha8([32]byte{1}).Read(b)
			return b
		}, untouched: true, err: notZip},
		{name: "empty", zip: func(testing.TB) []byte { return nil }, untouched: true, err: notZip},
		{name: "checksum", zip: func(t testing.TB) []byte {
			return flipped(t, makeZip(t, ok, zent{name: "b.txt", body: "hello, world", store: true}), "hello, world")
		}, err: `archive: entry "b.txt" cannot be read (zip: checksum error)` + damagedEnd},
		{name: "symlink checksum", zip: func(t testing.TB) []byte {
			return flipped(t, makeZip(t, ok, zent{name: "l", attrs: 0o120777, body: "ok.txt", store: true}), "ok.txt\x50\x4b")
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
	b := makeZip(t, zent{name: "sub/file", body: "planted"})
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
	b := makeZip(t,
		zent{name: "f", body: "new f"},
		zent{name: "g", body: "new g"},
		zent{name: "h", body: "new h", mode: 0o755},
		link("s", "g"),
		zent{name: "d/", mode: fs.ModeDir | 0o755},
		zent{name: "d/e", body: "new e"},
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
	b := makeZip(t,
		zent{name: "setuid", attrs: 0o104755, body: "x"},
		zent{name: "setgid", attrs: 0o102711, body: "x"},
		zent{name: "sticky", attrs: 0o101777, body: "x"},
		zent{name: "world", attrs: 0o100666, body: "x"},
		zent{name: "private", attrs: 0o100600, body: "x"},
		zent{name: "exec-other", attrs: 0o100001, body: "x"},
		zent{name: "no-type", attrs: 0o000755, body: "x"},
		zent{name: "open/", attrs: 0o041777},
		zent{name: "closed/", attrs: 0o040500},
		zent{name: "implicit/file", attrs: 0o100644, body: "x"},
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
	b := makeZip(t, ok, zent{name: "../../escape", body: "x"})
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
	b := makeZip(t, zent{name: "a", body: "12345"}, link("l", "a"))
	if _, _, err := extractCase(t, b, nil, 6); err != nil {
		t.Errorf("6 bytes with a limit of 6: %v", err)
	}
}

func TestExtractMissingDir(t *testing.T) {
	b := makeZip(t, ok)
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
	f.Add(makeZip(f, ok, zent{name: "d/"}, zent{name: "d/x", body: "x", mode: 0o755}, link("d/l", "../ok.txt"), link("up", "d/..")))
	f.Fuzz(func(t *testing.T, b []byte) {
		extractCase(t, b, tree{"dir/pre": "link ../outside", "dir/file": "file 0644 f"}, 64<<10)
	})
}
