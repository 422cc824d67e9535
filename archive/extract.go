package archive

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"
)

// maxEntries bounds the entries of an archive to extract: an entry costs
// memory and a file even when empty, so the byte limit alone cannot stop a
// bomb of empty files.
const maxEntries = 100_000

// Extract unpacks the zip in r (size bytes long) into dir, which must exist.
// The archive is untrusted: it comes from another job. Extract refuses, with
// an error naming the entry and what is wrong with it, an archive holding
//
//   - an entry whose name is empty, absolute, starts with a drive letter,
//     contains a backslash, a NUL byte or a ".." segment;
//   - a symlink whose target is absolute, leads outside dir from the
//     entry's directory, or has ".." after a name (a symlink on the way
//     could then lead it anywhere);
//   - an entry of another type than regular file, directory and symlink;
//   - two entries with the same cleaned name, or an entry below a file or
//     symlink entry;
//   - an entry that would be written through a symlink already in dir;
//   - more than limit bytes of content, counted while writing (header sizes
//     are not trusted), or more than 100 000 entries: ErrTooLarge;
//     limit <= 0 means no byte limit;
//   - a body that is not a zip, is truncated, or fails its checksum.
//
// Names, types, symlink targets and duplicates are checked for every entry
// before the first is written; the other refusals stop Extract where they
// happen, leaving what was extracted so far but no partial file (the caller
// fails the job). Nothing is ever written outside dir: every access goes
// through an os.Root.
//
// Regular files are created 0755 when any execute bit is set, else 0644, and
// keep their modification time; directories are created 0755. An existing
// file or symlink of an entry's name is replaced (a dependency's file
// replaces the checkout's), never followed; an existing directory is not.
func Extract(r io.ReaderAt, size int64, dir string, limit int64) error {
	return extract(r, size, dir, limit, maxEntries, nil)
}

// extract is Extract with the entry cap, and a hook the tests use to swap a
// directory for a symlink just before a file is created in it: the os.Root
// must stop that, not the checks before it.
func extract(r io.ReaderAt, size int64, dir string, limit int64, capEntries int, beforeCreate func(name string)) error {
	zr, err := zip.NewReader(r, size)
	// ErrInsecurePath (with GODEBUG zipinsecurepath=0) comes with a usable
	// reader; the checks below refuse the entry it is about, by name.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("archive: not a readable zip archive (%v): it is truncated, damaged or not an archive; run the job that made it again", err)
	}
	if len(zr.File) > capEntries {
		return fmt.Errorf("archive: %w: %d entries, more than the %d allowed; archive fewer files", ErrTooLarge, len(zr.File), capEntries)
	}
	entries, err := plan(zr.File, limit)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("archive: opening the directory to extract into: %w; create it first", err)
	}
	defer root.Close()
	x := &extractor{root: root, limit: limit, beforeCreate: beforeCreate}
	for _, e := range entries {
		if err := x.extract(e); err != nil {
			return err
		}
	}
	return nil
}

// entry is a checked archive entry.
type entry struct {
	f      *zip.File
	name   string      // cleaned
	typ    fs.FileMode // 0, fs.ModeDir or fs.ModeSymlink
	target string      // of a symlink
}

// refused is the error for an entry that no archive from this runner has.
func refused(raw string, reason error) error {
	return fmt.Errorf("archive: entry %q refused: %v; the runner never writes such an entry, so the archive is damaged or hostile: check the job that made it", raw, reason)
}

// plan checks every entry's name, type and symlink target, and how the
// entries sit against each other, before anything is written. It holds the
// symlink targets, so their total is held to the limit here already.
func plan(files []*zip.File, limit int64) ([]entry, error) {
	var targets int64
	entries := make([]entry, 0, len(files))
	byName := make(map[string]fs.FileMode, len(files))
	for _, f := range files {
		if err := checkName(f.Name); err != nil {
			return nil, refused(f.Name, err)
		}
		e := entry{f: f, name: path.Clean(f.Name)}
		m := f.Mode()
		switch m.Type() {
		case 0, fs.ModeDir:
			e.typ = m.Type()
		case fs.ModeSymlink:
			e.typ = fs.ModeSymlink
			target, err := readTarget(f)
			if err != nil {
				return nil, err
			}
			if err := checkLinkTarget(e.name, target); err != nil {
				return nil, refused(f.Name, err)
			}
			if targets += int64(len(target)); limit > 0 && targets > limit {
				return nil, tooLarge(f.Name, limit)
			}
			e.target = target
		default:
			return nil, refused(f.Name, fmt.Errorf("it is a %s; only files, directories and symlinks are extracted", typeName(m.Type())))
		}
		if _, dup := byName[e.name]; dup {
			return nil, refused(f.Name, fmt.Errorf("it is a second entry for %q", e.name))
		}
		byName[e.name] = e.typ
		entries = append(entries, e)
	}
	for _, e := range entries {
		for d := path.Dir(e.name); d != "."; d = path.Dir(d) {
			switch typ, ok := byName[d]; {
			case !ok || typ == fs.ModeDir:
			case typ == fs.ModeSymlink:
				return nil, refused(e.f.Name, fmt.Errorf("it would be written through the symlink entry %q", d))
			default:
				return nil, refused(e.f.Name, fmt.Errorf("it is below %q, which is a file entry", d))
			}
		}
	}
	return entries, nil
}

// readTarget reads a symlink entry's target, to its end so that the checksum
// is verified.
func readTarget(f *zip.File) (string, error) {
	rc, err := f.Open()
	if err != nil {
		return "", damaged(f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return "", damaged(f.Name, err)
	}
	return string(b), nil
}

func damaged(raw string, err error) error {
	return fmt.Errorf("archive: entry %q cannot be read (%v): the archive is damaged; run the job that made it again", raw, err)
}

// extractor is one Extract call's state.
type extractor struct {
	root         *os.Root
	limit        int64
	written      int64
	beforeCreate func(name string)
}

func (x *extractor) extract(e entry) error {
	if err := x.mkdirs(e, path.Dir(e.name)); err != nil {
		return err
	}
	switch e.typ {
	case fs.ModeDir:
		return x.mkdirs(e, e.name)
	case fs.ModeSymlink:
		if err := x.clear(e); err != nil {
			return err
		}
		if x.limit > 0 && int64(len(e.target)) > x.limit-x.written {
			return tooLarge(e.f.Name, x.limit)
		}
		x.written += int64(len(e.target))
		if err := x.root.Symlink(e.target, e.name); err != nil {
			return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
		}
		return nil
	default:
		return x.file(e)
	}
}

// mkdirs makes sure d and its parents are directories, creating them 0755,
// and refuses to go through a symlink or a file.
func (x *extractor) mkdirs(e entry, d string) error {
	if d == "." {
		return nil
	}
	var p string
	for seg := range strings.SplitSeq(d, "/") {
		p = join(p, seg)
		fi, err := x.root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			if err := x.root.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
			}
			// Mkdir's mode is cut by the umask; the promise is 0755.
			if err := x.root.Chmod(p, 0o755); err != nil {
				return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
			}
			continue
		}
		switch {
		case err != nil:
			return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
		case fi.Mode().Type() == fs.ModeSymlink:
			return fmt.Errorf("archive: entry %q cannot be extracted: %q is a symlink in the directory, and nothing is written through one; archive the directory it points to instead", e.f.Name, p)
		case !fi.IsDir():
			return fmt.Errorf("archive: entry %q cannot be extracted: %q already exists as a file, not a directory; the archive and the directory disagree about what it is", e.f.Name, p)
		}
	}
	return nil
}

// clear removes a file or symlink of e's name, so that e replaces it instead
// of writing through it.
func (x *extractor) clear(e entry) error {
	fi, err := x.root.Lstat(e.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
	case fi.IsDir():
		return fmt.Errorf("archive: entry %q cannot be extracted: %q already exists as a directory; the archive and the directory disagree about what it is", e.f.Name, e.name)
	}
	if err := x.root.Remove(e.name); err != nil {
		return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
	}
	return nil
}

func (x *extractor) file(e entry) error {
	if err := x.clear(e); err != nil {
		return err
	}
	if x.beforeCreate != nil {
		x.beforeCreate(e.name)
	}
	perm := filePerm(e.f.Mode())
	// O_EXCL: if anything took the name since clear, fail rather than
	// follow it.
	f, err := x.root.OpenFile(e.name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
	}
	err = x.fill(e, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		x.root.Remove(e.name) // no partial file stays behind
		return err
	}
	if mt := e.f.Modified; !mt.IsZero() {
		if err := x.root.Chtimes(e.name, time.Time{}, mt); err != nil {
			return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
		}
	}
	return nil
}

// fill copies e's content into f, counting what is written against the
// limit: a header's sizes are the archive's claim, not a fact.
func (x *extractor) fill(e entry, f *os.File) error {
	if err := f.Chmod(filePerm(e.f.Mode())); err != nil { // past the umask
		return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
	}
	rc, err := e.f.Open()
	if err != nil {
		return damaged(e.f.Name, err)
	}
	defer rc.Close()
	var src io.Reader = rc
	if x.limit > 0 {
		src = io.LimitReader(rc, x.limit-x.written+1)
	}
	n, err := io.Copy(f, src)
	x.written += n
	if x.limit > 0 && x.written > x.limit {
		return tooLarge(e.f.Name, x.limit)
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("archive: entry %q: %w", e.f.Name, err)
		}
		return damaged(e.f.Name, err)
	}
	return nil
}

func tooLarge(raw string, limit int64) error {
	return fmt.Errorf("archive: entry %q: %w: the archive holds more than %d bytes; archive fewer files or raise the limit", raw, ErrTooLarge, limit)
}
