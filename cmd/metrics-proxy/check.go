package main

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/alloyci/hardened-runner/webconfig"
)

// checkConfig lists every reason the server would refuse the web config, the
// public-door rule for the given listen addresses included.
func checkConfig(stdout, stderr io.Writer, file string, addrs []string, systemdSocket bool) int {
	if file == "" {
		fmt.Fprintln(stderr, "metrics-proxy check-config: give the file to check with --web.config.file")
		return 2
	}
	problems := webconfig.Check(file)
	if len(problems) == 0 && !systemdSocket {
		var public []string
		for _, a := range addrs {
			if !loopbackAddress(a) {
				public = append(public, a)
			}
		}
		if cfg, err := webconfig.Load(file); err != nil {
			problems = append(problems, err)
		} else if err := publicDoorPolicy(public, file)(cfg); err != nil {
			problems = append(problems, err)
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "%s: %d problem(s):\n", file, len(problems))
		for _, p := range problems {
			fmt.Fprintf(stderr, "  - %s\n", strings.TrimPrefix(p.Error(), file+": "))
		}
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK\n", file)
	return 0
}

// loopbackAddress reports whether a --web.listen-address is loopback only, from
// its IP literal or "localhost"; any other name counts as public.
func loopbackAddress(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
