// Command alloy-runner is the AlloyCI runner: it takes jobs from an AlloyCI
// coordinator, runs them with the shell executor, and serves Prometheus
// metrics and pprof on a loopback-only server.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/logging"
	"github.com/alloyci/hardened-runner/metricsserver"
	"github.com/alloyci/hardened-runner/runnermetrics"
)

const defaultConfig = "/etc/alloy-runner/config.toml"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	app := kingpin.New("alloy-runner", "The AlloyCI runner: runs CI jobs with the shell executor and serves its metrics on loopback only.")
	app.Version(version.Print("alloy-runner"))
	app.HelpFlag.Short('h')
	logCfg := logging.AddFlags(app)

	runCmd := app.Command("run", "Take jobs and serve metrics until stopped.")
	configFile := runCmd.Flag("config", "Path to config.toml.").Short('c').Default(defaultConfig).String()
	var metricsFlagSet bool
	metricsFlag := runCmd.Flag("metrics-server",
		"Metrics server address [host]:<port> or unix:/path; loopback only; overrides metrics_server in config.toml; empty disables.").
		IsSetByUser(&metricsFlagSet).String()

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "alloy-runner: %v; see alloy-runner --help\n", err)
		return 2
	}
	logger, err := logging.New(*logCfg, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "alloy-runner: %v\n", err)
		return 2
	}
	switch cmd {
	case runCmd.FullCommand():
		var override *string
		if metricsFlagSet {
			override = metricsFlag
		}
		return runRunner(logger, *configFile, override)
	}
	return 2
}

// metricsAddress applies the precedence the runner's documentation gives:
// the --metrics-server flag wins over metrics_server in config.toml.
func metricsAddress(c *config.Config, override *string) string {
	if override != nil {
		return *override
	}
	return c.MetricsServer
}

func runRunner(logger log.Logger, configFile string, override *string) int {
	cfg, err := config.Load(configFile)
	if err != nil {
		level.Error(logger).Log("msg", "cannot start", "err", err)
		return 1
	}
	warnUnknown(logger, configFile, cfg)
	level.Info(logger).Log("msg", "starting alloy-runner", "version", version.Info(), "build_context", version.BuildContext(), "config", configFile, "settings", cfg.Summary())

	tracker := builds.NewTracker()
	srv := metricsserver.New(metricsserver.Options{
		Logger:   log.With(logger, "component", "metrics-server"),
		Gatherer: runnermetrics.NewRegistry(tracker),
		Resolver: net.DefaultResolver,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Serve(ctx, metricsAddress(cfg, override)); err != nil {
		level.Error(logger).Log("msg", "cannot start the metrics server", "err", err)
		return 1
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			reload(ctx, logger, configFile, override, srv)
		default:
			level.Info(logger).Log("msg", "stopping", "signal", sig)
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.Shutdown(sctx)
			scancel()
			return 0
		}
	}
	return 0
}

// reload re-reads config.toml and moves the metrics server when its address
// changed. Anything invalid is refused and logged; what runs keeps running.
func reload(ctx context.Context, logger log.Logger, configFile string, override *string, srv *metricsserver.Server) {
	cfg, err := config.Load(configFile)
	if err != nil {
		level.Error(logger).Log("msg", "reload refused: keeping the running configuration", "err", err)
		return
	}
	warnUnknown(logger, configFile, cfg)
	if override != nil && cfg.MetricsServerSet && cfg.MetricsServer != *override {
		level.Info(logger).Log("msg", "metrics_server in config.toml ignored: --metrics-server wins", "flag", *override)
	}
	if err := srv.Serve(ctx, metricsAddress(cfg, override)); err != nil {
		level.Error(logger).Log("msg", "reload refused the new metrics_server: the metrics server keeps its address", "err", err)
		return
	}
	level.Info(logger).Log("msg", "configuration reloaded", "settings", cfg.Summary())
}

func warnUnknown(logger log.Logger, file string, cfg *config.Config) {
	for _, k := range cfg.Unknown {
		level.Warn(logger).Log("msg", "config key not used by this runner, ignored", "file", file, "key", k)
	}
}
