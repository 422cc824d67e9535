package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/alloyci/hardened-runner/door"
	"github.com/alloyci/hardened-runner/webconfig"
)

// checkConfig lists every reason the server would refuse the web config and
// the routes file, the public-door rule for the given listen addresses
// included.
func checkConfig(stdout, stderr io.Writer, files webconfig.Files, addrs []string, systemdSocket bool) int {
	if files.Web == "" && files.Routes == "" {
		fmt.Fprintln(stderr, "metrics-proxy check-config: give the files to check with --web.config.file and/or --web.routes.file")
		return 2
	}
	file := files.String()
	problems := webconfig.CheckFiles(files)
	var warnings []string
	if len(problems) == 0 {
		public := door.PublicAddresses(context.Background(), addrs, net.DefaultResolver)
		if systemdSocket {
			public = nil // the sockets are systemd's; the server checks them when it starts
		}
		if cfg, err := webconfig.LoadFiles(files); err != nil {
			problems = append(problems, err)
		} else if err := door.RequireSafeDoor(public, cfg); err != nil {
			problems = append(problems, err)
		} else {
			warnings = cfg.Warnings
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", file, len(problems))
		for _, p := range problems {
			msg := p.Error()
			if files.Routes == "" {
				msg = strings.TrimPrefix(msg, file+": ")
			}
			fmt.Fprintf(stderr, "  - %s\n", msg)
		}
		return 1
	}
	// Warnings do not stop the server, so they do not fail the check, but
	// an operator running it should read them.
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	fmt.Fprintf(stdout, "%s: OK\n", file)
	return 0
}
