package jobs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

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
