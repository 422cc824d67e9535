package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alloyci/hardened-runner/config"
	"github.com/alloyci/hardened-runner/coordinator"
)

// registerFlags hold the flags of alloy-runner register.
type registerFlags struct {
	url, token, description, tags, buildsDir string
	runUntagged, locked                      bool
	limit                                    int
}

func callContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Minute)
}

// register asks the coordinator for a runner token and adds the runner to the
// config file. The registration token is never printed.
func register(stdout, stderr io.Writer, file string, f registerFlags) int {
	if f.description == "" {
		f.description = coordinator.DefaultDescription()
	}
	r := config.Runner{Name: f.description, URL: f.url, Executor: config.DefaultExecutor,
		Shell: config.DefaultShell, BuildsDir: f.buildsDir, Limit: f.limit, Token: "pending"}
	// Check the entry before the coordinator creates a runner we could not keep.
	if err := config.ValidateRunners([]config.Runner{r}); err != nil {
		fmt.Fprintf(stderr, "alloy-runner register: %v\n", err)
		return 1
	}
	ctx, cancel := callContext()
	defer cancel()
	res, err := coordinator.New(coordinator.Options{}).Register(ctx, f.url, coordinator.Registration{
		Token: f.token, Description: f.description, TagList: f.tags, RunUntagged: f.runUntagged, Locked: f.locked,
	})
	if err != nil {
		fmt.Fprintf(stderr, "alloy-runner register: %s\n", registerError(err))
		return 1
	}
	r.Token = res.Token
	if err := config.AddRunner(file, r); err != nil {
		fmt.Fprintf(stderr, "alloy-runner register: the coordinator registered %s, but it could not be saved: %v; remove it on the coordinator\n", res, err)
		return 1
	}
	fmt.Fprintf(stdout, "registered runner %q (%s) in %s\n", r.Name, res, file)
	return 0
}

// registerError says what the coordinator refused and what to check, in the
// terms of the register command's flags. err never holds the token.
func registerError(err error) string {
	var se *coordinator.StatusError
	switch {
	case errors.Is(err, coordinator.ErrForbidden):
		return "the coordinator refused the registration token (403): check --registration-token, or give a --description"
	case errors.As(err, &se) && se.Code >= 500:
		return fmt.Sprintf("the coordinator failed on the registration (%d); AlloyCI answers 500 when info is missing: "+
			"check that --url points at AlloyCI (not a proxy or another service) and see the coordinator's log (%v)", se.Code, se)
	}
	return err.Error()
}

// verify checks every runner's token; it exits 1 when any is refused.
func verify(stdout, stderr io.Writer, file string) int {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintf(stderr, "alloy-runner verify: %v\n", err)
		return 1
	}
	client := coordinator.New(coordinator.Options{})
	code := 0
	for _, r := range cfg.Runners {
		ctx, cancel := callContext()
		err := client.Verify(ctx, r.URL, r.Token)
		cancel()
		switch {
		case err == nil:
			fmt.Fprintf(stdout, "runner %q: valid\n", r.Name)
		case errors.Is(err, coordinator.ErrForbidden):
			fmt.Fprintf(stdout, "runner %q: the coordinator does not know its token; remove it with alloy-runner unregister --name %q and register again\n", r.Name, r.Name)
			code = 1
		default:
			fmt.Fprintf(stdout, "runner %q: could not verify: %v\n", r.Name, err)
			code = 1
		}
	}
	return code
}

// unregister removes the runner from its coordinator, then from the file. A
// token the coordinator no longer knows is removed from the file all the same.
func unregister(stdout, stderr io.Writer, file, name string) int {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintf(stderr, "alloy-runner unregister: %v\n", err)
		return 1
	}
	var found *config.Runner
	for i := range cfg.Runners {
		if cfg.Runners[i].Name == name {
			found = &cfg.Runners[i]
		}
	}
	if found == nil {
		fmt.Fprintf(stderr, "alloy-runner unregister: no runner named %q in %s: see alloy-runner list\n", name, file)
		return 1
	}
	ctx, cancel := callContext()
	defer cancel()
	err = coordinator.New(coordinator.Options{}).Unregister(ctx, found.URL, found.Token)
	switch {
	case err == nil:
	case errors.Is(err, coordinator.ErrForbidden):
		fmt.Fprintf(stdout, "runner %q was already unknown to the coordinator\n", name)
	default:
		fmt.Fprintf(stderr, "alloy-runner unregister: %v; %s left unchanged\n", err, file)
		return 1
	}
	if err := config.RemoveRunner(file, name); err != nil {
		fmt.Fprintf(stderr, "alloy-runner unregister: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "unregistered runner %q\n", name)
	return 0
}

// list prints the runners without their tokens.
func list(stdout, stderr io.Writer, file string) int {
	cfg, err := config.Load(file)
	if err != nil {
		fmt.Fprintf(stderr, "alloy-runner list: %v\n", err)
		return 1
	}
	for _, r := range cfg.Runners {
		fmt.Fprintf(stdout, "%-20s url=%s executor=%s builds_dir=%s limit=%d\n", r.Name, r.SafeURL(), r.Executor, r.BuildsDir, r.Limit)
	}
	return 0
}
