package archive

import (
	"archive/zip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Write streams a zip of files (as Select returns them) from dir to w. It
// holds one file's buffer at a time, never the archive. It fails with
// ErrTooLarge once more than limit bytes of content (file contents and
// symlink targets) would be written; limit <= 0 means no limit. Regular files
// keep their modification time and are stored as 0755 when any execute bit
// is set, else 0644; symlinks are stored as symlink entries, and must pass
// the rule Extract applies; a directory is stored as an entry of its own.
//
// On error, what was written to w is not a usable archive.
func Write(w io.Writer, dir string, files []string, limit int64) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("archive: opening the project directory: %w; check that the sources were fetched", err)
	}
	defer root.Close()
	aw := &writer{root: root, zw: zip.NewWriter(w), limit: limit}
	seen := make(map[string]bool, len(files))
	for _, name := range files {
		if err := checkName(name); err != nil {
			return fmt.Errorf("archive: cannot archive %q: %v; pass the paths Select returns", name, err)
		}
		if seen[name] {
			return fmt.Errorf("archive: %q is listed twice; pass the paths Select returns", name)
		}
		seen[name] = true
		if err := aw.add(name); err != nil {
			return err
		}
	}
	if err := aw.zw.Close(); err != nil {
		return fmt.Errorf("archive: finishing the archive: %w", err)
	}
	return nil
}

// writer is one Write call's state.
type writer struct {
	root    *os.Root
	zw      *zip.Writer
	limit   int64
	written int64
}

func (aw *writer) add(name string) error {
	fi, err := aw.root.Lstat(name)
	if err != nil {
		return fmt.Errorf("archive: cannot archive %q: %w; did something change the files after the job's script?", name, err)
	}
	switch fi.Mode().Type() {
	case 0:
		return aw.addFile(name, fi)
	case fs.ModeSymlink:
		return aw.addLink(name)
	case fs.ModeDir:
		h := &zip.FileHeader{Name: name + "/", Method: zip.Store, Modified: fi.ModTime()}
		h.SetMode(fs.ModeDir | 0o755)
		_, err := aw.zw.CreateHeader(h)
		return err
	default:
		return fmt.Errorf("archive: cannot archive %q: it is a %s; only files, directories and symlinks can be", name, typeName(fi.Mode().Type()))
	}
}

func (aw *writer) addFile(name string, fi fs.FileInfo) error {
	if aw.limit > 0 && fi.Size() > aw.limit-aw.written {
		return aw.tooLarge(name)
	}
	f, err := aw.root.Open(name)
	if err != nil {
		return fmt.Errorf("archive: cannot archive %q: %w", name, err)
	}
	defer f.Close()
	// Lstat and Open are two steps; refuse what was swapped in between
	// (a fifo would block the read forever).
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("archive: cannot archive %q: it changed while being archived; run the job again", name)
	}
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: fi.ModTime()}
	h.SetMode(filePerm(fi.Mode()))
	zf, err := aw.zw.CreateHeader(h)
	if err != nil {
		return fmt.Errorf("archive: adding %q: %w", name, err)
	}
	var src io.Reader = f
	if aw.limit > 0 {
		// One byte more than allowed shows that the file grew past the limit.
		src = io.LimitReader(f, aw.limit-aw.written+1)
	}
	n, err := io.Copy(zf, src)
	aw.written += n
	if err != nil {
		return fmt.Errorf("archive: adding %q: %w", name, err)
	}
	if aw.limit > 0 && aw.written > aw.limit {
		return aw.tooLarge(name)
	}
	return nil
}

func (aw *writer) addLink(name string) error {
	target, err := aw.root.Readlink(name)
	if err != nil {
		return fmt.Errorf("archive: cannot archive %q: %w", name, err)
	}
	if err := checkLinkTarget(name, target); err != nil {
		return fmt.Errorf("archive: cannot archive %q: %v; only relative symlinks that stay inside the project directory can be", name, err)
	}
	if aw.limit > 0 && int64(len(target)) > aw.limit-aw.written {
		return aw.tooLarge(name)
	}
	h := &zip.FileHeader{Name: name, Method: zip.Store}
	h.SetMode(fs.ModeSymlink | 0o777)
	zf, err := aw.zw.CreateHeader(h)
	if err == nil {
		_, err = io.WriteString(zf, target)
	}
	if err != nil {
		return fmt.Errorf("archive: adding %q: %w", name, err)
	}
	aw.written += int64(len(target))
	return nil
}

func (aw *writer) tooLarge(name string) error {
	return fmt.Errorf("archive: adding %q: %w: the files come to more than %d bytes; archive fewer files or raise the limit", name, ErrTooLarge, aw.limit)
}

// filePerm is the mode a regular file is archived and extracted with: only
// whether it is executable survives, so that no archive carries setuid,
// setgid, sticky or world-writable files from one job to another.
func filePerm(m fs.FileMode) fs.FileMode {
	if m&0o111 != 0 {
		return 0o755
	}
	return 0o644
}

// WriteFileAtomic writes path with write, through a temporary file in the
// same directory that is synced and renamed over path only when write
// succeeded, so that a crash or a failed write never leaves half an archive
// that the next job would trust. The temporary file is removed on failure,
// and the file is created 0600: it is the runner's, not the job's.
func WriteFileAtomic(path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return fmt.Errorf("archive: creating a temporary file next to %s: %w; check that its directory exists and is writable", path, err)
	}
	renamed := false
	defer func() {
		// Also on a panic in write: no temporary file stays behind.
		if !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("archive: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("archive: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("archive: writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("archive: writing %s: %w", path, err)
	}
	renamed = true
	// The rename is durable only once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("archive: %s is written but may not survive a crash: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("archive: %s is written but may not survive a crash: %w", path, err)
	}
	return nil
}
