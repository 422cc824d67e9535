package coordinatortest

// Artifacts: POST and GET /api/v4/jobs/:id/artifacts, streamed (bodies are
// not read into memory), for both flavors. AlloyCI's answers follow
// web/controllers/api/builds_artifact_controller.ex, builds/builds.ex
// (get_by, store_artifact) and lib/time_convert.ex, in the order the real
// server checks things: Plug.Parsers in the endpoint first (the whole
// multipart body, length 100_000_000), then the router's accepts plug, then
// the controller.

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxArtifactsBody is the most bytes of multipart part bodies the AlloyCI
// flavor takes in an upload, as AlloyCI's endpoint.ex configures
// Plug.Parsers (length: 100_000_000); more is answered 413. The Strict
// flavor has no limit, as a GitLab whose maximum artifacts size was raised.
const MaxArtifactsBody = 100_000_000

// alloyDefaultExpiry is builds.ex store_artifact's "7d" for a missing or
// empty expire_in.
const alloyDefaultExpiry = 7 * 24 * 3600

// Transfer is one artifacts request the double answered for a job.
type Transfer struct {
	// Status is what the double answered; 0 when it dropped the connection
	// (see FailUploads, FailDownloads).
	Status int
	// Filename is an upload's file part's filename as sent ("" if none);
	// for a download, the name the answer gave.
	Filename string
	// ExpireIn is an upload's expire_in field as sent ("" when absent).
	ExpireIn string
	// ExpireSeconds is, for the AlloyCI flavor, how long the server would
	// keep the archive: TimeConvert.to_seconds of expire_in, 7 days when it
	// is absent or empty; 0 means it is deleted at the next sweep ("never",
	// "3600" without a unit). 0 for Strict.
	ExpireSeconds int64
	// Bytes is the length of the upload's file part as received, or of the
	// download's body as sent.
	Bytes int64
	// SHA256 is the hex SHA-256 of those bytes ("" for a download that
	// did not send the whole archive).
	SHA256 string
}

// stored is an archive the double keeps, in a file of its own.
type stored struct {
	path          string
	size          int64
	sum           string
	filename      string
	expireIn      string
	expireSeconds int64
}

// artifacts is what the double knows of one job's artifacts: an enqueued
// job's, or a dependency's set with SetArtifact.
type artifacts struct {
	token     string
	declares  bool // the job declares artifacts (AlloyCI: build.artifacts is a map)
	enqueued  bool
	stored    *stored
	uploads   []Transfer
	downloads []Transfer
	failUp    []int
	failDown  []int
}

// declaresArtifacts reports whether a job payload declares artifacts as
// AlloyCI decides it (%{artifacts: %{}} = build): its artifacts list holds
// an object.
func declaresArtifacts(payload []byte) bool {
	var p struct {
		Artifacts []json.RawMessage `json:"artifacts"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return false
	}
	for _, a := range p.Artifacts {
		if s := strings.TrimSpace(string(a)); strings.HasPrefix(s, "{") {
			return true
		}
	}
	return false
}

// artifactsLocked returns the record of job id, made if need be.
func (s *Server) artifactsLocked(id int64) *artifacts {
	a := s.arts[id]
	if a == nil {
		a = &artifacts{}
		s.arts[id] = a
	}
	return a
}

// SetArtifact stores zip as the artifacts archive of job jobID, as if it had
// been uploaded as artifacts.zip: a dependency whose archive the runner
// downloads (crafted archives included: zip is not checked). For a job the
// double handed out, token must be "" or the job's token; for any other id
// the double now knows a finished job of an earlier stage with that token
// ("" gives it the token a job of that id would have), which declares
// artifacts.
func (s *Server) SetArtifact(jobID int64, token string, zip []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	a := s.artifactsLocked(jobID)
	switch {
	case a.enqueued && token != "" && token != a.token:
		s.t.Fatalf("SetArtifact: job %d has another token", jobID)
	case !a.enqueued:
		if token == "" {
			token = jobToken(jobID)
		}
		a.token, a.declares = token, true
	}
	f, err := os.CreateTemp(s.dir, "artifact-*.zip")
	if err != nil {
		s.t.Fatalf("SetArtifact: %v", err)
	}
	defer f.Close()
	if _, err := f.Write(zip); err != nil {
		s.t.Fatalf("SetArtifact: %v", err)
	}
	sum := sha256.Sum256(zip)
	s.replaceLocked(a, &stored{path: f.Name(), size: int64(len(zip)), sum: hex.EncodeToString(sum[:]),
		filename: "artifacts.zip", expireSeconds: alloyDefaultExpiry})
}

// replaceLocked makes st the archive a keeps. AlloyCI keeps the expiry of
// the first archive (store_artifact updates only the file of an existing
// one); Strict takes the new one's.
func (s *Server) replaceLocked(a *artifacts, st *stored) {
	if old := a.stored; old != nil {
		_ = os.Remove(old.path)
		if s.flavor == AlloyCI {
			st.expireIn, st.expireSeconds = old.expireIn, old.expireSeconds
		}
	}
	a.stored = st
}

// Artifact returns the archive the double keeps for job jobID, and its
// expire_in as the server keeps it: the last archive stored, with (AlloyCI)
// the expire_in of the first one or (Strict) of the last one. ok is false
// when it keeps none.
func (s *Server) Artifact(jobID int64) (zip []byte, expireIn string, ok bool) {
	s.mu.Lock()
	a := s.arts[jobID]
	var st stored
	if a != nil && a.stored != nil {
		st = *a.stored
	}
	s.mu.Unlock()
	if st.path == "" {
		return nil, "", false
	}
	b, err := os.ReadFile(st.path)
	if err != nil {
		s.t.Fatalf("Artifact: %v", err)
	}
	return b, st.expireIn, true
}

// Uploads lists the artifacts uploads the double answered for job jobID, in
// order, failed ones included.
func (s *Server) Uploads(jobID int64) []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.arts[jobID]; a != nil {
		return append([]Transfer(nil), a.uploads...)
	}
	return nil
}

// Downloads lists the artifacts downloads of job jobID's archive the double
// answered, in order, failed ones included.
func (s *Server) Downloads(jobID int64) []Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a := s.arts[jobID]; a != nil {
		return append([]Transfer(nil), a.downloads...)
	}
	return nil
}

// FailUploads makes the next uploads for job jobID fail, one per code, as a
// proxy in front of the coordinator would: an HTTP status once the body was
// read, or 0 to drop the connection after 64 KiB of it. Nothing is stored.
func (s *Server) FailUploads(jobID int64, codes ...int) {
	s.editArtifacts(jobID, func(a *artifacts) { a.failUp = append(a.failUp, codes...) })
}

// FailDownloads makes the next downloads of job jobID's archive fail, one
// per code: an HTTP status, or 0 to send the headers (with the whole
// Content-Length) and half the archive, then drop the connection.
func (s *Server) FailDownloads(jobID int64, codes ...int) {
	s.editArtifacts(jobID, func(a *artifacts) { a.failDown = append(a.failDown, codes...) })
}

func (s *Server) editArtifacts(id int64, f func(*artifacts)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.arts[id]
	if a == nil {
		s.t.Fatalf("unknown job %d", id)
	}
	f(a)
	s.notifyLocked()
}

// HoldUploads makes every artifacts upload wait, before the double reads its
// body, until release is called (or the test ends): a test can watch the
// runner in its upload_artifacts stage (see UploadsHeld). release may be
// called more than once.
func (s *Server) HoldUploads() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == nil {
		s.hold = make(chan struct{})
	}
	ch := s.hold
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			close(ch)
			if s.hold == ch {
				s.hold = nil
			}
			s.notifyLocked()
		})
	}
	s.t.Cleanup(release)
	return release
}

// UploadsHeld counts the uploads waiting for HoldUploads' release.
func (s *Server) UploadsHeld() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// UploadedBytes counts the bytes of artifacts upload bodies the double has
// read so far, all jobs together, as it reads them: a test compares it with
// how much of an archive the runner has read, to see that the runner
// streams.
func (s *Server) UploadedBytes() int64 { return s.uploaded.Load() }

// artifactsID returns the id text of an artifacts route (POST or GET
// /api/v4/jobs/:id/artifacts), or "" for any other request.
func artifactsID(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "", false
	}
	seg := segments(r.URL.Path)
	if len(seg) != 5 || seg[0] != "api" || seg[1] != "v4" || seg[2] != "jobs" || seg[4] != "artifacts" {
		return "", false
	}
	return seg[3], true
}

func (s *Server) serveArtifacts(w http.ResponseWriter, r *http.Request, idText string) {
	if r.Method == http.MethodGet {
		s.download(w, r, idText)
		return
	}
	s.upload(w, r, idText)
}

// form is an upload's body as the double read it.
type form struct {
	multipart bool
	malformed string // why the multipart body does not parse
	tooLarge  bool   // AlloyCI: part bodies over MaxArtifactsBody
	// file is the last "file" part with a filename, written to a file.
	file       *stored
	fileParts  int
	fileField  bool // a "file" part without filename: a text field
	expireIn   string
	expireSeen int
	others     []string // names of other parts
	// params are the params of a body that is not multipart (AlloyCI).
	params      map[string]any
	paramStatus int
}

// readForm reads the upload's body: a multipart form streamed to a file, or
// for the AlloyCI flavor another body as Plug.Parsers would read it.
func (s *Server) readForm(r *http.Request, body io.Reader) *form {
	f := &form{}
	mt, mp, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") ||
		(s.flavor == AlloyCI && mt != "multipart/form-data" && mt != "multipart/mixed") ||
		(s.flavor == Strict && mt != "multipart/form-data") {
		b, _ := io.ReadAll(io.LimitReader(body, 32<<20))
		_, _ = io.Copy(io.Discard, body)
		if s.flavor == AlloyCI {
			f.params, _, f.paramStatus = phoenixParams(r, b)
		}
		return f
	}
	f.multipart = true
	defer func() { _, _ = io.Copy(io.Discard, body) }()
	if mp["boundary"] == "" {
		f.malformed = "no boundary in the Content-Type"
		return f
	}
	mr := multipart.NewReader(body, mp["boundary"])
	var used int64 // part body bytes, as Plug.Parsers counts them
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return f
		}
		if err != nil {
			f.malformed = err.Error()
			return f
		}
		_, dp, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		name, filename, hasFilename := dp["name"], dp["filename"], false
		if _, ok := dp["filename"]; ok {
			hasFilename = true
		}
		if err != nil {
			name = ""
		}
		switch {
		case name == "" || (hasFilename && filename == ""):
			// Plug keeps no param for a part without a name, and skips a
			// part with an empty filename (an empty file input).
			if _, err := io.Copy(io.Discard, part); err != nil {
				f.malformed = err.Error()
				return f
			}
			if name != "" && name != "file" {
				f.others = append(f.others, name)
			}
			if name == "file" {
				f.fileParts++
			}
			continue
		case name == "file" && hasFilename:
			f.fileParts++
			st, n, err := s.receiveFile(part, filename, MaxArtifactsBody-used)
			used += n
			if err != nil {
				f.malformed = err.Error()
				return f
			}
			if st == nil {
				f.tooLarge = true
				return f
			}
			if f.file != nil {
				_ = os.Remove(f.file.path)
			}
			f.file, f.fileField = st, false
		default:
			b, err := io.ReadAll(io.LimitReader(part, 1<<20))
			if err != nil {
				f.malformed = err.Error()
				return f
			}
			rest, _ := io.Copy(io.Discard, part)
			used += int64(len(b)) + rest
			switch name {
			case "file":
				f.fileParts++
				f.fileField = true
				if f.file != nil {
					_ = os.Remove(f.file.path)
					f.file = nil
				}
			case "expire_in":
				f.expireIn = string(b)
				f.expireSeen++
			default:
				f.others = append(f.others, name)
			}
		}
		if s.flavor == AlloyCI && used > MaxArtifactsBody {
			f.tooLarge = true
			return f
		}
	}
}

// receiveFile writes a file part to a file of the double's, reading at most
// room+1 bytes (AlloyCI; Strict has no limit). A nil *stored with no error
// means the part was longer than room.
func (s *Server) receiveFile(part io.Reader, filename string, room int64) (*stored, int64, error) {
	if s.flavor == Strict {
		room = math.MaxInt64 - 1
	}
	out, err := os.CreateTemp(s.dir, "upload-*.zip")
	if err != nil {
		return nil, 0, err
	}
	defer out.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(part, room+1))
	if err != nil || n > room {
		_ = os.Remove(out.Name())
		if err == nil {
			_, _ = io.Copy(io.Discard, part)
		}
		return nil, n, err
	}
	return &stored{path: out.Name(), size: n, sum: hex.EncodeToString(h.Sum(nil)), filename: filename}, n, nil
}

// countingReader counts what the double reads of an upload's body, and
// keeps the error that cut it short, if any (the runner gave up, or the
// connection was lost).
type countingReader struct {
	r   io.Reader
	n   interface{ Add(int64) int64 }
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request, idText string) {
	s.mu.Lock()
	s.calls++
	hold := s.hold
	if hold != nil {
		s.held++
	}
	s.notifyLocked()
	s.mu.Unlock()
	if hold != nil {
		timer := time.NewTimer(waitLimit)
		select {
		case <-hold:
		case <-r.Context().Done():
		case <-timer.C:
		}
		timer.Stop()
		s.mu.Lock()
		s.held--
		s.notifyLocked()
		s.mu.Unlock()
	}
	body := &countingReader{r: r.Body, n: &s.uploaded}

	// A failure on demand comes first, as from a proxy in front.
	id, idErr := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	a := s.arts[id]
	code, fail := -1, false
	if idErr == nil && a != nil && len(a.failUp) > 0 {
		code, fail = a.failUp[0], true
		a.failUp = a.failUp[1:]
		a.uploads = append(a.uploads, Transfer{Status: code})
		s.notifyLocked()
	}
	s.mu.Unlock()
	if fail {
		if code == 0 {
			_, _ = io.CopyN(io.Discard, body, 64<<10)
			panic(http.ErrAbortHandler)
		}
		_, _ = io.Copy(io.Discard, body)
		w.WriteHeader(code)
		return
	}

	f := s.readForm(r, body)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.notifyLocked()
	if body.err != nil {
		// The body was cut short: nobody waits for an answer.
		if f.file != nil {
			_ = os.Remove(f.file.path)
		}
		if a := s.arts[id]; idErr == nil && a != nil {
			a.uploads = append(a.uploads, Transfer{Status: 0, ExpireIn: f.expireIn})
		}
		return
	}
	var status int
	var keep *stored
	if s.flavor == AlloyCI {
		status, keep = s.alloyUpload(r, idText, f)
	} else {
		status, keep = s.strictUpload(r, idText, f)
	}
	if f.file != nil && f.file != keep {
		_ = os.Remove(f.file.path)
	}
	if a := s.arts[id]; idErr == nil && a != nil {
		t := Transfer{Status: status, ExpireIn: f.expireIn}
		if f.file != nil {
			t.Filename, t.Bytes, t.SHA256 = f.file.filename, f.file.size, f.file.sum
		}
		if keep != nil {
			t.ExpireSeconds = keep.expireSeconds
			keep.expireIn = f.expireIn
			s.replaceLocked(a, keep)
		}
		a.uploads = append(a.uploads, t)
	}
	w.WriteHeader(status)
}

// alloyUpload is BuildsArtifactController.create and Builds.store_artifact.
// It returns the answer, and the archive to keep on success.
func (s *Server) alloyUpload(r *http.Request, idText string, f *form) (int, *stored) {
	where := "upload of artifacts for job " + idText
	switch {
	case f.paramStatus != 0:
		s.violate("%s: Content-Type %q with a body its parser refuses (AlloyCI answers %d)", where, r.Header.Get("Content-Type"), f.paramStatus)
		return f.paramStatus, nil
	case f.malformed != "":
		s.violate("%s: malformed multipart body (%s): AlloyCI answers 400", where, f.malformed)
		return http.StatusBadRequest, nil
	case f.tooLarge:
		s.violate("%s: more than %d bytes: AlloyCI answers 413 (Plug.Parsers length)", where, MaxArtifactsBody)
		return http.StatusRequestEntityTooLarge, nil
	case !acceptable(r.Header.Get("Accept")):
		s.violate("%s: Accept %q names neither JSON nor text (AlloyCI answers 406)", where, r.Header.Get("Accept"))
		return http.StatusNotAcceptable, nil
	}
	_, fileParam := f.params["file"]
	if f.file == nil && !f.fileField && !fileParam {
		s.violate("%s without a file part: AlloyCI's create/4 does not match (400)", where)
		return http.StatusBadRequest, nil
	}
	tokens := r.Header.Values("Job-Token")
	if len(tokens) == 0 {
		s.violate("%s without a JOB-TOKEN header: AlloyCI raises (500)", where)
		return http.StatusInternalServerError, nil
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		s.violate("%s: the id is not a number: AlloyCI answers 400", where)
		return http.StatusBadRequest, nil
	}
	a := s.arts[id]
	if a == nil {
		s.violate("%s: unknown job: AlloyCI raises (500)", where)
		return http.StatusInternalServerError, nil
	}
	if strings.Join(tokens, ", ") != a.token {
		s.violate("job %d: artifacts upload without the job's JOB-TOKEN", id)
		return http.StatusForbidden, nil
	}
	if j := s.jobs[id]; j != nil && j.revoked {
		return http.StatusForbidden, nil
	}
	if !a.declares {
		return http.StatusNotFound, nil
	}
	if f.file == nil {
		s.violate("job %d: the artifacts form's file field is not a file: AlloyCI's store_artifact fails (500)", id)
		return http.StatusInternalServerError, nil
	}
	secs, err := alloySeconds(f.expireIn)
	if err != nil {
		s.violate("job %d: expire_in %q: %v: AlloyCI raises (500)", id, f.expireIn, err)
		return http.StatusInternalServerError, nil
	}
	f.file.expireSeconds = secs
	return http.StatusCreated, f.file
}

// strictUpload checks an upload as a GitLab-like coordinator that checks
// everything.
func (s *Server) strictUpload(r *http.Request, idText string, f *form) (int, *stored) {
	id, err := strconv.ParseInt(idText, 10, 64)
	a := s.arts[id]
	if err != nil || a == nil {
		s.violate("artifacts upload for unknown job %q", idText)
		return http.StatusNotFound, nil
	}
	if got := r.Header.Get("JOB-TOKEN"); got != a.token {
		s.violate("job %d: artifacts upload without the job's JOB-TOKEN", id)
		return http.StatusForbidden, nil
	}
	j := s.jobs[id]
	switch {
	case j != nil && j.revoked:
		return http.StatusForbidden, nil
	case j == nil:
		s.violate("job %d: artifacts upload for a job the runner was not given", id)
		return http.StatusForbidden, nil
	case j.final:
		s.violate("job %d: artifacts upload after the final state", id)
		return http.StatusForbidden, nil
	case j.status != "running":
		return http.StatusForbidden, nil // canceled: the job is not running
	}
	switch {
	case !f.multipart:
		s.violate("job %d: artifacts upload with Content-Type %q, want multipart/form-data", id, r.Header.Get("Content-Type"))
		return http.StatusUnsupportedMediaType, nil
	case f.malformed != "":
		s.violate("job %d: malformed multipart body: %s", id, f.malformed)
		return http.StatusBadRequest, nil
	case f.fileParts != 1 || f.file == nil:
		s.violate("job %d: artifacts form with %d file parts, want exactly one with a filename", id, f.fileParts)
		return http.StatusBadRequest, nil
	case len(f.others) > 0 || f.expireSeen > 1:
		s.violate("job %d: artifacts form with fields %q besides file and one expire_in", id, f.others)
		return http.StatusBadRequest, nil
	case !a.declares:
		s.violate("job %d: artifacts upload for a job that declares none", id)
		return http.StatusNotFound, nil
	}
	if zr, err := zip.OpenReader(f.file.path); err != nil {
		s.violate("job %d: the artifacts archive is not a zip file: %v", id, err)
		return http.StatusBadRequest, nil
	} else {
		_ = zr.Close()
	}
	return http.StatusCreated, f.file
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, idText string) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	id, idErr := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	s.calls++
	a := s.arts[id]
	if idErr != nil {
		a = nil
	}
	var st *stored
	var filename string
	code, half := 0, false
	if a != nil && len(a.failDown) > 0 {
		// A failure on demand comes first, as from a proxy in front.
		code, a.failDown = a.failDown[0], a.failDown[1:]
		if code == 0 {
			half, st = true, a.stored
			if st != nil {
				filename = st.filename
			}
		} else {
			a.downloads = append(a.downloads, Transfer{Status: code})
		}
	} else {
		code, st, filename = s.downloadAnswerLocked(r, idText)
		if code != 0 && a != nil {
			a.downloads = append(a.downloads, Transfer{Status: code})
		}
	}
	idx := -1
	if st != nil {
		// Recorded before it is sent, so a runner that has it finds it
		// counted; Bytes is corrected if the runner goes away before the
		// end.
		t := Transfer{Status: http.StatusOK, Filename: filename, Bytes: st.size, SHA256: st.sum}
		if half {
			t = Transfer{Status: 0, Filename: filename, Bytes: st.size / 2}
		}
		a.downloads = append(a.downloads, t)
		idx = len(a.downloads) - 1
	}
	s.notifyLocked()
	s.mu.Unlock()
	if half && st == nil {
		panic(http.ErrAbortHandler)
	}
	if st == nil {
		w.WriteHeader(code)
		return
	}
	// The archive is sent without the lock held.
	file, err := os.Open(st.path)
	if err != nil {
		s.t.Errorf("download: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	defer file.Close()
	h := w.Header()
	if s.flavor == AlloyCI {
		// put_resp_content_type("application/octet-stream", "utf-8"),
		// content-transfer-encoding, content-disposition; send_file ignores
		// Range.
		h.Set("Content-Type", "application/octet-stream; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "binary")
		h.Set("Content-Disposition", "attachment; filename="+filename)
	} else {
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filename}))
	}
	h.Set("Content-Length", strconv.FormatInt(st.size, 10))
	w.WriteHeader(http.StatusOK)
	send := st.size
	if half {
		send = st.size / 2
	}
	if n, _ := io.Copy(w, io.LimitReader(file, send)); n != send {
		s.mu.Lock()
		a.downloads[idx].Bytes, a.downloads[idx].SHA256 = n, ""
		s.notifyLocked()
		s.mu.Unlock()
	}
	if half {
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	}
}

// downloadAnswerLocked decides a download's answer: a status (0 to send st),
// or the archive to send and its name.
func (s *Server) downloadAnswerLocked(r *http.Request, idText string) (code int, st *stored, filename string) {
	where := "download of the artifacts of job " + idText
	id, err := strconv.ParseInt(idText, 10, 64)
	a := s.arts[id]
	if s.flavor == Strict {
		switch {
		case err != nil || a == nil:
			s.violate("%s: unknown job", where)
			return http.StatusNotFound, nil, ""
		case r.Header.Get("JOB-TOKEN") != a.token:
			s.violate("%s without that job's JOB-TOKEN (a dependency's artifacts are fetched with the dependency's token)", where)
			return http.StatusForbidden, nil, ""
		case a.stored == nil:
			return http.StatusNotFound, nil, ""
		}
		return 0, a.stored, a.stored.filename
	}
	// AlloyCI: the accepts plug, then BuildsArtifactController.show.
	tokens := r.Header.Values("Job-Token")
	switch {
	case !acceptable(r.Header.Get("Accept")):
		s.violate("%s: Accept %q names neither JSON nor text (AlloyCI answers 406)", where, r.Header.Get("Accept"))
		return http.StatusNotAcceptable, nil, ""
	case len(tokens) == 0:
		s.violate("%s without a JOB-TOKEN header: AlloyCI raises (500)", where)
		return http.StatusInternalServerError, nil, ""
	case err != nil:
		s.violate("%s: the id is not a number: AlloyCI answers 400", where)
		return http.StatusBadRequest, nil, ""
	case a == nil:
		s.violate("%s: unknown job: AlloyCI raises (500)", where)
		return http.StatusInternalServerError, nil, ""
	case strings.Join(tokens, ", ") != a.token:
		s.violate("%s without that job's JOB-TOKEN (a dependency's artifacts are fetched with the dependency's token)", where)
		return http.StatusForbidden, nil, ""
	case !a.declares:
		return http.StatusNotFound, nil, ""
	case a.stored == nil:
		// build.artifact.file on a nil artifact raises: the server's
		// failure, not the runner's.
		return http.StatusInternalServerError, nil, ""
	}
	return 0, a.stored, a.stored.filename
}

// alloyNumber is TimeConvert's number_matcher.
var alloyNumber = regexp.MustCompile(`[0-9]*\.?[0-9]+`)

// alloyUnits is TimeConvert's mappings and duration_units_seconds_multiplier.
var alloyUnits = func() map[string]int64 {
	const day = 24 * 3600
	m := map[string]int64{}
	for unit, names := range map[int64][]string{
		1:          {"seconds", "second", "secs", "sec", "s"},
		60:         {"minutes", "minute", "mins", "min", "m"},
		3600:       {"hours", "hour", "hrs", "hr", "h"},
		day:        {"days", "day", "dy", "d"},
		7 * day:    {"weeks", "week", "wks", "wk", "w"},
		30 * day:   {"months", "mo", "mos", "month"},
		31_557_600: {"years", "year", "yrs", "yr", "y"},
	} {
		for _, n := range names {
			m[n] = unit
		}
	}
	return m
}()

// alloySeconds is store_artifact's reading of expire_in: "7d" for nil or
// "", else TimeConvert.to_seconds, which raises on a decimal number.
func alloySeconds(expireIn string) (int64, error) {
	if expireIn == "" {
		return alloyDefaultExpiry, nil
	}
	spaced := alloyNumber.ReplaceAllString(strings.ToLower(expireIn), " $0 ")
	var words []string
	for _, w := range strings.Split(strings.Trim(spaced, " "), " ") {
		if alloyNumber.MatchString(w) {
			words = append(words, strings.TrimSpace(w))
		} else if _, ok := alloyUnits[w]; ok {
			words = append(words, w)
		}
	}
	var total int64
	for i, w := range words {
		if !alloyNumber.MatchString(w) {
			continue
		}
		n, err := strconv.ParseInt(w, 10, 64)
		if err != nil {
			var ne *strconv.NumError
			if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
				n = math.MaxInt64 / 31_557_600
			} else {
				return 0, fmt.Errorf("String.to_integer(%q) raises", w)
			}
		}
		if i+1 < len(words) {
			total += n * alloyUnits[words[i+1]]
		}
	}
	return total, nil
}
