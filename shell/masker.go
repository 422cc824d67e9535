package shell

import (
	"bytes"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Mask is what a secret is replaced with in the trace.
const Mask = "[MASKED]"

// Masker is a writer that replaces every occurrence of a secret with
// [MASKED] before passing the bytes on. A secret split over two writes is
// still masked: the bytes that could be the start of a secret are held back
// until the next write shows whether it is one, or until Flush. It is safe
// for concurrent use.
type Masker struct {
	mu      sync.Mutex
	w       io.Writer
	secrets [][]byte // longest first, so the longest match wins
	pending []byte
	out     []byte
}

// NewMasker returns a Masker writing to w that hides secrets, and their
// URL-escaped forms (the ways they show up inside a URL). Empty secrets are
// ignored; short ones are not, even though masking them makes the trace hard
// to read: a value the coordinator calls secret is never shown.
func NewMasker(w io.Writer, secrets []string) *Masker {
	seen := make(map[string]bool)
	m := &Masker{w: w}
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			m.secrets = append(m.secrets, []byte(s))
		}
	}
	for _, s := range secrets {
		add(s)
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
		add(strings.TrimPrefix(url.UserPassword("", s).String(), ":")) // as a URL's password
	}
	sort.SliceStable(m.secrets, func(i, j int) bool { return len(m.secrets[i]) > len(m.secrets[j]) })
	return m
}

// Write masks p and writes what is certain not to be part of a secret. It
// reports len(p) written unless the underlying writer fails.
func (m *Masker) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pending = append(m.pending, p...)
	if err := m.process(false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes the held-back bytes: call it when the output is complete (a
// step ended), so the trace shows everything.
func (m *Masker) Flush() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.process(true)
}

func (m *Masker) process(final bool) error {
	buf := m.pending
	out := m.out[:0]
	hold := len(buf)
	for {
		at, n := m.find(buf)
		if at < 0 {
			break
		}
		if !final && m.couldGrow(buf[at:], n) {
			// A longer secret may start here; wait for more bytes.
			hold = at
			break
		}
		out = append(out, buf[:at]...)
		out = append(out, Mask...)
		buf = buf[at+n:]
		hold = len(buf)
	}
	if hold == len(buf) && !final {
		hold -= m.partial(buf)
	}
	out = append(out, buf[:hold]...)
	rest := copy(m.pending, buf[hold:])
	m.pending = m.pending[:rest]
	m.out = out
	if len(out) == 0 {
		return nil
	}
	_, err := m.w.Write(out)
	return err
}

// find returns the earliest position of a secret in buf and the length of
// the longest secret there, or -1.
func (m *Masker) find(buf []byte) (at, n int) {
	at = -1
	for _, s := range m.secrets {
		i := bytes.Index(buf, s)
		if i >= 0 && (at < 0 || i < at) {
			at, n = i, len(s)
		}
	}
	return at, n
}

// couldGrow reports whether tail, which starts with a secret of length n and
// is all the bytes there are, is also a proper prefix of a longer secret.
func (m *Masker) couldGrow(tail []byte, n int) bool {
	for _, s := range m.secrets {
		if len(s) > n && len(tail) < len(s) && bytes.HasPrefix(s, tail) {
			return true
		}
	}
	return false
}

// partial returns the length of the longest end of buf that is the start of
// a secret, which must be held back.
func (m *Masker) partial(buf []byte) int {
	longest := 0
	for _, s := range m.secrets {
		from := max(len(buf)-len(s)+1, 0)
		for i := from; i < len(buf); i++ {
			if len(buf)-i <= longest {
				break
			}
			j := bytes.IndexByte(buf[i:], s[0])
			if j < 0 {
				break
			}
			i += j
			if bytes.HasPrefix(s, buf[i:]) {
				longest = max(longest, len(buf)-i)
				break
			}
		}
	}
	return longest
}
