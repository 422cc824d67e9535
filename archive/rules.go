package archive

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// ErrTooLarge is returned (wrapped) when an archive's content would exceed
// the limit in bytes, or an archive to extract has more entries than allowed.
var ErrTooLarge = errors.New("archive too large")

// maxLinkTarget bounds a symlink's target; it is PATH_MAX on Linux.
const maxLinkTarget = 4096

// checkName says what is wrong with an entry name, or returns nil. The same
// rule holds for Write and Extract, so that every archive Write makes can be
// extracted. Backslashes and drive letters are refused although they are
// plain characters on Linux, because other unzip tools read them as
// separators and would write elsewhere.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("its name is empty")
	case strings.IndexByte(name, 0) >= 0:
		return errors.New("its name contains a NUL byte")
	case strings.Contains(name, `\`):
		return errors.New("its name contains a backslash")
	case strings.HasPrefix(name, "/"):
		return errors.New("its name is absolute")
	case hasDriveLetter(name):
		return errors.New("its name starts with a drive letter")
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == ".." {
			return errors.New(`its name contains a ".." segment`)
		}
	}
	if path.Clean(name) == "." {
		return errors.New("its name is the extraction directory itself")
	}
	return nil
}

func hasDriveLetter(s string) bool {
	return len(s) >= 2 && s[1] == ':' && ('a' <= s[0] && s[0] <= 'z' || 'A' <= s[0] && s[0] <= 'Z')
}

// checkLinkTarget says what is wrong with target as the target of the
// symlink name (a clean relative name), or returns nil.
//
// A target may climb with leading ".." segments only, no higher than the
// directory holding the archive, and then only descend. Cleaning the target
// lexically would not be enough: with "d/l -> .." in place, "x -> d/l/.."
// cleans to "d" but really leads to the parent of the directory. When every
// symlink climbs first and only from a real directory (Extract never writes
// through a symlink), following any chain of them stays inside.
func checkLinkTarget(name, target string) error {
	switch {
	case target == "":
		return errors.New("it is a symlink with an empty target")
	case len(target) > maxLinkTarget:
		return fmt.Errorf("it is a symlink whose target is longer than %d bytes", maxLinkTarget)
	case strings.IndexByte(target, 0) >= 0:
		return errors.New("it is a symlink whose target contains a NUL byte")
	case strings.Contains(target, `\`):
		return fmt.Errorf("it is a symlink whose target %q contains a backslash", target)
	case strings.HasPrefix(target, "/") || hasDriveLetter(target):
		return fmt.Errorf("it is a symlink to the absolute path %q", target)
	}
	up, descended := 0, false
	for seg := range strings.SplitSeq(target, "/") {
		switch seg {
		case "", ".":
		case "..":
			if descended {
				return fmt.Errorf(`it is a symlink whose target %q has ".." after a name, so a symlink on the way could lead it anywhere`, target)
			}
			up++
		default:
			descended = true
		}
	}
	if depth := strings.Count(path.Clean(name), "/"); up > depth {
		return fmt.Errorf("it is a symlink whose target %q leads outside the directory", target)
	}
	return nil
}
