package webconfig

import (
	"context"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-kit/log/level"
)

// Watch reloads the config when the config file or any file it names changes
// on disk, until ctx is done. It returns nil then; call it once, in its own
// goroutine.
//
// It watches the parent directories, not the files: editors, `mv` and
// certificate tools replace a file with a new inode, and Kubernetes swaps a
// ..data symlink next to the file, none of which a watch on the old inode
// sees. Events only schedule a check: a short while (Debounce) after the first
// event of a burst, the files are hashed and the config reloaded only if a
// hash changed. So a burst of writes costs one reload, unrelated files in the
// same directory cost a hash, and a truncated mid-write file that fails
// validation is reported, kept out, and superseded by the complete write's
// own event. A slow poll
// (PollInterval) runs the same check for changes that produce no event.
//
// If fsnotify cannot be started (watch limits), Watch logs it and polls only.
func (s *Store) Watch(ctx context.Context) error {
	wl := s.newWatchLoop()
	defer wl.close()
	wl.run(ctx)
	return nil
}

// watchLoop is Watch split in two: newWatchLoop has placed every watch when it
// returns, so that nothing written after it can be missed; run waits.
type watchLoop struct {
	s *Store
	w *fsnotify.Watcher // nil when fsnotify could not start
}

func (s *Store) newWatchLoop() *watchLoop {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		level.Warn(s.opts.Logger).Log("msg", "Cannot watch the web config for changes; polling only", "interval", s.opts.PollInterval, "err", err)
		w = nil
	}
	s.syncWatches(w)
	return &watchLoop{s: s, w: w}
}

func (wl *watchLoop) close() {
	if wl.w != nil {
		_ = wl.w.Close()
	}
}

func (wl *watchLoop) run(ctx context.Context) {
	s, w := wl.s, wl.w
	logger := s.opts.Logger
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	poll := time.NewTicker(s.opts.PollInterval)
	defer poll.Stop()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	armed := false

	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			level.Debug(logger).Log("msg", "Web config directory changed", "event", ev.String())
			armed = arm(debounce, armed, s.opts.Debounce)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Typically an event queue overflow: events were lost, so look.
			level.Warn(logger).Log("msg", "Watching the web config", "err", err)
			armed = arm(debounce, armed, s.opts.Debounce)
		case <-debounce.C:
			armed = false
			s.reloadIfChanged()
			s.syncWatches(w)
		case <-poll.C:
			s.reloadIfChanged()
			s.syncWatches(w)
		}
	}
}

// arm starts the debounce timer unless it is already running. Later events do
// not push it back: a directory that never stops changing (a busy /etc) must
// not postpone the check forever, and any write after the check fires arms it
// again, so the last version is always looked at.
func arm(t *time.Timer, armed bool, d time.Duration) bool {
	if !armed {
		t.Reset(d)
	}
	return true
}

// reloadIfChanged reloads when the files read by the last attempt no longer
// hash the same, i.e. the change has not been looked at yet.
func (s *Store) reloadIfChanged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fingerprint(rereadAll(s.attemptedFiles)) == s.attemptedSum {
		return
	}
	_ = s.reloadLocked() // logged and counted there
}

// syncWatches makes the watched directories those of the files of the current
// config and of the last attempt (which may name new files that do not exist
// yet), following symlinks too so that in-place edits of a link's target are
// seen. It starts from the watcher's own list, since a directory that was
// deleted has silently lost its watch. Directories that cannot be watched (not
// created yet) are left to the poll and retried on the next sync.
func (s *Store) syncWatches(w *fsnotify.Watcher) {
	if w == nil {
		return
	}
	s.mu.Lock()
	paths := append(append([]string(nil), s.Current().Files...), s.attemptedFiles...)
	s.mu.Unlock()

	want := map[string]bool{}
	for _, p := range paths {
		want[filepath.Dir(p)] = true
		if r, err := filepath.EvalSymlinks(p); err == nil {
			want[filepath.Dir(r)] = true
		}
	}
	watched := map[string]bool{}
	for _, d := range w.WatchList() {
		if !want[d] {
			_ = w.Remove(d) // fails harmlessly if the directory is gone
			continue
		}
		watched[d] = true
	}
	for d := range want {
		if watched[d] {
			continue
		}
		if err := w.Add(d); err != nil {
			level.Debug(s.opts.Logger).Log("msg", "Cannot watch directory; relying on polling", "dir", d, "err", err)
		}
	}
}

// StartWatch is Watch in its own goroutine, with every watch placed before
// it returns: a change written after StartWatch returns is never missed
// (metrics-proxy starts it before it says it is listening).
func (s *Store) StartWatch(ctx context.Context) {
	wl := s.newWatchLoop()
	go func() {
		defer wl.close()
		wl.run(ctx)
	}()
}
