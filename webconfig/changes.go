package webconfig

import (
	"crypto/sha256"
	"errors"
	"io/fs"
)

// fileRead is what one read of a dependency returned: enough to tell later
// whether the file changed, without keeping its contents (which may be a key).
type fileRead struct {
	path string
	sum  [sha256.Size]byte
	err  string
}

func newFileRead(path string, b []byte, err error) fileRead {
	r := fileRead{path: path}
	switch {
	case err == nil:
		r.sum = sha256.Sum256(b)
	case errors.Is(err, fs.ErrNotExist):
		r.err = "missing"
	default:
		r.err = unwrapPathError(err).Error()
	}
	return r
}

// fingerprint condenses a set of reads into one comparable value.
func fingerprint(reads []fileRead) [sha256.Size]byte {
	h := sha256.New()
	for _, r := range reads {
		h.Write([]byte(r.path))
		h.Write([]byte{0})
		h.Write(r.sum[:])
		h.Write([]byte(r.err))
		h.Write([]byte{0})
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// rereadAll reads the given paths again, as they are now.
func rereadAll(paths []string) []fileRead {
	out := make([]fileRead, 0, len(paths))
	for _, p := range paths {
		b, err := readLimited(p)
		out = append(out, newFileRead(p, b, err))
	}
	return out
}
