package coordinator_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/coordinator/coordinatortest"
)

func makeZip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, content := range files {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store}) // no deflate: fast under -race
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, content); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// opener returns archives from b and counts how often it was asked.
type opener struct {
	b     []byte
	calls atomic.Int32
}

func (o *opener) open() (io.ReadCloser, error) {
	o.calls.Add(1)
	return io.NopCloser(bytes.NewReader(o.b)), nil
}

// noToken fails the test if err shows one of the tokens.
func noToken(t *testing.T, err error, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("error shows a token: %v", err)
		}
	}
}

// startJob starts a job of sp on d and returns it as the runner has it.
func startJob(t *testing.T, d *coordinatortest.Server, sp coordinatortest.Spec) *coordinator.Job {
	t.Helper()
	d.AddRunner("rt")
	if sp.Script == nil {
		sp.Script = []string{"true"}
	}
	id := d.EnqueueSpec("rt", sp)
	job, _, err := newClient(&sleeps{}).RequestJob(context.Background(), d.URL, "rt", "")
	if err != nil || job == nil || job.ID != id {
		t.Fatalf("job=%v err=%v", job, err)
	}
	return job
}

var distArtifacts = &coordinator.ArtifactsSpec{Paths: []string{"dist/"}, ExpireIn: "1 week"}

func TestUploadArtifactsAgainstFlavors(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			job := startJob(t, d, coordinatortest.Spec{Artifacts: distArtifacts})
			o := &opener{b: makeZip(t, map[string]string{"dist/app": "the build"})}
			c := newClient(&sleeps{})
			ctx := context.Background()

			if err := c.UploadArtifacts(ctx, d.URL, job.ID, job.Token, o.open, "", "1 week"); err != nil {
				t.Fatalf("upload: %v", err)
			}
			got, expire, ok := d.Artifact(job.ID)
			if !ok || !bytes.Equal(got, o.b) || expire != "1 week" {
				t.Fatalf("stored: ok=%v expire=%q same=%v", ok, expire, bytes.Equal(got, o.b))
			}
			sum := sha256.Sum256(o.b)
			up := d.Uploads(job.ID)
			wantSecs := int64(0)
			if f == coordinatortest.AlloyCI {
				wantSecs = 7 * 24 * 3600 // TimeConvert.to_seconds("1 week")
			}
			if len(up) != 1 || up[0] != (coordinatortest.Transfer{Status: http.StatusCreated, Filename: "artifacts.zip",
				ExpireIn: "1 week", ExpireSeconds: wantSecs, Bytes: int64(len(o.b)), SHA256: hex.EncodeToString(sum[:])}) {
				t.Errorf("uploads = %+v", up)
			}

			// A wrong token: 403, final.
			err := c.UploadArtifacts(ctx, d.URL, job.ID, "wrong-job-token", o.open, "", "")
			want := "job " + itoa(job.ID) + ": uploading the artifacts: the coordinator refused the artifacts: " +
				"the job token is no longer valid: token refused by the coordinator (403)"
			if !errors.Is(err, coordinator.ErrForbidden) || err.Error() != want {
				t.Errorf("wrong token: err = %v\nwant %s", err, want)
			}
			noToken(t, err, "wrong-job-token", job.Token)
			wantViolations(t, d, "artifacts upload without the job's JOB-TOKEN")
			finish(t, d, job)

			// A job that declares no artifacts: 404, final.
			none := startJob(t, d, coordinatortest.Spec{})
			err = c.UploadArtifacts(ctx, d.URL, none.ID, none.Token, o.open, "", "")
			want = "job " + itoa(none.ID) + ": uploading the artifacts: the coordinator refused the artifacts: " +
				"the job declares none: no artifacts for the job (404)"
			if !errors.Is(err, coordinator.ErrNoArtifacts) || err.Error() != want {
				t.Errorf("no artifacts: err = %v\nwant %s", err, want)
			}
			noToken(t, err, none.Token)
			if f == coordinatortest.Strict {
				wantViolations(t, d, "declares none")
			}
			if _, _, ok := d.Artifact(none.ID); ok || len(d.Uploads(none.ID)) != 1 {
				t.Errorf("a refused upload was stored, or not counted: %+v", d.Uploads(none.ID))
			}
			finish(t, d, none)
			if o.calls.Load() != 3 {
				t.Errorf("open called %d times, want 3: one per upload, no retry of a 403 or 404", o.calls.Load())
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// A 5xx and a dropped connection are retried with a fresh archive; the
// archive is stored once.
func TestUploadArtifactsRetries(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			job := startJob(t, d, coordinatortest.Spec{Artifacts: distArtifacts})
			// Large enough that the dropped connection cuts it.
			o := &opener{b: makeZip(t, map[string]string{"dist/big": randomText(1 << 20)})}
			d.FailUploads(job.ID, http.StatusBadGateway, 0)
			s := &sleeps{}
			if err := newClient(s).UploadArtifacts(context.Background(), d.URL, job.ID, job.Token, o.open, "", ""); err != nil {
				t.Fatalf("upload: %v", err)
			}
			up := d.Uploads(job.ID)
			if len(up) != 3 || up[0].Status != http.StatusBadGateway || up[1].Status != 0 || up[2].Status != http.StatusCreated {
				t.Fatalf("uploads = %+v, want 502, dropped, 201", up)
			}
			if got, _, _ := d.Artifact(job.ID); !bytes.Equal(got, o.b) {
				t.Error("the stored archive is not the one sent")
			}
			if o.calls.Load() != 3 || s.count != 2 {
				t.Errorf("open called %d times, %d back-offs; want 3 and 2", o.calls.Load(), s.count)
			}
			finish(t, d, job)
		})
	}
}

// A coordinator that keeps failing: RetryBriefly's attempts, then an error
// that names the last answer.
func TestUploadArtifactsGivesUp(t *testing.T) {
	url, calls := statusServer(t, http.StatusServiceUnavailable)
	o := &opener{b: []byte("PK")}
	err := newClient(&sleeps{}).UploadArtifacts(context.Background(), url, 5, "job-secret", o.open, "", "")
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != 503 || !strings.HasSuffix(err.Error(), "coordinator answered 503 Service Unavailable (gave up after 3 attempts)") {
		t.Fatalf("err = %v", err)
	}
	noToken(t, err, "job-secret")
	if calls.Load() != 3 || o.calls.Load() != 3 {
		t.Errorf("%d requests, %d opens; want 3 and 3", calls.Load(), o.calls.Load())
	}
}

// What fails on the runner's side is not retried, and nothing is sent for
// what the coordinator could only refuse.
func TestUploadArtifactsLocalFailures(t *testing.T) {
	ok := &opener{b: []byte("PK")}
	big := filepath.Join(t.TempDir(), "big.zip")
	if err := os.WriteFile(big, make([]byte, 5000), 0o600); err != nil {
		t.Fatal(err)
	}
	small := coordinator.New(coordinator.Options{Sleep: (&sleeps{}).sleep, MaxArtifactsUpload: 4096})
	const post = "POST URL/api/v4/jobs/5/artifacts: "
	const tooLarge = "the coordinator accepts uploads of at most 4096 bytes (AlloyCI's Plug.Parsers length) and "
	const smaller = ": make the artifacts smaller (fewer paths, or no untracked files): artifacts archive too large"
	for _, tc := range []struct {
		name     string
		c        *coordinator.Client
		open     func() (io.ReadCloser, error)
		filename string
		expire   string
		token    string
		want     string // after "job 5: uploading the artifacts: ", URL for the server's
		is       error
		sent     int32
	}{
		{name: "a path as file name", open: ok.open, filename: "../x.zip",
			want: `the archive's file name "../x.zip" is not a plain file name: use one such as artifacts.zip`},
		{name: "a quote in the file name", open: ok.open, filename: `a".zip`,
			want: `the archive's file name "a\".zip" is not a plain file name: use one such as artifacts.zip`},
		{name: "a decimal expire_in", open: ok.open, expire: "1.5 days",
			want: `expire_in "1.5 days" has a decimal number, which AlloyCI cannot read (it answers 500): write whole numbers, e.g. "36 hours" for "1.5 days"`},
		{name: "no token", open: ok.open, token: "-",
			want: "the job has no token to upload with"},
		{name: "open fails", open: func() (io.ReadCloser, error) { return nil, os.ErrNotExist },
			want: post + "opening the archive: file does not exist", is: os.ErrNotExist},
		{name: "the archive cannot be read", open: func() (io.ReadCloser, error) {
			return io.NopCloser(io.MultiReader(strings.NewReader("PK"), errReader{})), nil
		}, want: post + "reading the archive: disk on fire", sent: 1},
		{name: "a file too large, seen before sending", c: small, open: func() (io.ReadCloser, error) { return os.Open(big) },
			want: post + tooLarge + "the archive has 5000 bytes" + smaller, is: coordinator.ErrArtifactsTooLarge},
		{name: "a stream too large, cut", c: small, open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(make([]byte, 5000))), nil
		}, want: post + tooLarge + "the archive grew past that" + smaller, is: coordinator.ErrArtifactsTooLarge, sent: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusCreated)
			}))
			c := tc.c
			if c == nil {
				c = newClient(&sleeps{})
			}
			tok := "job-secret"
			if tc.token == "-" {
				tok = ""
			}
			var opens atomic.Int32
			open := func() (io.ReadCloser, error) { opens.Add(1); return tc.open() }
			err := c.UploadArtifacts(context.Background(), srv.URL+"/", 5, tok, open, tc.filename, tc.expire)
			srv.Close() // waits for its handlers
			want := "job 5: uploading the artifacts: " + strings.ReplaceAll(tc.want, "URL", srv.URL)
			if err == nil || err.Error() != want || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("err = %v\nwant %s", err, want)
			}
			noToken(t, err, "job-secret")
			// The server may or may not have seen the start of a cut body.
			if got := calls.Load(); got > tc.sent {
				t.Errorf("%d requests reached the coordinator, want at most %d", got, tc.sent)
			}
			if opens.Load() > 1 {
				t.Errorf("open called %d times: a local failure must not be retried", opens.Load())
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

// randomText is n bytes that do not compress.
func randomText(n int) string {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + r.IntN(26))
	}
	return string(b)
}

// zipStream is an archive of one stored entry of size pseudo-random bytes,
// generated as it is read, never held whole. It counts what was read of it
// and the most it ever was ahead of what the double had received.
type zipStream struct {
	pr       *io.PipeReader
	read     int64
	received func() int64
	mu       *sync.Mutex
	ahead    *int64
}

func newZipStream(size int64, received func() int64, mu *sync.Mutex, ahead *int64) *zipStream {
	pr, pw := io.Pipe()
	go func() {
		zw := zip.NewWriter(pw)
		w, err := zw.CreateHeader(&zip.FileHeader{Name: "big.bin", Method: zip.Store})
		if err == nil {
			// One pseudo-random block, written at a shifting offset.
			block := []byte(randomText(1<<20 + 4096))
			for i, left := 0, size; left > 0 && err == nil; i++ {
				chunk := block[i%4096 : i%4096+int(min(1<<20, left))]
				_, err = w.Write(chunk)
				left -= int64(len(chunk))
			}
		}
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return &zipStream{pr: pr, received: received, mu: mu, ahead: ahead}
}

func (z *zipStream) Read(p []byte) (int, error) {
	n, err := z.pr.Read(p)
	z.read += int64(n)
	z.mu.Lock()
	*z.ahead = max(*z.ahead, z.read-z.received())
	z.mu.Unlock()
	return n, err
}

func (z *zipStream) Close() error { return z.pr.Close() }

// readAhead bounds how far the runner may read its archive ahead of what the
// coordinator received: the socket buffers of both ends and a few copy
// buffers, far below the archive.
const readAhead = 24 << 20

// A 200 MiB archive is streamed: the runner never reads much more of it than
// the coordinator has received.
func TestUploadArtifactsStreams(t *testing.T) {
	const size = 200 << 20
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			job := startJob(t, d, coordinatortest.Spec{Artifacts: distArtifacts})
			var mu sync.Mutex
			var ahead, read int64
			h := sha256.New()
			open := func() (io.ReadCloser, error) {
				z := newZipStream(size, d.UploadedBytes, &mu, &ahead)
				return &teeCloser{Reader: io.TeeReader(z, h), c: z, n: &read}, nil
			}
			limit := int64(256 << 20)
			if f == coordinatortest.AlloyCI {
				limit = coordinator.DefaultMaxArtifactsUpload
			}
			c := coordinator.New(coordinator.Options{Sleep: (&sleeps{}).sleep, MaxArtifactsUpload: limit})
			err := c.UploadArtifacts(context.Background(), d.URL, job.ID, job.Token, open, "", "")
			mu.Lock()
			defer mu.Unlock()
			if ahead <= 0 || ahead > readAhead {
				t.Errorf("the runner read up to %d bytes ahead of the coordinator, want at most %d", ahead, readAhead)
			}
			up := d.Uploads(job.ID)
			if f == coordinatortest.Strict {
				if err != nil {
					t.Fatalf("upload: %v", err)
				}
				if len(up) != 1 || up[0].Status != http.StatusCreated || up[0].Bytes != read || up[0].SHA256 != hex.EncodeToString(h.Sum(nil)) {
					t.Fatalf("uploads %+v, want one 201 of the %d bytes read", up, read)
				}
				return
			}
			// AlloyCI takes at most 100,000,000 bytes: the runner stops there.
			if !errors.Is(err, coordinator.ErrArtifactsTooLarge) || !strings.Contains(err.Error(), "the archive grew past that") {
				t.Fatalf("err = %v, want the archive refused as too large", err)
			}
			// One copy buffer past the limit at most.
			if read > limit+64<<10 || read < limit-readAhead {
				t.Errorf("read %d bytes of the archive, want about %d", read, limit)
			}
			d.Await("the cut upload to be recorded", func() bool { return len(d.Uploads(job.ID)) > 0 })
			if up := d.Uploads(job.ID); len(up) != 1 || up[0].Status != 0 {
				t.Errorf("uploads %+v, want one, cut short", up)
			}
			if _, _, ok := d.Artifact(job.ID); ok {
				t.Error("a cut upload was stored")
			}
			finish(t, d, job)
		})
	}
}

// A runner that does not know AlloyCI's limit gets its 413, not retried.
func TestUploadArtifactsAlloyCI413(t *testing.T) {
	d := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	job := startJob(t, d, coordinatortest.Spec{Artifacts: distArtifacts})
	var mu sync.Mutex
	var ahead int64
	var opens atomic.Int32
	open := func() (io.ReadCloser, error) {
		opens.Add(1)
		return newZipStream(coordinatortest.MaxArtifactsBody+(1<<20), d.UploadedBytes, &mu, &ahead), nil
	}
	c := coordinator.New(coordinator.Options{Sleep: (&sleeps{}).sleep, MaxArtifactsUpload: 1 << 30})
	err := c.UploadArtifacts(context.Background(), d.URL, job.ID, job.Token, open, "", "")
	want := "job " + itoa(job.ID) + ": uploading the artifacts: the coordinator refused the artifacts as larger than it accepts (413): " +
		"make them smaller: artifacts archive too large"
	if !errors.Is(err, coordinator.ErrArtifactsTooLarge) || err.Error() != want || opens.Load() != 1 {
		t.Fatalf("err = %v (%d opens)\nwant %s", err, opens.Load(), want)
	}
	wantViolations(t, d, "AlloyCI answers 413")
	finish(t, d, job)
}

// teeCloser counts what was read through it and closes c.
type teeCloser struct {
	io.Reader
	c io.Closer
	n *int64
}

func (t *teeCloser) Read(p []byte) (int, error) {
	n, err := t.Reader.Read(p)
	*t.n += int64(n)
	return n, err
}

func (t *teeCloser) Close() error { return t.c.Close() }

// wantViolations takes the double's violations and checks there is one per
// substring, in order.
func wantViolations(t *testing.T, d *coordinatortest.Server, subs ...string) {
	t.Helper()
	got := d.TakeViolations()
	if len(got) != len(subs) {
		t.Fatalf("violations %q, want %d like %q", got, len(subs), subs)
	}
	for i, sub := range subs {
		if !strings.Contains(got[i], sub) {
			t.Errorf("violation %d is %q, want it to say %q", i, got[i], sub)
		}
	}
}

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "download-*.zip")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func contents(t *testing.T, f *os.File) []byte {
	t.Helper()
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDownloadArtifactsAgainstFlavors(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			zip := makeZip(t, map[string]string{"dist/app": randomText(100 << 10)})
			d.SetArtifact(41, "token-of-41", zip)
			c := newClient(&sleeps{})
			ctx := context.Background()
			dst := tempFile(t)
			if _, err := dst.WriteString("left over from before"); err != nil {
				t.Fatal(err)
			}

			n, err := c.DownloadArtifacts(ctx, d.URL, 41, "token-of-41", dst, 1<<20)
			if err != nil || n != int64(len(zip)) || !bytes.Equal(contents(t, dst), zip) {
				t.Fatalf("download: n=%d err=%v, same=%v", n, err, bytes.Equal(contents(t, dst), zip))
			}
			if dl := d.Downloads(41); len(dl) != 1 || dl[0].Status != http.StatusOK || dl[0].Bytes != int64(len(zip)) || dl[0].Filename != "artifacts.zip" {
				t.Errorf("downloads = %+v", dl)
			}

			// The running job's own token is not the dependency's: 403.
			n, err = c.DownloadArtifacts(ctx, d.URL, 41, "token-of-the-running-job", dst, 1<<20)
			want := "downloading the artifacts of job 41: the coordinator refused the dependency's token (403): token refused by the coordinator (403)"
			if !errors.Is(err, coordinator.ErrForbidden) || err.Error() != want || n != 0 || len(contents(t, dst)) != 0 {
				t.Errorf("wrong token: n=%d err=%v, %d bytes left\nwant %s", n, err, len(contents(t, dst)), want)
			}
			noToken(t, err, "token-of-the-running-job", "token-of-41")
			wantViolations(t, d, "without that job's JOB-TOKEN")

			// More than the limit: refused from Content-Length, nothing read.
			n, err = c.DownloadArtifacts(ctx, d.URL, 41, "token-of-41", dst, 1000)
			want = "downloading the artifacts of job 41: the archive is larger than the 1000 bytes this runner takes (the coordinator announced " +
				itoa(int64(len(zip))) + " bytes): make the dependency's artifacts smaller, or raise the runner's limit: artifacts archive too large"
			if !errors.Is(err, coordinator.ErrArtifactsTooLarge) || err.Error() != want || n != 0 || len(contents(t, dst)) != 0 {
				t.Errorf("limit: n=%d err=%v\nwant %s", n, err, want)
			}

			// A job without artifacts: 404. AlloyCI: it declares none;
			// Strict: it has none.
			job := startJob(t, d, coordinatortest.Spec{})
			n, err = c.DownloadArtifacts(ctx, d.URL, job.ID, job.Token, dst, 1<<20)
			want = "downloading the artifacts of job " + itoa(job.ID) + ": the coordinator has no artifacts for it: no artifacts for the job (404)"
			if !errors.Is(err, coordinator.ErrNoArtifacts) || err.Error() != want || n != 0 {
				t.Errorf("no artifacts: n=%d err=%v\nwant %s", n, err, want)
			}
			noToken(t, err, job.Token)
			finish(t, d, job)
		})
	}
}

// A 5xx and a body cut short are retried from the start: what dst holds in
// the end is exactly the archive, not the half of an earlier attempt.
func TestDownloadArtifactsRetries(t *testing.T) {
	for _, f := range coordinatortest.Flavors() {
		t.Run(string(f), func(t *testing.T) {
			d := coordinatortest.NewFlavor(t, f)
			zip := makeZip(t, map[string]string{"a": randomText(300 << 10)})
			d.SetArtifact(41, "token-of-41", zip)
			d.FailDownloads(41, http.StatusServiceUnavailable, 0)
			s := &sleeps{}
			dst := tempFile(t)
			n, err := newClient(s).DownloadArtifacts(context.Background(), d.URL, 41, "token-of-41", dst, 1<<20)
			if err != nil || n != int64(len(zip)) || !bytes.Equal(contents(t, dst), zip) {
				t.Fatalf("n=%d err=%v same=%v", n, err, bytes.Equal(contents(t, dst), zip))
			}
			dl := d.Downloads(41)
			if len(dl) != 3 || dl[0].Status != 503 || dl[1].Status != 0 || dl[1].Bytes != int64(len(zip)/2) || dl[2].Status != 200 || s.count != 2 {
				t.Fatalf("downloads %+v, %d back-offs; want 503, cut at half, 200 and 2", dl, s.count)
			}

			// Cut every time: RetryBriefly's attempts, then an error; dst
			// left empty.
			d.FailDownloads(41, 0, 0, 0)
			n, err = newClient(s).DownloadArtifacts(context.Background(), d.URL, 41, "token-of-41", dst, 1<<20)
			if err == nil || n != 0 || !strings.Contains(err.Error(), "the answer was cut short after") ||
				!strings.HasSuffix(err.Error(), "(gave up after 3 attempts)") || len(contents(t, dst)) != 0 {
				t.Fatalf("n=%d err=%v, %d bytes left", n, err, len(contents(t, dst)))
			}
			noToken(t, err, "token-of-41")
		})
	}
}

// AlloyCI fails (500) on a dependency that declares artifacts but has none
// stored: retried, then said.
func TestDownloadArtifactsAlloyCIWithoutArchive(t *testing.T) {
	d := coordinatortest.NewFlavor(t, coordinatortest.AlloyCI)
	job := startJob(t, d, coordinatortest.Spec{Artifacts: distArtifacts})
	_, err := newClient(&sleeps{}).DownloadArtifacts(context.Background(), d.URL, job.ID, job.Token, tempFile(t), 1<<20)
	var se *coordinator.StatusError
	if !errors.As(err, &se) || se.Code != 500 || len(d.Downloads(job.ID)) != 3 {
		t.Fatalf("err = %v, downloads %+v", err, d.Downloads(job.ID))
	}
	finish(t, d, job)
}

// A coordinator that sends no Content-Length is cut at the limit.
func TestDownloadArtifactsLimitWithoutLength(t *testing.T) {
	url := server127(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		for range 10 {
			_, _ = w.Write(make([]byte, 1000))
			http.NewResponseController(w).Flush() // chunked: no Content-Length
		}
	})
	dst := tempFile(t)
	n, err := newClient(&sleeps{}).DownloadArtifacts(context.Background(), url, 41, "dep-secret", dst, 4000)
	want := "downloading the artifacts of job 41: the archive is larger than the 4000 bytes this runner takes (it sent more): " +
		"make the dependency's artifacts smaller, or raise the runner's limit: artifacts archive too large"
	if !errors.Is(err, coordinator.ErrArtifactsTooLarge) || err.Error() != want || n != 0 || len(contents(t, dst)) != 0 {
		t.Fatalf("n=%d err=%v\nwant %s", n, err, want)
	}
}

func TestDownloadArtifactsRefusesWhatItCannotDo(t *testing.T) {
	url, calls := statusServer(t, http.StatusOK)
	c := newClient(&sleeps{})
	dst := tempFile(t)
	for _, tc := range []struct {
		id    int64
		token string
		limit int64
		want  string
	}{
		{0, "dep-secret", 10, "downloading the artifacts of job 0: the job's payload names a dependency without an id"},
		{41, "", 10, "downloading the artifacts of job 41: the job's payload gives no token for this dependency"},
		{41, "dep-secret", 0, "downloading the artifacts of job 41: the limit 0 leaves no room for an archive"},
	} {
		_, err := c.DownloadArtifacts(context.Background(), url, tc.id, tc.token, dst, tc.limit)
		if err == nil || err.Error() != tc.want {
			t.Errorf("err = %v, want %s", err, tc.want)
		}
	}
	if calls.Load() != 0 {
		t.Errorf("%d requests sent", calls.Load())
	}
}
