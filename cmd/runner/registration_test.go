package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// coordinator127 serves h on 127.0.0.1.
func coordinator127(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h) // httptest listens on loopback only
	t.Cleanup(srv.Close)
	return srv.URL + "/"
}

func TestRegisterMessages(t *testing.T) {
	const token = "reg-token-secret"
	for _, tc := range []struct {
		name string
		code int
		want string
	}{
		{"refused", http.StatusForbidden,
			"alloy-runner register: the coordinator refused the registration token (403): check --registration-token, or give a --description\n"},
		{"failed", http.StatusInternalServerError,
			"alloy-runner register: the coordinator failed on the registration (500); AlloyCI answers 500 when info is missing: check that --url points at AlloyCI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := coordinator127(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tc.code) })
			cfg := filepath.Join(t.TempDir(), "config.toml")
			var stdout, stderr bytes.Buffer
			code := register(&stdout, &stderr, cfg, registerFlags{url: url, token: token, description: "d", buildsDir: "builds"})
			if code != 1 || !strings.HasPrefix(stderr.String(), tc.want) || strings.Contains(stderr.String()+stdout.String(), token) {
				t.Fatalf("exit %d, stderr:\n%s\nwant it to start with:\n%s", code, stderr.String(), tc.want)
			}
			if _, err := os.Stat(cfg); err == nil {
				t.Error("a refused registration wrote the config")
			}
		})
	}
}

// Against AlloyCI, which needs info and a description, register succeeds
// with the host name as default description.
func TestRegisterWithAlloyCIDefaults(t *testing.T) {
	var body map[string]any
	url := coordinator127(t, func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewDecoder(r.Body).Decode(&body)
		info, _ := body["info"].(map[string]any)
		if info == nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		if info["name"] != "alloy-runner" || body["description"] == "" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":3,"token":"runner-token-new"}`))
	})
	cfg := filepath.Join(t.TempDir(), "config.toml")
	var stdout, stderr bytes.Buffer
	if code := register(&stdout, &stderr, cfg, registerFlags{url: url, token: "t", buildsDir: "builds"}); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	host, _ := os.Hostname()
	if body["description"] != host || !strings.Contains(stdout.String(), `registered runner "`+host+`" (runner 3)`) {
		t.Fatalf("description %v, stdout %q", body["description"], stdout.String())
	}
}
