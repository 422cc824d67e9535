// Command alloy-runner is the AlloyCI runner: it takes jobs from an AlloyCI
// coordinator, runs them with the shell executor, and serves Prometheus
// metrics and pprof on a loopback-only server.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"

	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
	"github.com/alloyci/hardened-runner/logging"
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
	configFile := app.Flag("config", "Path to config.toml.").Short('c').Default(defaultConfig).String()

	runCmd := app.Command("run", "Take jobs and serve metrics until stopped (SIGQUIT: finish running jobs, then stop; SIGTERM/SIGINT: stop now; SIGHUP: reload config.toml).")
	var metricsFlagSet bool
	metricsFlag := runCmd.Flag("metrics-server",
		"Metrics server address [host]:<port> or unix:/path; loopback only; overrides metrics_server in config.toml; empty disables.").
		IsSetByUser(&metricsFlagSet).String()

	regCmd := app.Command("register", "Register this runner with a coordinator and add it to config.toml.")
	var reg registerFlags
	regCmd.Flag("url", "The coordinator's URL, e.g. https://alloy.example.com/.").Required().StringVar(&reg.url)
	regCmd.Flag("registration-token", "The registration token from the coordinator (or $REGISTRATION_TOKEN, which keeps it out of the process list).").
		Envar("REGISTRATION_TOKEN").Required().StringVar(&reg.token)
	regCmd.Flag("description", "The runner's name, in config.toml and on the coordinator.").Default(coordinator.DefaultDescription()).StringVar(&reg.description)
	regCmd.Flag("tag-list", "Comma-separated tags, e.g. linux,bash.").StringVar(&reg.tags)
	regCmd.Flag("run-untagged", "Also take jobs without tags.").BoolVar(&reg.runUntagged)
	regCmd.Flag("locked", "Lock the runner to the project it was registered for.").BoolVar(&reg.locked)
	regCmd.Flag("builds-dir", "Where projects are checked out.").Default(config.DefaultBuildsDir).StringVar(&reg.buildsDir)
	regCmd.Flag("limit", "Most jobs of this runner at once (0: only concurrent limits).").Default("0").IntVar(&reg.limit)

	verifyCmd := app.Command("verify", "Check every runner's token with its coordinator.")
	unregCmd := app.Command("unregister", "Remove a runner from its coordinator and from config.toml.")
	unregName := unregCmd.Flag("name", "The runner's name, as alloy-runner list shows it.").Required().String()
	listCmd := app.Command("list", "List the runners in config.toml (tokens are not shown).")

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "alloy-runner: %v; see alloy-runner --help\n", err)
		return 2
	}
	// The job metrics count the log's warn and error lines, from the first.
	jobMetrics := runnermetrics.NewJobs()
	logger, err := logging.NewObserved(*logCfg, os.Stderr, jobMetrics.CountErrors)
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
		return runRunner(logger, jobMetrics, *configFile, override)
	case regCmd.FullCommand():
		return register(os.Stdout, os.Stderr, *configFile, reg)
	case verifyCmd.FullCommand():
		return verify(os.Stdout, os.Stderr, *configFile)
	case unregCmd.FullCommand():
		return unregister(os.Stdout, os.Stderr, *configFile, *unregName)
	case listCmd.FullCommand():
		return list(os.Stdout, os.Stderr, *configFile)
	}
	return 2
}
