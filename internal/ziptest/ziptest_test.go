package ziptest

import (
	"archive/zip"
	"bytes"
	"io"
	"testing"
)

func TestZeroBombIsOne(t *testing.T) {
	b := ZeroBomb(t, "zeros", 1<<30, 0)
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
	// Past the 10 MiB limit of the archive tests is enough: beyond it
	// nothing is read.
	n, err := io.Copy(io.Discard, io.LimitReader(rc, 11<<20))
	if n != 11<<20 || err != nil {
		t.Fatalf("the bomb inflates to %d bytes (%v), want at least 11 MiB", n, err)
	}
}
