package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode"
)

// Errors of the artifacts calls, for errors.Is.
var (
	// ErrArtifactsTooLarge: an archive is larger than the limit: the
	// coordinator's for an upload (Options.MaxArtifactsUpload, or its 413),
	// the caller's for a download.
	ErrArtifactsTooLarge = errors.New("artifacts archive too large")
	// ErrNoArtifacts: the coordinator answered 404: the job declares no
	// artifacts (upload), or the dependency has none (download).
	ErrNoArtifacts = errors.New("no artifacts for the job (404)")
)

// DefaultMaxArtifactsUpload is the default Options.MaxArtifactsUpload:
// AlloyCI's endpoint.ex runs Plug.Parsers with length: 100_000_000, and
// answers 413 to a multipart body whose parts are longer.
const DefaultMaxArtifactsUpload = 100_000_000

// DefaultArtifactsFilename is the file name an upload gives its archive
// when the caller gives none. AlloyCI stores the archive under that name and
// shows it to the jobs that depend on this one (artifacts_file.filename).
const DefaultArtifactsFilename = "artifacts.zip"

// UploadArtifacts sends the job's artifacts archive: POST
// api/v4/jobs/ID/artifacts with the JOB-TOKEN header and a multipart form of
// the archive (field "file", named filename, "" for
// DefaultArtifactsFilename) and expire_in when it is not "".
//
// The archive is streamed from open, never held in memory. open is called
// once per attempt and must return the archive from its start each time
// (os.Open of the archive's path does). The upload is retried as the
// client's RetryBriefly calls are: after a transport error or a 5xx. Storing
// twice is harmless: AlloyCI keeps the last archive.
//
// It fails at once, without retrying, when open or the reader it returns
// fails, or when the body would pass Options.MaxArtifactsUpload (an error
// matching ErrArtifactsTooLarge; when the reader has a Stat method, as
// *os.File has, before anything is sent). Answers: 201 (or 200) is success;
// 403 matches ErrForbidden, 404 ErrNoArtifacts, 413 ErrArtifactsTooLarge;
// anything else is a *StatusError. No error shows the token.
func (cl *Client) UploadArtifacts(ctx context.Context, baseURL string, jobID int64, jobToken string,
	open func() (io.ReadCloser, error), filename, expireIn string) error {
	fail := func(err error) error { return fmt.Errorf("job %d: uploading the artifacts: %w", jobID, err) }
	if filename == "" {
		filename = DefaultArtifactsFilename
	}
	if err := checkFilename(filename); err != nil {
		return fail(err)
	}
	if err := checkExpireIn(expireIn); err != nil {
		return fail(err)
	}
	if jobToken == "" {
		return fail(errors.New("the job has no token to upload with"))
	}
	if open == nil {
		return fail(errors.New("no archive to upload (open is nil)"))
	}
	limit := cl.maxUpload
	boundary := multipart.NewWriter(io.Discard).Boundary()
	overhead, err := formOverhead(boundary, filename, expireIn)
	if err != nil {
		return fail(err)
	}
	c := call{
		method: http.MethodPost, base: baseURL,
		path:     "api/v4/jobs/" + strconv.FormatInt(jobID, 10) + "/artifacts",
		ctype:    "multipart/form-data; boundary=" + boundary,
		retry:    RetryBriefly,
		transfer: true,
		headers:  map[string]string{"JOB-TOKEN": jobToken},
		open: func() (io.ReadCloser, error) {
			src, err := open()
			if err != nil {
				return nil, fmt.Errorf("opening the archive: %w", err)
			}
			if st, ok := src.(interface{ Stat() (fs.FileInfo, error) }); ok {
				if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size()+overhead > limit {
					_ = src.Close()
					return nil, tooLargeUpload(limit, fi.Size())
				}
			}
			return newFormStream(src, boundary, filename, expireIn, limit), nil
		},
	}
	resp, err := cl.do(ctx, c)
	if err != nil {
		return fail(err)
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusOK:
		drain(resp)
		return nil
	case http.StatusForbidden:
		drain(resp)
		return fail(fmt.Errorf("the coordinator refused the artifacts: the job token is no longer valid: %w", ErrForbidden))
	case http.StatusNotFound:
		drain(resp)
		return fail(fmt.Errorf("the coordinator refused the artifacts: the job declares none: %w", ErrNoArtifacts))
	case http.StatusRequestEntityTooLarge:
		drain(resp)
		return fail(fmt.Errorf("the coordinator refused the artifacts as larger than it accepts (413): make them smaller: %w", ErrArtifactsTooLarge))
	default:
		return fail(unexpected(http.MethodPost, resp))
	}
}

func tooLargeUpload(limit, size int64) error {
	what := "the archive grew past that"
	if size >= 0 {
		what = fmt.Sprintf("the archive has %d bytes", size)
	}
	return fmt.Errorf("the coordinator accepts uploads of at most %d bytes (AlloyCI's Plug.Parsers length) and %s: "+
		"make the artifacts smaller (fewer paths, or no untracked files): %w", limit, what, ErrArtifactsTooLarge)
}

// checkFilename accepts a plain file name: AlloyCI stores the archive under
// it as it is (Arc, uploads/artifacts/ID/NAME), so a path would leave that
// directory.
func checkFilename(name string) error {
	bad := name == "." || name == ".." || len(name) > 255 ||
		strings.ContainsAny(name, `/\"`) ||
		strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar })
	if bad {
		return fmt.Errorf("the archive's file name %q is not a plain file name: use one such as %s", name, DefaultArtifactsFilename)
	}
	return nil
}

// decimalNumber is what AlloyCI's TimeConvert.to_seconds cannot read: it
// finds numbers with [0-9]*\.?[0-9]+ and String.to_integer raises on "1.5".
var decimalNumber = regexp.MustCompile(`[0-9]*\.[0-9]+`)

// checkExpireIn refuses what AlloyCI would answer 500 to, every time, after
// the whole archive was sent.
func checkExpireIn(s string) error {
	if decimalNumber.MatchString(s) {
		return fmt.Errorf("expire_in %q has a decimal number, which AlloyCI cannot read (it answers 500): "+
			"write whole numbers, e.g. \"36 hours\" for \"1.5 days\"", s)
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("expire_in %q has control characters: write a duration such as \"1 week\"", s)
	}
	return nil
}

// formStream is an upload's body: a goroutine writes the multipart form,
// reading the archive, into a pipe that the transport reads.
type formStream struct {
	pr   *io.PipeReader
	done chan struct{}
	once sync.Once
	// fail is what went wrong on this side (the archive could not be read,
	// or the body passed the limit); set before done is closed.
	fail error
}

// errBodyClosed stops the writer once the transport no longer reads.
var errBodyClosed = errors.New("the upload's body was closed")

func newFormStream(src io.ReadCloser, boundary, filename, expireIn string, limit int64) *formStream {
	pr, pw := io.Pipe()
	s := &formStream{pr: pr, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer func() { _ = src.Close() }()
		cw := &capWriter{w: pw, limit: limit}
		mw := multipart.NewWriter(cw)
		if err := mw.SetBoundary(boundary); err != nil {
			s.fail = err
			pw.CloseWithError(err)
			return
		}
		err := writeForm(mw, &errReader{r: src}, filename, expireIn)
		var re *readError
		switch {
		case cw.over:
			s.fail = tooLargeUpload(limit, -1)
			err = s.fail
		case errors.As(err, &re):
			s.fail = fmt.Errorf("reading the archive: %w", re.err)
			err = s.fail
		}
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		_ = pw.Close()
	}()
	return s
}

// formOverhead is the length of the form around an archive: what writeForm
// writes for an empty one.
func formOverhead(boundary, filename, expireIn string) (int64, error) {
	cw := &capWriter{w: io.Discard, limit: 1 << 62}
	mw := multipart.NewWriter(cw)
	if err := mw.SetBoundary(boundary); err != nil {
		return 0, err
	}
	if err := writeForm(mw, strings.NewReader(""), filename, expireIn); err != nil {
		return 0, err
	}
	return cw.n, nil
}

func writeForm(mw *multipart.Writer, src io.Reader, filename, expireIn string) error {
	if expireIn != "" {
		if err := mw.WriteField("expire_in", expireIn); err != nil {
			return err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+filename+`"`)
	h.Set("Content-Type", "application/zip")
	part, err := mw.CreatePart(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(part, src); err != nil {
		return err
	}
	return mw.Close()
}

func (s *formStream) Read(p []byte) (int, error) { return s.pr.Read(p) }

// Close stops the writer and waits until it has closed the archive.
func (s *formStream) Close() error {
	s.once.Do(func() { s.pr.CloseWithError(errBodyClosed) })
	<-s.done
	return nil
}

func (s *formStream) failure() error {
	<-s.done
	return s.fail
}

// capWriter refuses to write past limit bytes.
type capWriter struct {
	w     io.Writer
	limit int64
	n     int64
	over  bool
}

func (c *capWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) > c.limit {
		c.over = true
		return 0, ErrArtifactsTooLarge
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readError marks an error of the archive's reader, as opposed to one of
// writing the body.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }

type errReader struct{ r io.Reader }

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		return n, &readError{err}
	}
	return n, err
}

// Rewritable is where DownloadArtifacts writes an archive: it empties it
// (Truncate(0) and Seek to the start) before each attempt, so what it holds
// in the end is exactly one whole answer, and leaves it at its end (seek to
// the start to read it). *os.File is one.
type Rewritable interface {
	io.Writer
	io.Seeker
	Truncate(size int64) error
}

// DownloadArtifacts fetches the archive of the job depID, a dependency of
// the running job, with that dependency's token (Dependency.Token: the
// coordinator checks it against the dependency, not against the running
// job): GET api/v4/jobs/DEP_ID/artifacts with the JOB-TOKEN header. It
// writes the archive to dst and returns its length.
//
// More than limit bytes is an error matching ErrArtifactsTooLarge, found
// from Content-Length before anything is read when the coordinator sends
// one. Transport errors and 5xx answers, a body cut short included, are
// retried as the client's RetryBriefly calls are, from the start (AlloyCI
// ignores Range): dst is emptied before each attempt, and after a failure.
// 403 matches ErrForbidden, 404 ErrNoArtifacts; anything else is a
// *StatusError. Redirects (a GitLab's object storage) are not followed. No
// error shows the token.
func (cl *Client) DownloadArtifacts(ctx context.Context, baseURL string, depID int64, depToken string, dst Rewritable, limit int64) (int64, error) {
	fail := func(err error) (int64, error) {
		_ = empty(dst)
		return 0, fmt.Errorf("downloading the artifacts of job %d: %w", depID, err)
	}
	switch {
	case depID <= 0:
		return fail(errors.New("the job's payload names a dependency without an id"))
	case depToken == "":
		return fail(errors.New("the job's payload gives no token for this dependency"))
	case dst == nil:
		return fail(errors.New("nowhere to write the archive (dst is nil)"))
	case limit <= 0:
		return fail(fmt.Errorf("the limit %d leaves no room for an archive", limit))
	}
	path := "api/v4/jobs/" + strconv.FormatInt(depID, 10) + "/artifacts"
	u, err := endpoint(baseURL, path)
	if err != nil {
		return fail(fmt.Errorf("%s %s: %w", http.MethodGet, path, err))
	}
	shown := redactURL(u)
	c := call{method: http.MethodGet, base: baseURL, path: path, retry: RetryBriefly, transfer: true,
		// AlloyCI's api pipeline answers 406 unless Accept allows JSON or text.
		headers: map[string]string{"JOB-TOKEN": depToken, "Accept": "*/*"}}
	r := cl.retrier(c.retry)
	for {
		if err := empty(dst); err != nil {
			return fail(fmt.Errorf("emptying the file to download into: %w", err))
		}
		resp, _, err := cl.once(ctx, c, u)
		var lastErr error
		switch {
		case err != nil:
			lastErr = fmt.Errorf("%s %s: %w", c.method, shown, transportError(err))
		case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
			drain(resp)
			lastErr = &StatusError{Method: c.method, URL: shown, Code: resp.StatusCode}
		case resp.StatusCode == http.StatusOK:
			n, err := receive(resp, dst, limit)
			var re *readError
			switch {
			case err == nil:
				return n, nil
			case errors.As(err, &re):
				lastErr = fmt.Errorf("%s %s: the answer was cut short after %d bytes: %w", c.method, shown, n, re.err)
			default:
				return fail(err)
			}
		case resp.StatusCode == http.StatusForbidden:
			drain(resp)
			return fail(fmt.Errorf("the coordinator refused the dependency's token (403): %w", ErrForbidden))
		case resp.StatusCode == http.StatusNotFound:
			drain(resp)
			return fail(fmt.Errorf("the coordinator has no artifacts for it: %w", ErrNoArtifacts))
		default:
			return fail(unexpected(http.MethodGet, resp))
		}
		if err := r.next(ctx, lastErr); err != nil {
			return fail(err)
		}
	}
}

// receive copies an archive of at most limit bytes to dst. A read error of
// the body is a *readError (worth another attempt); others are final.
func receive(resp *http.Response, dst io.Writer, limit int64) (int64, error) {
	defer drain(resp)
	if resp.ContentLength > limit {
		return 0, tooLargeDownload(limit, resp.ContentLength)
	}
	n, err := io.Copy(dst, &errReader{r: io.LimitReader(resp.Body, limit+1)})
	var re *readError
	switch {
	case errors.As(err, &re):
		return n, err
	case err != nil:
		return n, fmt.Errorf("writing the archive: %w", err)
	case n > limit:
		return n, tooLargeDownload(limit, -1)
	}
	return n, nil
}

func tooLargeDownload(limit, size int64) error {
	what := "it sent more"
	if size >= 0 {
		what = fmt.Sprintf("the coordinator announced %d bytes", size)
	}
	return fmt.Errorf("the archive is larger than the %d bytes this runner takes (%s): "+
		"make the dependency's artifacts smaller, or raise the runner's limit: %w", limit, what, ErrArtifactsTooLarge)
}

func empty(dst Rewritable) error {
	if dst == nil {
		return nil
	}
	if err := dst.Truncate(0); err != nil {
		return err
	}
	_, err := dst.Seek(0, io.SeekStart)
	return err
}
