// Command metrics-proxy is the one door from the network to the runner's
// metrics: TLS and basic auth in the Prometheus exporter-toolkit web-config
// format, in front of alloy-runner's loopback-only metrics server.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"

	"github.com/alloyci/hardened-runner/admission"
	"github.com/alloyci/hardened-runner/auth"
	"github.com/alloyci/hardened-runner/logging"
	"github.com/alloyci/hardened-runner/proxy"
	"github.com/alloyci/hardened-runner/webconfig"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	app := kingpin.New("metrics-proxy", "TLS and basic-auth proxy in front of alloy-runner's loopback-only metrics server.")
	app.Version(version.Print("metrics-proxy"))
	app.HelpFlag.Short('h')
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	logCfg := logging.AddFlags(app)
	webFlags := kingpinflag.AddFlags(app, ":9253")

	// Flags of the server, at the top level as exporters have them.
	var s serveConfig
	s.web = webFlags
	app.Flag("web.routes.file", "Routes file (YAML): public paths mapped to local exporters (the runner, node_exporter, pprof), who may use each, and bearer tokens; reloaded with the web config. Without it, --upstream.url and --web.allowed-path make one route.").
		PlaceHolder("routes.yml").StringVar(&s.routesFile)
	app.Flag("web.health-without-auth", "Answer /-/healthy and /-/ready without authentication, for load balancers; they then say nothing but their status.").
		BoolVar(&s.healthWithoutAuth)
	app.Flag("upstream.url", "URL of alloy-runner's metrics server: http://host:port or unix:/path (without --web.routes.file).").
		Default(proxy.DefaultUpstream).StringVar(&s.upstream)
	app.Flag("upstream.timeout", "Longest wait for an upstream, for routes without a timeout of their own; a scrape's X-Prometheus-Scrape-Timeout-Seconds shortens it.").
		Default(proxy.DefaultTimeout.String()).DurationVar(&s.limits.UpstreamTimeout)
	app.Flag("upstream.max-concurrent", "Most requests at once to each upstream server (alloy-runner serves 8 and answers 503 beyond); the others wait their turn, fairly across clients and identities.").
		Default(fmt.Sprint(proxy.DefaultUpstreamSlots)).IntVar(&s.upstreamSlots)
	app.Flag("upstream.max-queue", "Most requests waiting for the upstream; beyond it, or past a request's scrape timeout, the proxy answers 503 with Retry-After.").
		Default(fmt.Sprint(proxy.DefaultUpstreamQueue)).IntVar(&s.upstreamQueue)
	app.Flag("upstream.max-response-bytes", "Largest upstream response passed on, for routes without a limit of their own; a larger one fails the scrape.").
		Default(fmt.Sprint(proxy.DefaultMaxResponseBytes)).Int64Var(&s.maxResponseBytes)
	app.Flag("web.allowed-path", "Upstream path clients may read (repeatable; without --web.routes.file). Exactly /metrics by default; a path ending in / allows its subtree, e.g. /debug/pprof/.").
		Default("/metrics").StringsVar(&s.allowedPaths)
	app.Flag("web.read-header-timeout", "Longest time a client may take to send its request headers; also, for HTTP/2 too, the longest a new connection may go without a request that passes authentication.").
		Default("10s").DurationVar(&s.limits.ReadHeaderTimeout)
	app.Flag("web.tls-handshake-timeout", "Longest time a client may take to finish the TLS handshake.").
		Default("10s").DurationVar(&s.limits.HandshakeTimeout)
	app.Flag("web.idle-timeout", "How long an idle keep-alive connection stays open.").
		Default("2m").DurationVar(&s.limits.IdleTimeout)
	app.Flag("web.max-header-bytes", "Largest request header block accepted (larger ones get 431).").
		Default("8192").IntVar(&s.limits.MaxHeaderBytes)
	app.Flag("web.max-connections", "Most connections open at once, TLS handshakes included; more are closed at once. The last eighth is kept for clients that authenticated in the last hour.").
		Default(fmt.Sprint(admission.DefaultMaxConns)).IntVar(&s.limits.MaxConnections)
	app.Flag("web.max-connections-per-source", "Most connections open at once from one client address (IPv6: one /64; a /48 may have four times as many).").
		Default(fmt.Sprint(admission.DefaultMaxPerSource)).IntVar(&s.limits.MaxConnectionsPerSource)
	app.Flag("web.handshake-rate-per-source", "New connections a second one client address may open (bursts of twice as many); more are closed before any TLS work.").
		Default(fmt.Sprint(admission.DefaultHandshakeRate)).Float64Var(&s.limits.HandshakeRatePerSource)
	app.Flag("web.throttle-delay", "How long a client in failed-auth back-off waits for its 429, so a flood that ignores Retry-After costs little; 0 answers at once.").
		Default(auth.DefaultThrottleDelay.String()).DurationVar(&s.throttleDelay)
	app.Flag("web.bcrypt-workers", "Most bcrypt comparisons at once; a request needing another is answered 429 at once. 0 means the number of CPUs.").
		Default("0").IntVar(&s.bcryptWorkers)

	serveCmd := app.Command("serve", "Serve the proxy (the default command).").Default()
	hashCmd := app.Command("hash-password", "Read a password on standard input and print its bcrypt hash for basic_auth_users.")
	cost := hashCmd.Flag("cost", "bcrypt cost (10 to 16; each step doubles the work of every check).").Default("10").Int()
	tokenCmd := app.Command("hash-token", "Make a random bearer token and print its SHA-256 for the routes file's tokens:.")
	tokenFile := tokenCmd.Flag("token-file", "Write the token to this new file (mode 0600) instead of printing it, e.g. for Prometheus's credentials_file.").String()
	checkCmd := app.Command("check-config", "Check --web.config.file and --web.routes.file as the server would, and list every reason they would be refused.")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-proxy: %v; see metrics-proxy --help\n", err)
		return 2
	}
	logger, err := logging.New(*logCfg, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "metrics-proxy: %v\n", err)
		return 2
	}
	switch cmd {
	case hashCmd.FullCommand():
		return hashPassword(stdin, stdout, stderr, *cost)
	case tokenCmd.FullCommand():
		return hashToken(stdout, stderr, *tokenFile)
	case checkCmd.FullCommand():
		return checkConfig(stdout, stderr, webconfig.Files{Web: *webFlags.WebConfigFile, Routes: s.routesFile}, *webFlags.WebListenAddresses, *webFlags.WebSystemdSocket)
	case serveCmd.FullCommand():
		return serve(logger, s)
	}
	return 2
}
