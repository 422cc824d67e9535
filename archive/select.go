package archive

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
)

// Reasons a path's real location cannot be used, from resolve.
var (
	errOutside = errors.New("following its symlinks leads outside the project directory")
	errLoop    = errors.New("its symlinks loop or nest too deeply")
)

// maxHops bounds the symlinks resolve follows, as the kernel's ELOOP does.
const maxHops = 40

// Select lists the regular files and symlinks under dir that patterns name,
// sorted, as paths relative to dir using "/". A pattern is a path relative
// to dir, a glob with ** (doublestar), or a directory, which stands for
// everything below it ("dist/" and "dist" alike). untracked are more paths,
// taken literally: those git reports as untracked (from
// `git ls-files -z --others --exclude-standard`, so that no name is quoted).
//
// Nothing outside dir is ever selected: the tree is walked through an
// os.Root, and only from inside dir. A pattern that is absolute or contains
// "..", and a match whose real location is outside dir, are refused with a
// warning for the job's trace. Directories are walked without following
// symlinks; a symlink is selected as a symlink when its target is relative
// and stays inside dir (the rule Extract applies), and skipped with a warning
// otherwise. A path through a symlinked directory inside dir ("out/bin" with
// out -> build) is selected under its real path ("build/bin"), so that no
// selected path has a symlink above it, which Extract would refuse. A
// pattern that matches nothing gives a warning too.
//
// err is non-nil only when dir itself cannot be opened.
func Select(dir string, patterns []string, untracked []string) (files []string, warnings []string, err error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("archive: opening the project directory: %w; check that the sources were fetched", err)
	}
	defer root.Close()
	s := &selection{root: root, files: map[string]bool{}}
	for _, p := range patterns {
		s.pattern(p, true)
	}
	for _, u := range untracked {
		s.pattern(u, false)
	}
	files = make([]string, 0, len(s.files))
	for f := range s.files {
		files = append(files, f)
	}
	slices.Sort(files)
	return files, s.warnings, nil
}

// selection is one Select call's state.
type selection struct {
	root     *os.Root
	files    map[string]bool
	warnings []string
	matched  int // matches of the current pattern, selected or not
}

func (s *selection) warnf(format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// pattern selects what raw names: a glob when glob is set, else a literal
// path (an untracked file).
func (s *selection) pattern(raw string, glob bool) {
	what := fmt.Sprintf("pattern %q", raw)
	if !glob {
		what = fmt.Sprintf("untracked file %q", raw)
	}
	p, ok := s.clean(what, raw, glob)
	if !ok {
		return
	}
	s.matched = 0
	warned := len(s.warnings)
	if glob && strings.ContainsAny(p, `*?[{\`) {
		s.glob(what, p)
	} else {
		s.literal(what, p)
	}
	if s.matched == 0 && len(s.warnings) == warned {
		s.warnf("%s matched no files", what)
	}
}

// clean refuses what cannot name a path inside dir, and returns raw cleaned.
func (s *selection) clean(what, raw string, glob bool) (string, bool) {
	switch {
	case raw == "":
		s.warnf("%s is empty; it is ignored", what)
		return "", false
	case strings.IndexByte(raw, 0) >= 0:
		s.warnf("%s contains a NUL byte; it is ignored", what)
		return "", false
	case strings.HasPrefix(raw, "/") || filepath.IsAbs(raw) || hasDriveLetter(raw):
		s.warnf("%s is absolute: paths are relative to the project directory; it is ignored", what)
		return "", false
	}
	// For a glob, also without its escapes: \.\. is ".." too.
	for _, v := range []string{raw, strings.ReplaceAll(raw, `\`, "")} {
		for seg := range strings.SplitSeq(v, "/") {
			if seg == ".." {
				s.warnf(`%s contains "..": paths must stay inside the project directory; it is ignored`, what)
				return "", false
			}
		}
		if !glob {
			break
		}
	}
	p := path.Clean(raw)
	if glob && !doublestar.ValidatePattern(p) {
		s.warnf("%s is not a valid glob (check its brackets, braces and backslashes); it is ignored", what)
		return "", false
	}
	return p, true
}

// literal selects the path p (clean, relative).
func (s *selection) literal(what, p string) {
	if p == "." {
		s.matched++
		s.walkAll(".")
		return
	}
	dir, name := path.Split(p)
	real, ok := s.resolveFor(what, path.Clean(dir))
	if !ok {
		return
	}
	q := join(real, name)
	fi, err := s.root.Lstat(q)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		s.warnf("%s: cannot read %q (%v); it is not archived", what, q, err)
		return
	}
	if q != p {
		s.warnf("%s goes through a symlink: it is archived under its real path %q", what, q)
	}
	s.matched++
	s.take(q, fi.Mode().Type())
	if fi.Mode().Type() == fs.ModeSymlink && s.files[q] {
		if fi, err := s.root.Stat(q); err == nil && fi.IsDir() {
			s.warnf("%s is a symlink to a directory: only the symlink is archived; write %q for the files it points to", what, p+"/**")
		}
	}
}

// glob selects what the glob p (clean, valid, relative) matches. It walks
// from the directory the pattern starts with, going deeper only as far as the
// pattern can match.
func (s *selection) glob(what, p string) {
	base, _ := doublestar.SplitPattern(p)
	real, ok := s.resolveFor(what, base)
	if !ok {
		return
	}
	if fi, err := s.root.Lstat(real); err != nil || !fi.IsDir() {
		return
	}
	maxDepth := -1 // unbounded
	if !strings.Contains(p, "**") && !strings.Contains(p, "{") {
		maxDepth = strings.Count(p, "/") + 1
		if base != "." {
			maxDepth -= strings.Count(base, "/") + 1
		}
	}
	s.walkMatch(p, real, base, 1, maxDepth)
	if real != base && s.matched > 0 {
		s.warnf("%s goes through a symlink: its matches are archived under their real path %q", what, real)
	}
}

// walkMatch selects the entries of the directory real, named shown in the
// pattern's terms, that p matches, and descends into the others.
func (s *selection) walkMatch(p, real, shown string, depth, maxDepth int) {
	for _, e := range s.readDir(real) {
		r, sh := join(real, e.Name()), join(shown, e.Name())
		switch {
		case doublestar.MatchUnvalidated(p, sh):
			s.matched++
			s.take(r, e.Type())
		case e.IsDir() && (maxDepth < 0 || depth < maxDepth):
			s.walkMatch(p, r, sh, depth+1, maxDepth)
		}
	}
}

// walkAll selects everything below the directory q.
func (s *selection) walkAll(q string) {
	for _, e := range s.readDir(q) {
		s.take(join(q, e.Name()), e.Type())
	}
}

// take selects q, of type typ, whose parents are real directories.
func (s *selection) take(q string, typ fs.FileMode) {
	switch typ {
	case 0:
		s.files[q] = true
	case fs.ModeDir:
		s.walkAll(q)
	case fs.ModeSymlink:
		s.link(q)
	default:
		s.warnf("%q is a %s: only files, directories and symlinks are archived; it is skipped", q, typeName(typ))
	}
}

// link selects the symlink q when Extract will accept it and following it
// stays inside dir. A dangling symlink is kept: it cannot lead anywhere yet.
func (s *selection) link(q string) {
	target, err := s.root.Readlink(q)
	if err != nil {
		s.warnf("%q is not archived: cannot read the symlink (%v)", q, err)
		return
	}
	if err := checkLinkTarget(q, target); err != nil {
		s.warnf("%q is not archived: %v; only relative symlinks that stay inside the project directory are", q, err)
		return
	}
	if _, err := s.resolve(q); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.warnf("%q is not archived: it is a symlink, and %v", q, err)
		return
	}
	s.files[q] = true
}

func (s *selection) readDir(q string) []fs.DirEntry {
	f, err := s.root.Open(q)
	if err != nil {
		s.warnf("cannot read the directory %q (%v); nothing below it is archived", q, err)
		return nil
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		s.warnf("cannot read the directory %q (%v); what is below it may be missing", q, err)
	}
	// ReadDir keeps the directory's order; sorting makes warnings repeatable.
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries
}

// resolveFor is resolve for a pattern's directory, warning when it fails for
// another reason than not existing.
func (s *selection) resolveFor(what, q string) (string, bool) {
	real, err := s.resolve(q)
	switch {
	case err == nil:
		return real, true
	case errors.Is(err, errOutside), errors.Is(err, errLoop):
		s.warnf("%s is refused: %v", what, err)
	case !errors.Is(err, fs.ErrNotExist):
		s.warnf("%s: cannot read %q (%v); it is not archived", what, q, err)
	}
	return "", false
}

// resolve returns the real location of q (clean, relative) below the root,
// following every symlink on the way, the last one included, one component
// at a time, so that ".." after a symlink goes where the kernel would take
// it. The error is errOutside when the way leaves the root, errLoop, or an
// error of Lstat (fs.ErrNotExist for a missing component).
func (s *selection) resolve(q string) (string, error) {
	var done []string
	todo := strings.Split(q, "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", errOutside
			}
			done = done[:len(done)-1]
			continue
		}
		p := strings.Join(append(done, c), "/")
		fi, err := s.root.Lstat(p)
		if err != nil {
			return "", err
		}
		if fi.Mode().Type() != fs.ModeSymlink {
			done = append(done, c)
			continue
		}
		if hops++; hops > maxHops {
			return "", errLoop
		}
		target, err := s.root.Readlink(p)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") || filepath.IsAbs(target) {
			return "", errOutside
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// join joins a clean relative directory and a name.
func join(dir, name string) string {
	if dir == "." || dir == "" {
		return name
	}
	return dir + "/" + name
}

// typeName names a file type for messages.
func typeName(typ fs.FileMode) string {
	switch {
	case typ&fs.ModeCharDevice != 0:
		return "character device"
	case typ&fs.ModeDevice != 0:
		return "device"
	case typ&fs.ModeNamedPipe != 0:
		return "named pipe"
	case typ&fs.ModeSocket != 0:
		return "socket"
	case typ&fs.ModeDir != 0 && typ&fs.ModeSymlink != 0:
		return "directory and symlink at once"
	default:
		return "file of an unknown type"
	}
}
