package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// FileMode is the permission config.toml is written with: it holds runner
// tokens, so only the runner's user may read it.
const FileMode fs.FileMode = 0o600

// AddRunner appends r to the [[runners]] of the file at path, creating the file
// when it does not exist. Every other key and entry is kept (comments are not:
// TOML libraries do not round-trip them). The file is replaced atomically with
// mode 0600.
func AddRunner(path string, r Runner) error {
	return edit(path, func(runners []map[string]any) ([]map[string]any, error) {
		for _, e := range runners {
			if e["name"] == r.Name {
				return nil, fmt.Errorf("a runner named %q is already in %s: choose another --description/--name or unregister it first", r.Name, path)
			}
		}
		entry := map[string]any{
			"name": r.Name, "url": r.URL, "token": r.Token,
			"executor": r.Executor, "shell": r.Shell, "builds_dir": r.BuildsDir, "limit": int64(r.Limit),
		}
		return append(runners, entry), nil
	})
}

// RemoveRunner removes the runner named name from the file at path, keeping
// everything else. It is an error when no runner has that name.
func RemoveRunner(path, name string) error {
	return edit(path, func(runners []map[string]any) ([]map[string]any, error) {
		out := runners[:0]
		for _, e := range runners {
			if e["name"] != name {
				out = append(out, e)
			}
		}
		if len(out) == len(runners) {
			return nil, fmt.Errorf("no runner named %q in %s: see alloy-runner list", name, path)
		}
		return out, nil
	})
}

// edit decodes the file generically (so keys this runner does not know are
// kept), lets change rewrite the runners, checks the result still loads, and
// writes it back atomically.
func edit(path string, change func([]map[string]any) ([]map[string]any, error)) error {
	doc := map[string]any{}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("config file %s: %w", path, err)
	default:
		if _, err := Parse(path, b); err != nil {
			return fmt.Errorf("not changing a config file that does not load: %w", err)
		}
		if _, err := toml.Decode(string(b), &doc); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	var runners []map[string]any
	if v, ok := doc["runners"]; ok {
		list, ok := v.([]map[string]any)
		if !ok {
			return fmt.Errorf("config file %s: runners must be an array of tables ([[runners]])", path)
		}
		runners = list
	}
	runners, err = change(runners)
	if err != nil {
		return err
	}
	doc["runners"] = runners
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	if _, err := Parse(path, buf.Bytes()); err != nil {
		return fmt.Errorf("the edited config would not load, so %s was left as it was: %w", path, err)
	}
	return writeAtomic(path, buf.Bytes())
}

// writeAtomic writes b next to path and renames it into place, so a crash
// leaves either the old file or the new one, never half of one.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(FileMode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
