package archive

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// selectTree is a project directory "src" with a sibling "outside" that no
// selection may reach, and symlinks that try.
var selectTree = tree{
	"outside":             "dir 0755",
	"outside/secret":      "file 0600 secret",
	"src":                 "dir 0755",
	"src/a.txt":           "file 0644 a",
	"src/b.log":           "file 0644 b",
	"src/.hidden":         "file 0644 h",
	"src/dist":            "dir 0755",
	"src/dist/app":        "file 0755 app",
	"src/dist/sub":        "dir 0755",
	"src/dist/sub/x.js":   "file 0644 x",
	"src/dist/sub/y.log":  "file 0644 y",
	"src/code":            "dir 0755",
	"src/code/main.go":    "file 0644 m",
	"src/code/pkg":        "dir 0755",
	"src/code/pkg/lib.go": "file 0644 l",
	"src/f[1].txt":        "file 0644 brackets",
	"src/out":             "link dist", // a directory inside
	"src/bin":             "dir 0755",
	"src/bin/tool":        "link ../dist/app",       // a file inside
	"src/esc":             "link ../outside",        // a directory outside
	"src/escfile":         "link ../outside/secret", // a file outside
	"src/abs":             "link /etc/passwd",       // absolute
	"src/chain":           "link escfile",           // inside, but on to outside
	"src/loop1":           "link loop2",
	"src/loop2":           "link loop1",
	"src/dangling":        "link not-there",          // inside, not yet existing
	"src/twisty":          "link dist/../../outside", // ".." after a name
	"src/deep":            "dir 0755",
	"src/deep/up":         "link ..",                   // the project directory
	"src/deep/upout":      "link up/../outside/secret", // ".." after a symlink
}

// newSelectTree makes selectTree with a fifo in it, and returns src.
func newSelectTree(t testing.TB, parent string) string {
	t.Helper()
	makeTree(t, parent, selectTree)
	src := filepath.Join(parent, "src")
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return src
}

func TestSelect(t *testing.T) {
	src := newSelectTree(t, t.TempDir())
	everything := []string{".hidden", "a.txt", "b.log", "bin/tool", "code/main.go", "code/pkg/lib.go", "dangling", "deep/up", "dist/app", "dist/sub/x.js", "dist/sub/y.log", "f[1].txt", "out"}
	refusedLinks := []string{
		`"abs" is not archived: it is a symlink to the absolute path "/etc/passwd"; only relative symlinks that stay inside the project directory are`,
		`"chain" is not archived: it is a symlink, and following its symlinks leads outside the project directory`,
		`"deep/upout" is not archived: it is a symlink whose target "up/../outside/secret" has ".." after a name, so a symlink on the way could lead it anywhere; only relative symlinks that stay inside the project directory are`,
		`"esc" is not archived: it is a symlink whose target "../outside" leads outside the directory; only relative symlinks that stay inside the project directory are`,
		`"escfile" is not archived: it is a symlink whose target "../outside/secret" leads outside the directory; only relative symlinks that stay inside the project directory are`,
		`"fifo" is a named pipe: only files, directories and symlinks are archived; it is skipped`,
		`"loop1" is not archived: it is a symlink, and its symlinks loop or nest too deeply`,
		`"loop2" is not archived: it is a symlink, and its symlinks loop or nest too deeply`,
		`"twisty" is not archived: it is a symlink whose target "dist/../../outside" has ".." after a name, so a symlink on the way could lead it anywhere; only relative symlinks that stay inside the project directory are`,
	}
	for _, tc := range []struct {
		name      string
		patterns  []string
		untracked []string
		files     []string
		warnings  []string
	}{
		{name: "glob with **", patterns: []string{"**/*.log"}, files: []string{"b.log", "dist/sub/y.log"}},
		{name: "glob below a directory", patterns: []string{"code/**/*.go"}, files: []string{"code/main.go", "code/pkg/lib.go"}},
		{name: "star matches directories whole", patterns: []string{"dist/*"}, files: []string{"dist/app", "dist/sub/x.js", "dist/sub/y.log"}},
		{name: "star does not descend", patterns: []string{"*.txt"}, files: []string{"a.txt", "f[1].txt"}},
		{name: "directory", patterns: []string{"dist"}, files: []string{"dist/app", "dist/sub/x.js", "dist/sub/y.log"}},
		{name: "directory with slash", patterns: []string{"dist/"}, files: []string{"dist/app", "dist/sub/x.js", "dist/sub/y.log"}},
		{name: "directory with **", patterns: []string{"./dist/**"}, files: []string{"dist/app", "dist/sub/x.js", "dist/sub/y.log"}},
		{name: "overlapping patterns", patterns: []string{"dist/sub", "**/*.js", "dist/sub/x.js"}, files: []string{"dist/sub/x.js", "dist/sub/y.log"}},
		{name: "escaped glob", patterns: []string{`f\[1\].txt`}, files: []string{"f[1].txt"}},
		{name: "literal untracked", untracked: []string{"f[1].txt", "a.txt"}, files: []string{"a.txt", "f[1].txt"}},
		{name: "file symlink inside", patterns: []string{"bin/tool"}, files: []string{"bin/tool"}},
		{name: "dangling symlink inside", patterns: []string{"dangling"}, files: []string{"dangling"}},
		{name: "symlink to the directory itself", patterns: []string{"deep/up"}, files: []string{"deep/up"},
			warnings: []string{`pattern "deep/up" is a symlink to a directory: only the symlink is archived; write "deep/up/**" for the files it points to`}},
		{name: "directory symlink", patterns: []string{"out"}, files: []string{"out"},
			warnings: []string{`pattern "out" is a symlink to a directory: only the symlink is archived; write "out/**" for the files it points to`}},
		{name: "through a directory symlink", patterns: []string{"out/sub/x.js"}, files: []string{"dist/sub/x.js"},
			warnings: []string{`pattern "out/sub/x.js" goes through a symlink: it is archived under its real path "dist/sub/x.js"`}},
		{name: "glob through a directory symlink", patterns: []string{"out/**/*.log"}, files: []string{"dist/sub/y.log"},
			warnings: []string{`pattern "out/**/*.log" goes through a symlink: its matches are archived under their real path "dist"`}},
		{name: "everything", patterns: []string{"**"}, files: everything, warnings: refusedLinks},
		{name: "dot", patterns: []string{"."}, files: everything, warnings: refusedLinks},

		{name: "absolute", patterns: []string{"/etc/passwd", "/"}, warnings: []string{
			`pattern "/etc/passwd" is absolute: paths are relative to the project directory; it is ignored`,
			`pattern "/" is absolute: paths are relative to the project directory; it is ignored`}},
		{name: "dot dot", patterns: []string{"../outside/secret", "dist/../../outside", "..", `\.\./outside`, "**/../*"}, warnings: []string{
			`pattern "../outside/secret" contains "..": paths must stay inside the project directory; it is ignored`,
			`pattern "dist/../../outside" contains "..": paths must stay inside the project directory; it is ignored`,
			`pattern ".." contains "..": paths must stay inside the project directory; it is ignored`,
			`pattern "\\.\\./outside" contains "..": paths must stay inside the project directory; it is ignored`,
			`pattern "**/../*" contains "..": paths must stay inside the project directory; it is ignored`}},
		{name: "untracked dot dot", untracked: []string{"../outside/secret", "/etc/passwd"}, warnings: []string{
			`untracked file "../outside/secret" contains "..": paths must stay inside the project directory; it is ignored`,
			`untracked file "/etc/passwd" is absolute: paths are relative to the project directory; it is ignored`}},
		{name: "through a symlink outside", patterns: []string{"esc/secret", "esc/**", "esc/*"}, warnings: []string{
			`pattern "esc/secret" is refused: following its symlinks leads outside the project directory`,
			`pattern "esc/**" is refused: following its symlinks leads outside the project directory`,
			`pattern "esc/*" is refused: following its symlinks leads outside the project directory`}},
		{name: "through a symlink up and out", patterns: []string{"deep/up/../outside/secret", "deep/up/deep/up/a.txt"}, files: []string{"a.txt"}, warnings: []string{
			`pattern "deep/up/../outside/secret" contains "..": paths must stay inside the project directory; it is ignored`,
			`pattern "deep/up/deep/up/a.txt" goes through a symlink: it is archived under its real path "a.txt"`}},
		{name: "symlinks outside", patterns: []string{"esc", "escfile", "abs", "chain", "loop1", "twisty"}, warnings: []string{
			refusedLinks[3], refusedLinks[4], refusedLinks[0], refusedLinks[1], refusedLinks[6], refusedLinks[8]}},
		{name: "fifo", patterns: []string{"fifo"}, warnings: []string{refusedLinks[5]}},
		{name: "nothing", patterns: []string{"missing.txt", "nothing*", "dist/none/**", "a.txt/*", ""}, warnings: []string{
			`pattern "missing.txt" matched no files`,
			`pattern "nothing*" matched no files`,
			`pattern "dist/none/**" matched no files`,
			`pattern "a.txt/*" matched no files`,
			`pattern "" is empty; it is ignored`}},
		{name: "bad glob", patterns: []string{"[unclosed", "{a,b"}, warnings: []string{
			`pattern "[unclosed" is not a valid glob (check its brackets, braces and backslashes); it is ignored`,
			`pattern "{a,b" is not a valid glob (check its brackets, braces and backslashes); it is ignored`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, warnings, err := Select(src, tc.patterns, tc.untracked)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(files, tc.files) && len(files)+len(tc.files) > 0 {
				t.Errorf("files = %q\nwant    %q", files, tc.files)
			}
			if !slices.Equal(warnings, tc.warnings) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(tc.warnings, "\n"))
			}
			assertSelectedInside(t, src, files)
		})
	}
}

func TestSelectMissingDir(t *testing.T) {
	_, _, err := Select(filepath.Join(t.TempDir(), "missing"), []string{"**"}, nil)
	if err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.HasSuffix(err.Error(), "; check that the sources were fetched") {
		t.Errorf("Select of a missing directory = %v", err)
	}
}

// assertSelectedInside fails unless every file is a clean relative name
// whose parents are real directories inside dir, and which is a regular
// file, or a symlink that Extract accepts and whose real location, as far as
// it exists, is inside dir.
func assertSelectedInside(t *testing.T, dir string, files []string) {
	t.Helper()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := checkName(f); err != nil || filepath.ToSlash(filepath.Clean(f)) != f {
			t.Errorf("selected %q, not a clean relative name: %v", f, err)
			continue
		}
		p := filepath.Join(dir, f)
		parent, err := filepath.EvalSymlinks(filepath.Dir(p))
		if err != nil || parent != filepath.Join(realDir, filepath.Dir(f)) {
			t.Errorf("selected %q below a symlink (its directory is really %q, %v)", f, parent, err)
			continue
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Errorf("selected %q: %v", f, err)
			continue
		}
		switch fi.Mode().Type() {
		case 0:
		case fs.ModeSymlink:
			target, _ := os.Readlink(p)
			if err := checkLinkTarget(f, target); err != nil {
				t.Errorf("selected symlink %q that Extract refuses: %v", f, err)
			}
			if real := realPrefix(t, p); !inside(realDir, real) {
				t.Errorf("selected symlink %q leads to %q, outside %q", f, real, realDir)
			}
		default:
			t.Errorf("selected %q of type %v", f, fi.Mode().Type())
		}
	}
}

// realPrefix resolves p as far as it exists, following every symlink.
func realPrefix(t testing.TB, p string) string {
	t.Helper()
	done := "/"
	todo := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(todo) > 0; {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = filepath.Dir(done)
			continue
		}
		next := filepath.Join(done, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return next // stops existing here
		}
		if fi.Mode().Type() != fs.ModeSymlink {
			done = next
			continue
		}
		if hops++; hops > 40 {
			return next
		}
		target, err := os.Readlink(next)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.IsAbs(target) {
			done = "/"
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return done
}

func inside(dir, p string) bool {
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator))
}

// FuzzSelect tries pattern strings against a tree whose symlinks try to lead
// outside: Select never panics, and never selects anything outside.
func FuzzSelect(f *testing.F) {
	for _, seed := range []string{
		"**", ".", "*", "**/*", "dist/", "out/**", "esc/**", "esc/secret", "../outside/secret", "/etc/passwd",
		"deep/up/deep/up/**", "deep/up/../outside", `\.\./outside`, "{esc,out}/**", "[!a]*/**", "**/..", "a/**/b",
		"escfile", "chain", "loop1/x", "twisty/secret", "deep/upout", "f[1].txt", "C:/x", `\`, "\x00", "",
	} {
		f.Add(seed)
	}
	src := newSelectTree(f, f.TempDir())
	f.Fuzz(func(t *testing.T, pattern string) {
		files, _, err := Select(src, []string{pattern}, []string{pattern})
		if err != nil {
			t.Fatal(err)
		}
		assertSelectedInside(t, src, files)
		for _, file := range files {
			if strings.Contains(file, "secret") {
				t.Errorf("pattern %q selected %q", pattern, file)
			}
		}
	})
}

// The checks in front are not the boundary: walking through a symlink that
// leads outside, which Select never asks for, is stopped by the os.Root.
func TestSelectRootIsTheBoundary(t *testing.T) {
	src := newSelectTree(t, t.TempDir())
	root, err := os.OpenRoot(src)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	s := &selection{root: root, files: map[string]bool{}}
	s.walkAll("esc")
	want := []string{`cannot read the directory "esc" (openat esc: path escapes from parent); nothing below it is archived`}
	if len(s.files) != 0 || !slices.Equal(s.warnings, want) {
		t.Errorf("walkAll(esc): files %v, warnings %q; want none and %q", s.files, s.warnings, want)
	}
}
