package jobs_test

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// zent is an entry of a zip made by zipOf: a file, or a symlink to body
// when mode has fs.ModeSymlink. Names are taken as given, as a hostile
// archiver would write them.
type zent struct {
	name string
	body string
	mode fs.FileMode
}

func zipOf(t *testing.T, ents ...zent) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// zeroBomb is a zip of one entry "zeros" of size bytes of zeros (a multiple
// of 1 MiB), about size/1024 bytes long: one MiB deflated, flushed to a
// byte boundary so that it stands alone, and repeated.
func zeroBomb(t *testing.T, size int64) []byte {
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
	h := &zip.FileHeader{Name: "zeros", Method: zip.Deflate, CRC32: crc,
		CompressedSize64: uint64(comp.Len()), UncompressedSize64: uint64(size)}
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

// zipEntries reads an archive as name -> content (a symlink's target).
func zipEntries(t *testing.T, b []byte) map[string]string {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = string(body)
	}
	return out
}

// tree lists every path under root.
func tree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out[p] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertOnlyInside checks that every path under root that was not in before
// is dir, inside dir, or a directory on the way to it.
func assertOnlyInside(t *testing.T, root string, before map[string]bool, dir string) {
	t.Helper()
	var outside []string
	for p := range tree(t, root) {
		if before[p] || p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) ||
			strings.HasPrefix(dir, p+string(filepath.Separator)) {
			continue
		}
		outside = append(outside, p)
	}
	sort.Strings(outside)
	if len(outside) > 0 {
		t.Errorf("written outside the project directory %s: %v", dir, outside)
	}
}

// projectDir is the one checkout of project 7 under buildsDir.
func projectDir(t *testing.T, buildsDir string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(buildsDir, "*", "0", "project-7"))
	if len(dirs) != 1 {
		t.Fatalf("project directories: %v, want one", dirs)
	}
	return dirs[0]
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
