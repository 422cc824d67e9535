package coordinatortest

import (
	"archive/zip"
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/alloyci/hardened-runner/coordinator"
)

func zipOf(t *testing.T, name, content string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// part is one part of a multipart form; filename "-" means none.
type part struct{ name, filename, body string }

// formBody builds a multipart form and its Content-Type.
func formBody(t *testing.T, parts ...part) (string, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := make(textproto.MIMEHeader)
		cd := `form-data; name="` + p.name + `"`
		if p.filename != "-" {
			cd += `; filename="` + p.filename + `"`
		}
		h.Set("Content-Disposition", cd)
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p.body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String(), mw.FormDataContentType()
}

// upload posts a form for job id; a missing "JOB-TOKEN" key sends none.
func upload(t *testing.T, s *Server, id string, h map[string]string, parts ...part) answer {
	t.Helper()
	body, ctype := formBody(t, parts...)
	if h == nil {
		h = map[string]string{}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = ctype
	}
	return call(t, http.MethodPost, s.URL+"api/v4/jobs/"+id+"/artifacts", h, body)
}

func artifactsJob(t *testing.T, s *Server, sp Spec) (int64, string) {
	t.Helper()
	s.AddRunner("rt")
	sp.Script = []string{"true"}
	id := s.EnqueueSpec("rt", sp)
	if a := requestJob(t, s, "rt"); a.code != http.StatusCreated {
		t.Fatalf("request: %d", a.code)
	}
	return id, jobToken(id)
}

func TestAlloyCIUpload(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	id, tok := artifactsJob(t, s, Spec{Artifacts: &coordinator.ArtifactsSpec{Paths: []string{"dist/"}}})
	ids := jsonText(id)
	z := zipOf(t, "a", "x")
	file := part{"file", "artifacts.zip", string(z)}
	tokh := func() map[string]string { return map[string]string{"JOB-TOKEN": tok} }

	// In the order the real server checks: Plug.Parsers, accepts, the
	// action's pattern, the header, the id, the token, the artifacts.
	for _, tc := range []struct {
		what      string
		code      int
		violation string
		send      func() answer
	}{
		{"malformed multipart", 400, "malformed multipart body", func() answer {
			return call(t, http.MethodPost, s.URL+"api/v4/jobs/"+ids+"/artifacts",
				map[string]string{"JOB-TOKEN": tok, "Content-Type": "multipart/form-data; boundary=xyz"}, "--xyz\r\nbroken")
		}},
		{"no file part", 400, "without a file part", func() answer { return upload(t, s, ids, tokh(), part{"expire_in", "-", "1 day"}) }},
		{"an empty filename is skipped by Plug", 400, "without a file part", func() answer { return upload(t, s, ids, tokh(), part{"file", "", "x"}) }},
		{"a raw zip body", 400, "without a file part", func() answer {
			return call(t, http.MethodPost, s.URL+"api/v4/jobs/"+ids+"/artifacts",
				map[string]string{"JOB-TOKEN": tok, "Content-Type": "application/zip"}, string(z))
		}},
		{"Accept: application/zip", 406, "Accept", func() answer {
			return upload(t, s, ids, map[string]string{"JOB-TOKEN": tok, "Accept": "application/zip"}, file)
		}},
		{"no JOB-TOKEN", 500, "without a JOB-TOKEN header", func() answer { return upload(t, s, ids, nil, file) }},
		{"id abc", 400, "the id is not a number", func() answer { return upload(t, s, "abc", tokh(), file) }},
		{"unknown job", 500, "unknown job", func() answer { return upload(t, s, "999999", tokh(), file) }},
		{"wrong token", 403, "without the job's JOB-TOKEN", func() answer {
			return upload(t, s, ids, map[string]string{"JOB-TOKEN": "wrong"}, file)
		}},
		{"file as a text field", 500, "is not a file", func() answer { return upload(t, s, ids, tokh(), part{"file", "-", "x"}) }},
		{"decimal expire_in", 500, `String.to_integer("1.5") raises`, func() answer {
			return upload(t, s, ids, tokh(), file, part{"expire_in", "-", "1.5 days"})
		}},
	} {
		if a := tc.send(); a.code != tc.code {
			t.Errorf("%s: %d, want %d", tc.what, a.code, tc.code)
		}
		wantViolations(t, s, tc.violation)
	}
	if _, _, ok := s.Artifact(id); ok {
		t.Fatal("a refused upload was stored")
	}

	// Stored: the file name as sent, unknown fields ignored; the expiry of
	// the first archive is kept when another replaces it.
	if a := upload(t, s, ids, tokh(), part{"other", "-", "x"}, part{"file", "my archive.zip", string(z)},
		part{"expire_in", "-", "2 Weeks 3d"}); a.code != http.StatusCreated {
		t.Fatalf("upload: %d %q", a.code, a.body)
	}
	z2 := zipOf(t, "b", "y")
	if a := upload(t, s, ids, tokh(), part{"file", "artifacts.zip", string(z2)}, part{"expire_in", "-", "1 day"}); a.code != http.StatusCreated {
		t.Fatalf("second upload: %d", a.code)
	}
	got, expire, ok := s.Artifact(id)
	if !ok || !bytes.Equal(got, z2) || expire != "2 Weeks 3d" {
		t.Errorf("stored: ok=%v expire=%q, want the second archive with the first expire_in", ok, expire)
	}
	up := s.Uploads(id)
	last := up[len(up)-2:]
	if last[0].Filename != "my archive.zip" || last[0].ExpireSeconds != 17*24*3600 || last[1].ExpireSeconds != 24*3600 {
		t.Errorf("uploads %+v", last)
	}
	wantViolations(t, s)

	// A job that declares no artifacts: 404, and no violation.
	none, ntok := artifactsJob(t, s, Spec{})
	if a := upload(t, s, jsonText(none), map[string]string{"JOB-TOKEN": ntok}, file); a.code != http.StatusNotFound {
		t.Errorf("no artifacts: %d, want 404", a.code)
	}
	wantViolations(t, s)
}

func TestAlloyCIExpireIn(t *testing.T) {
	const day = 24 * 3600
	for in, want := range map[string]int64{
		"": 7 * day, "1 week": 7 * day, "7d": 7 * day, "2h10m36s": 7836, "5 min 36 sec": 336,
		"1 Month": 30 * day, "1 year": 31_557_600, "3600": 0, "never": 0, "forever and 2": 0, "1 fortnight": 0,
		"-1 day": day,
	} {
		got, err := alloySeconds(in)
		if err != nil || got != want {
			t.Errorf("%q: %d %v, want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"1.5 days", ".5h"} {
		if _, err := alloySeconds(in); err == nil {
			t.Errorf("%q: no error, want String.to_integer raising", in)
		}
	}
}

func TestStrictUpload(t *testing.T) {
	s := New(t)
	id, tok := artifactsJob(t, s, Spec{Artifacts: &coordinator.ArtifactsSpec{Paths: []string{"dist/"}}})
	ids := jsonText(id)
	tokh := func() map[string]string { return map[string]string{"JOB-TOKEN": tok} }
	z := zipOf(t, "a", "x")
	file := part{"file", "artifacts.zip", string(z)}
	for _, tc := range []struct {
		what      string
		code      int
		violation string
		send      func() answer
	}{
		{"no JOB-TOKEN", 403, "without the job's JOB-TOKEN", func() answer { return upload(t, s, ids, nil, file) }},
		{"unknown job", 404, "unknown job", func() answer { return upload(t, s, "999999", tokh(), file) }},
		{"not multipart", 415, "want multipart/form-data", func() answer {
			return call(t, http.MethodPost, s.URL+"api/v4/jobs/"+ids+"/artifacts",
				map[string]string{"JOB-TOKEN": tok, "Content-Type": "application/zip"}, string(z))
		}},
		{"two files", 400, "with 2 file parts", func() answer { return upload(t, s, ids, tokh(), file, file) }},
		{"no filename", 400, "with 1 file parts", func() answer { return upload(t, s, ids, tokh(), part{"file", "-", "x"}) }},
		{"another field", 400, `fields ["name"]`, func() answer { return upload(t, s, ids, tokh(), file, part{"name", "-", "x"}) }},
		{"not a zip", 400, "not a zip file", func() answer { return upload(t, s, ids, tokh(), part{"file", "a.zip", "not a zip"}) }},
	} {
		if a := tc.send(); a.code != tc.code {
			t.Errorf("%s: %d, want %d", tc.what, a.code, tc.code)
		}
		wantViolations(t, s, tc.violation)
	}
	if a := upload(t, s, ids, tokh(), file, part{"expire_in", "-", "3 days"}); a.code != http.StatusCreated {
		t.Fatalf("upload: %d", a.code)
	}
	if got, expire, ok := s.Artifact(id); !ok || !bytes.Equal(got, z) || expire != "3 days" {
		t.Errorf("stored %v %q", ok, expire)
	}
	// After the final state the job is not running: 403.
	if a := call(t, http.MethodPut, s.URL+"api/v4/jobs/"+ids, nil, jsonBody(t, map[string]any{"token": tok, "state": "success"})); a.code != 200 {
		t.Fatalf("final: %d", a.code)
	}
	if a := upload(t, s, ids, tokh(), file); a.code != http.StatusForbidden {
		t.Errorf("after the final state: %d, want 403", a.code)
	}
	wantViolations(t, s, "after the final state")
	// A job without artifacts: 404 and a violation.
	none, ntok := artifactsJob(t, s, Spec{})
	if a := upload(t, s, jsonText(none), map[string]string{"JOB-TOKEN": ntok}, file); a.code != http.StatusNotFound {
		t.Errorf("no artifacts: %d, want 404", a.code)
	}
	wantViolations(t, s, "declares none")
}

func download(t *testing.T, s *Server, id string, h map[string]string) answer {
	t.Helper()
	if h == nil {
		h = map[string]string{}
	}
	h["Content-Type"] = ""
	return call(t, http.MethodGet, s.URL+"api/v4/jobs/"+id+"/artifacts", h, "")
}

func TestAlloyCIDownload(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	z := zipOf(t, "a", strings.Repeat("x", 1000))
	s.SetArtifact(41, "t41", z)
	for _, tc := range []struct {
		what      string
		id        string
		h         map[string]string
		code      int
		violation string
	}{
		{"no JOB-TOKEN", "41", nil, 500, "without a JOB-TOKEN header"},
		{"id abc", "abc", map[string]string{"JOB-TOKEN": "t41"}, 400, "not a number"},
		{"unknown job", "40", map[string]string{"JOB-TOKEN": "t41"}, 500, "unknown job"},
		{"wrong token", "41", map[string]string{"JOB-TOKEN": "t42"}, 403, "without that job's JOB-TOKEN"},
		{"Accept: application/zip", "41", map[string]string{"JOB-TOKEN": "t41", "Accept": "application/zip"}, 406, "Accept"},
	} {
		if a := download(t, s, tc.id, tc.h); a.code != tc.code {
			t.Errorf("%s: %d, want %d", tc.what, a.code, tc.code)
		}
		wantViolations(t, s, tc.violation)
	}
	// Range is ignored: the whole archive, as send_file sends it.
	a := download(t, s, "41", map[string]string{"JOB-TOKEN": "t41", "Range": "bytes=10-"})
	if a.code != 200 || a.body != string(z) || a.header.Get("Content-Type") != "application/octet-stream; charset=utf-8" ||
		a.header.Get("Content-Disposition") != "attachment; filename=artifacts.zip" || a.header.Get("Content-Length") != strconv.Itoa(len(z)) {
		t.Errorf("download: %d %v (%d bytes)", a.code, a.header, len(a.body))
	}
	// A job that declares none: 404; one that declares artifacts but has
	// none stored makes the server raise: 500, the server's fault.
	none, ntok := artifactsJob(t, s, Spec{})
	if a := download(t, s, jsonText(none), map[string]string{"JOB-TOKEN": ntok}); a.code != 404 {
		t.Errorf("declares none: %d, want 404", a.code)
	}
	empty, etok := artifactsJob(t, s, Spec{Artifacts: &coordinator.ArtifactsSpec{}})
	if a := download(t, s, jsonText(empty), map[string]string{"JOB-TOKEN": etok}); a.code != 500 {
		t.Errorf("declares, none stored: %d, want 500", a.code)
	}
	wantViolations(t, s)
	if dl := s.Downloads(41); len(dl) != 4 || dl[0].Status != 500 || dl[1].Status != 403 || dl[2].Status != 406 || dl[3].Status != 200 || dl[3].Bytes != int64(len(z)) {
		t.Errorf("downloads %+v", dl)
	}
}

func TestStrictDownload(t *testing.T) {
	s := New(t)
	z := zipOf(t, "a", "x")
	s.SetArtifact(41, "", z)
	a := download(t, s, "41", map[string]string{"JOB-TOKEN": jobToken(41)})
	if a.code != 200 || a.body != string(z) || a.header.Get("Content-Type") != "application/octet-stream" ||
		a.header.Get("Content-Disposition") != "attachment; filename=artifacts.zip" {
		t.Errorf("download: %d %v", a.code, a.header)
	}
	if a := download(t, s, "41", nil); a.code != 403 {
		t.Errorf("no token: %d", a.code)
	}
	if a := download(t, s, "40", map[string]string{"JOB-TOKEN": "x"}); a.code != 404 {
		t.Errorf("unknown: %d", a.code)
	}
	wantViolations(t, s, "without that job's JOB-TOKEN", "unknown job")
	none, ntok := artifactsJob(t, s, Spec{})
	if a := download(t, s, jsonText(none), map[string]string{"JOB-TOKEN": ntok}); a.code != 404 {
		t.Errorf("none stored: %d, want 404", a.code)
	}
	wantViolations(t, s)
}

// HoldUploads keeps an upload waiting, before its body is read, until
// released.
func TestHoldUploads(t *testing.T) {
	for _, f := range Flavors() {
		t.Run(string(f), func(t *testing.T) {
			s := NewFlavor(t, f)
			id, tok := artifactsJob(t, s, Spec{Artifacts: &coordinator.ArtifactsSpec{Paths: []string{"x"}}})
			release := s.HoldUploads()
			var wg sync.WaitGroup
			var a answer
			wg.Add(1)
			go func() {
				defer wg.Done()
				body, ctype := formBody(t, part{"file", "artifacts.zip", string(zipOf(t, "a", "x"))})
				req, _ := http.NewRequest(http.MethodPost, s.URL+"api/v4/jobs/"+jsonText(id)+"/artifacts", strings.NewReader(body))
				req.Header.Set("Content-Type", ctype)
				req.Header.Set("JOB-TOKEN", tok)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("upload: %v", err)
					return
				}
				_ = resp.Body.Close()
				a.code = resp.StatusCode
			}()
			s.Await("the upload to be held", func() bool { return s.UploadsHeld() == 1 })
			if n := len(s.Uploads(id)); n != 0 {
				t.Fatalf("%d uploads answered while held", n)
			}
			release()
			release() // harmless
			wg.Wait()
			if a.code != http.StatusCreated || s.UploadsHeld() != 0 || len(s.Uploads(id)) != 1 {
				t.Fatalf("after release: %d, %d held, %d uploads", a.code, s.UploadsHeld(), len(s.Uploads(id)))
			}
			// Released for good: the next upload is not held.
			if a := upload(t, s, jsonText(id), map[string]string{"JOB-TOKEN": tok}, part{"file", "a.zip", string(zipOf(t, "a", "y"))}); a.code != 201 {
				t.Errorf("after release: %d", a.code)
			}
		})
	}
}

// Enqueue (a coordinator.Job as given) declares artifacts when its payload
// does, as AlloyCI decides it: an object in the artifacts list.
func TestEnqueueDeclaresArtifacts(t *testing.T) {
	s := NewFlavor(t, AlloyCI)
	s.AddRunner("rt")
	with := s.Enqueue("rt", coordinator.Job{Artifacts: []byte(`[{"paths":["x"]}]`)})
	without := s.Enqueue("rt", coordinator.Job{Artifacts: []byte(`[null]`)})
	z := part{"file", "a.zip", string(zipOf(t, "a", "x"))}
	if a := upload(t, s, jsonText(with), map[string]string{"JOB-TOKEN": jobToken(with)}, z); a.code != 201 {
		t.Errorf("declared: %d", a.code)
	}
	if a := upload(t, s, jsonText(without), map[string]string{"JOB-TOKEN": jobToken(without)}, z); a.code != 404 {
		t.Errorf("not declared: %d", a.code)
	}
}
