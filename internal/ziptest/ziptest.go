// Package ziptest builds zip archives for tests as a hostile archiver
// would: names taken as given, Unix modes set by hand, bombs streamed
// without ever holding what they inflate to, and archives cut short.
package ziptest

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"hash/crc32"
	"io"
	"io/fs"
	"testing"
)

// Entry is an entry of a zip made by Zip: a file, a directory (a name
// ending in "/"), or a symlink to Body.
type Entry struct {
	Name string
	Body string // a file's content or a symlink's target
	// Mode goes through FileHeader.SetMode; 0 is 0644.
	Mode fs.FileMode
	// Attrs, when set, is the raw Unix mode put into the external
	// attributes by hand (a device, a pipe, a setuid file), and Mode is
	// ignored.
	Attrs uint32
	Store bool // no compression, so that tests can find and flip its bytes
}

// Symlink is a symlink entry with the Unix mode set by hand.
func Symlink(name, target string) Entry { return Entry{Name: name, Attrs: 0o120777, Body: target} }

// Zip builds a zip of ents in memory, taking names and modes as given.
func Zip(t testing.TB, ents ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range ents {
		h := &zip.FileHeader{Name: e.Name, Method: zip.Deflate}
		if e.Store {
			h.Method = zip.Store
		}
		switch {
		case e.Attrs != 0:
			h.CreatorVersion = 3<<8 | 20 // made on Unix, zip 2.0
			h.ExternalAttrs = e.Attrs << 16
		case e.Mode == 0:
			h.SetMode(0o644)
		default:
			h.SetMode(e.Mode)
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatalf("creating entry %q: %v", e.Name, err)
		}
		if _, err := io.WriteString(w, e.Body); err != nil {
			t.Fatalf("writing entry %q: %v", e.Name, err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// ZeroBomb is a zip of one entry of size bytes of zeros (a multiple of
// 1 MiB), about size/1024 bytes long, made without ever holding them: one
// MiB is deflated and flushed so that it ends on a byte boundary and refers
// only to itself, and then repeated. Its header tells the truth about the
// size unless claimed is set.
func ZeroBomb(t testing.TB, name string, size int64, claimed uint64) []byte {
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

// Truncated is the first half of b: for a zip, its central directory is
// gone.
func Truncated(b []byte) []byte { return b[:len(b)/2] }

// Entries reads an archive as name -> content (a symlink's target).
func Entries(t testing.TB, b []byte) map[string]string {
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
