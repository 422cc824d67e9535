package archive

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// tree is a set of paths below a directory with what each is: "file 0644
// content", "dir 0755", "link target".
type tree map[string]string

func fromUnixPerm(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	for bit, flag := range map[uint32]fs.FileMode{0o4000: fs.ModeSetuid, 0o2000: fs.ModeSetgid, 0o1000: fs.ModeSticky} {
		if u&bit != 0 {
			m |= flag
		}
	}
	return m
}

// makeTree creates tr below root.
func makeTree(t testing.TB, root string, tr tree) {
	t.Helper()
	names := make([]string, 0, len(tr))
	for n := range tr {
		names = append(names, n)
	}
	slices.Sort(names) // parents first
	for _, n := range names {
		p := filepath.Join(root, filepath.FromSlash(n))
		var err error
		switch kind, rest, _ := strings.Cut(tr[n], " "); kind {
		case "file":
			perm, content, _ := strings.Cut(rest, " ")
			var m uint32
			fmt.Sscanf(perm, "%o", &m)
			err = os.WriteFile(p, []byte(content), 0o600)
			if err == nil {
				err = os.Chmod(p, fromUnixPerm(m))
			}
		case "dir":
			err = os.Mkdir(p, 0o755)
		case "link":
			err = os.Symlink(rest, p)
		default:
			t.Fatalf("makeTree: %q: unknown kind %q", n, kind)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
