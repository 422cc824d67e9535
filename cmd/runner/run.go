package main

import (
	"context"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/common/version"

	"github.com/alloyci/hardened-runner/builds"
	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/jobs"
	"github.com/alloyci/hardened-runner/metricsserver"
	"github.com/alloyci/hardened-runner/runnermetrics"
	"github.com/alloyci/hardened-runner/sdnotify"
)

// metricsAddress applies the precedence the runner's documentation gives:
// the --metrics-server flag wins over metrics_server in config.toml.
func metricsAddress(c *config.Config, override *string) string {
	if override != nil {
		return *override
	}
	return c.MetricsServer
}

func runRunner(logger log.Logger, jobMetrics *runnermetrics.Jobs, configFile string, override *string) int {
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
		Gatherer: runnermetrics.NewRegistry(tracker, jobMetrics),
		Resolver: net.DefaultResolver,
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Serve(ctx, metricsAddress(cfg, override)); err != nil {
		level.Error(logger).Log("msg", "cannot start the metrics server", "err", err)
		return 1
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		scancel()
	}()

	jobMetrics.Runners(runnerNames(cfg.Runners))
	loop, err := jobs.New(jobs.Options{
		Client:        coordinator.New(coordinator.Options{}),
		Tracker:       tracker,
		Finished:      jobMetrics.Finished,
		Logger:        log.With(logger, "component", "jobs"),
		Concurrent:    cfg.Concurrent,
		CheckInterval: time.Duration(cfg.CheckInterval) * time.Second,
	}, cfg.Runners)
	if err != nil {
		level.Error(logger).Log("msg", "cannot start", "err", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		// A cancelled ctx is never used to stop the loop: the signals below
		// choose between finishing jobs and aborting them.
		if err := loop.Run(context.Background()); err != nil {
			level.Error(logger).Log("msg", "job loop failed", "err", err)
		}
		close(done)
	}()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)
	// The config loaded, the metrics server listening, the job loop running
	// and the signals caught: systemd may count the runner as started.
	notifier := sdnotify.FromEnvironment(log.With(logger, "component", "sdnotify"))
	notifier.Ready()
	stopping := false
	for {
		select {
		case <-done:
			if !stopping {
				notifier.Stopping()
			}
			level.Info(logger).Log("msg", "stopped")
			return 0
		case sig := <-sigs:
			switch {
			case sig == syscall.SIGHUP && stopping:
				// Not a reload for systemd: the unit is already stopping.
				reload(ctx, logger, configFile, override, srv, loop, jobMetrics)
			case sig == syscall.SIGHUP:
				notifier.Reloading()
				reload(ctx, logger, configFile, override, srv, loop, jobMetrics)
				notifier.Ready()
			case stopping:
				// A second stop signal while jobs are still being wound up
				// (or their results retried) means now.
				level.Warn(logger).Log("msg", "second stop signal: exiting without waiting for running jobs", "signal", sig)
				return 1
			case sig == syscall.SIGQUIT:
				level.Info(logger).Log("msg", "SIGQUIT: taking no more jobs; stopping when the running ones finish")
				notifier.Stopping()
				loop.StopAccepting()
				stopping = true
			default:
				level.Info(logger).Log("msg", "stopping: running jobs are stopped and reported as failed", "signal", sig)
				notifier.Stopping()
				loop.Abort()
				stopping = true
			}
		}
	}
}

// reload re-reads config.toml, moves the metrics server when its address
// changed, and hands the runners to the job loop. Anything invalid is refused
// and logged; what runs keeps running.
func reload(ctx context.Context, logger log.Logger, configFile string, override *string, srv *metricsserver.Server, loop *jobs.Loop, jm *runnermetrics.Jobs) {
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
	}
	jm.Runners(runnerNames(cfg.Runners))
	if err := loop.SetRunners(cfg.Runners); err != nil {
		level.Error(logger).Log("msg", "reload refused the new runners: keeping the running ones", "err", err)
		return
	}
	level.Info(logger).Log("msg", "configuration reloaded", "settings", cfg.Summary())
}

func warnUnknown(logger log.Logger, file string, cfg *config.Config) {
	for _, k := range cfg.Unknown {
		level.Warn(logger).Log("msg", "config key not used by this runner, ignored", "file", file, "key", k)
	}
}

// runnerNames are the runners' names, the runner label of the job metrics.
func runnerNames(rs []config.Runner) []string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = r.Name
	}
	return names
}
