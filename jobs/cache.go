package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/alloyci/hardened-runner/archive"
	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/coordinator"
)

// The cache of the shell executor lives on the runner's host, never on the
// coordinator: <cache_dir>/<runner id>/<project>/<key file>.zip. The runner
// id (shortID) and project directory name are those of the builds
// directory, so a cache is per registration, per project and per key, and
// no project reads another's.

// defaultCacheKey is the key of a cache that gives none, as in GitLab.
const defaultCacheKey = "default"

// cacheSpec is the job's cache: entry with its variables expanded.
type cacheSpec struct {
	key       string
	paths     []string
	untracked bool
	file      string // the archive's absolute path
}

// cache returns the job's cache with its variables expanded, or nil when
// it asks for none.
func (j *jobRun) cache(w *workspace) (*cacheSpec, error) {
	spec, ok := j.job.CacheSpec()
	if !ok {
		return nil, nil
	}
	c := &cacheSpec{key: w.expand(spec.Key), untracked: spec.Untracked}
	if c.key == "" {
		c.key = defaultCacheKey
	}
	for _, p := range spec.Paths {
		c.paths = append(c.paths, w.expand(p))
	}
	base, err := filepath.Abs(j.runner.CacheDirectory())
	if err != nil {
		return nil, fmt.Errorf("cache_dir: %w", err)
	}
	c.file = filepath.Join(base, j.runnerID, projectName(j.job.JobInfo), cacheFileName(c.key, j.job.Secrets()))
	return c, nil
}

// cacheFileName is the archive's file name for key. A key is the job's
// text: it may hold "/", "..", anything. The name is a hash of the key, so
// that no key leaves the project's cache directory and two keys never
// share a file, after a readable, cleaned prefix of the key for whoever
// looks at the directory; that prefix is left out when the key holds a
// secret, which must not end up in a file name.
func cacheFileName(key string, secrets []string) string {
	sum := sha256.Sum256([]byte(key))
	name := hex.EncodeToString(sum[:16]) + ".zip"
	for _, s := range secrets {
		if s != "" && strings.Contains(key, s) {
			return name
		}
	}
	prefix := strings.Trim(unsafeName.ReplaceAllString(key, "-"), ".-")
	if len(prefix) > 64 {
		prefix = prefix[:64]
	}
	if prefix == "" {
		return name
	}
	return prefix + "-" + name
}

// restoreCache extracts the job's cache into the project directory, as
// RESTORE_CACHE_ATTEMPTS says. It is best effort: a missing or broken cache
// is a warning and the job goes on without it, as it would on the first
// run of a project.
func (j *jobRun) restoreCache(w *workspace, c *cacheSpec) {
	j.build.SetStage(builds.StageRestoreCache)
	if c == nil {
		return
	}
	defer j.out.Flush()
	j.printf("Restoring cache\n")
	j.printf("Checking cache for key %q...\n", c.key)
	attempts := w.opts.restoreCacheAttempts
	for attempt := 1; ; attempt++ {
		err := j.extractCache(w, c)
		switch {
		case err == nil:
			j.printf("Successfully extracted cache\n")
			return
		case errors.Is(err, errNoCache):
			// Nothing to retry: no job of the project saved it yet.
			j.printf("WARNING: no cache for key %q yet: the job runs without it\n", c.key)
			return
		case attempt < attempts:
			j.printf("WARNING: restoring the cache failed (%v): retrying, attempt %d of %d\n", err, attempt+1, attempts)
		default:
			j.printf("WARNING: the cache for key %q cannot be restored (%v): the job runs without it\n", c.key, err)
			return
		}
	}
}

// errNoCache: no job of the project saved the cache yet.
var errNoCache = errors.New("no cache yet")

func (j *jobRun) extractCache(w *workspace, c *cacheSpec) error {
	f, err := os.Open(c.file)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return errNoCache
		}
		return fmt.Errorf("opening the cache: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("opening the cache: %w", err)
	}
	// A job runs as the runner's user and could have written the file:
	// Extract treats it as hostile, as it does a dependency's archive.
	return archive.Extract(f, fi.Size(), w.dir, j.runner.ArtifactsLimitBytes())
}

// archiveCache saves the job's cache for the next job of the project. It is
// best effort: a cache that cannot be saved is a warning, never a failure.
// The archive replaces the old one only once written whole
// (archive.WriteFileAtomic), so a crash or a failure keeps the old cache,
// and two jobs of a project saving at once each leave a whole one.
func (j *jobRun) archiveCache(w *workspace, c *cacheSpec) {
	j.build.SetStage(builds.StageArchiveCache)
	if c == nil {
		return
	}
	defer j.out.Flush()
	j.printf("Saving cache for successful job\n")
	j.printf("Creating cache for key %q...\n", c.key)
	files, ok := j.selectFiles(w, c.paths, c.untracked)
	if !ok {
		j.printf("WARNING: the cache for key %q is not saved\n", c.key)
		return
	}
	if len(files) == 0 {
		j.printf("WARNING: no files to cache: the cache for key %q is left as it was\n", c.key)
		return
	}
	if err := os.MkdirAll(filepath.Dir(c.file), 0o700); err != nil {
		j.printf("WARNING: the cache for key %q is not saved: creating its directory: %v\n", c.key, err)
		return
	}
	limit := j.runner.ArtifactsLimitBytes()
	err := archive.WriteFileAtomic(c.file, func(out io.Writer) error { return archive.Write(out, w.dir, files, limit) })
	switch {
	case errors.Is(err, archive.ErrTooLarge):
		j.printf("WARNING: the cache for key %q is not saved: its files come to more than the %d bytes artifacts_limit in config.toml allows\n", c.key, limit)
	case err != nil:
		j.printf("WARNING: the cache for key %q is not saved: %v\n", c.key, err)
	default:
		j.printf("Created cache for key %q (%s)\n", c.key, nFiles(len(files)))
	}
}

// cacheWanted says whether the job's cache is saved after a result: only
// after success, GitLab's default (cache:when on_success, which AlloyCI's
// cache: has no word to change), so that a failed job never replaces a
// good cache with its half-built tree.
func cacheWanted(res result) bool {
	return res.update.State == coordinator.StateSuccess
}
