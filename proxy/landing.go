package proxy

import (
	"bytes"
	"html"
	"html/template"
	"net/http"
	"strings"

	"github.com/prometheus/common/version"

	"github.com/alloyci/hardened-runner/access"
)

// link is one line of the landing page.
type link struct {
	Path, Text string
}

// Href is the link's href attribute, the path exactly as the proxy matches
// it. html/template would percent-encode the sub-delims ' ( ) that a route
// path may hold, and the proxy refuses a percent-encoded path (400), so the
// link would be broken. HTML escaping alone is right here: every path is a
// route's, which safepath accepted, or one of the proxy's own, so it starts
// with a single "/" and can name no scheme or other host.
func (l link) Href() template.HTMLAttr {
	return template.HTMLAttr(`href="` + html.EscapeString(l.Path) + `"`)
}

// landingLinks are the pages id may use: the routes granted to it, in the
// routes file's order, then the proxy's own (its metrics for admins only).
func landingLinks(rt *routing, id access.Identity) []link {
	var links []link
	for _, r := range rt.table.Permitted(id) {
		links = append(links, link{Path: r.Path, Text: "route " + r.Name})
	}
	if rt.table.IsAdmin(id) {
		links = append(links, link{Path: selfMetricsPath, Text: "the proxy's own metrics"})
	}
	return append(links,
		link{Path: healthyPath, Text: "health"},
		link{Path: readyPath, Text: "readiness of every route's upstream"},
	)
}

// landing answers / for an authenticated client: what it may use, as HTML
// for a browser and as plain text (one path a line) for curl and scripts.
// Nothing else: no route granted to others, no upstream address.
func (h *Handler) landing(w http.ResponseWriter, r *http.Request, rt *routing, id access.Identity) {
	links := landingLinks(rt, id)
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		var b strings.Builder
		for _, l := range links {
			b.WriteString(l.Path + "\t" + l.Text + "\n")
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(b.String()))
		return
	}
	var b bytes.Buffer
	data := struct {
		Version string
		Who     string
		Links   []link
	}{version.Version, id.Name(), links}
	if err := landingPage.Execute(&b, data); err != nil {
		// The template is fixed and the data plain strings: unreachable, but
		// a broken page must not be half-written.
		http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(b.Bytes())
}

// landingPage follows exporter-toolkit's landing page: a header bar with
// the name, then the links. Inline style only, no script.
var landingPage = template.Must(template.New("landing").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<title>metrics-proxy</title>
<style>
body { font-family: -apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica Neue,Arial,sans-serif; margin: 0; }
header { background-color: #e6522c; color: #fff; font-size: 1rem; padding: 1rem; }
main { padding: 1rem; }
</style>
</head>
<body>
<header><h1>metrics-proxy</h1></header>
<main>
<h2>The one door to this host's metrics</h2>
<div>Version: {{.Version}}</div>
{{if .Who}}<div>Signed in as: {{.Who}}</div>{{end}}
<ul>
{{range .Links}}<li><a {{.Href}}>{{.Path}}</a>: {{.Text}}</li>
{{end}}</ul>
</main>
</body>
</html>
`))
