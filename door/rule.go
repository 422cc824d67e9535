package door

import (
	"fmt"
	"strings"

	"github.com/alloyci/hardened-runner/webconfig"
)

// RequireSafeDoor is the central rule of metrics-proxy: a listener reachable
// from the network (public, the addresses that are not loopback or a unix
// socket) needs TLS and authentication. It refuses a config that would
// leave one without either, naming what is missing and how to fix it. It is
// asked at start (with a nil cfg when no --web.config.file was given), at
// every reload, and by check-config, so no edit can strip protection from a
// running door. On loopback only, anything is allowed: the caller warns.
func RequireSafeDoor(public []string, cfg *webconfig.Config) error {
	if len(public) == 0 {
		return nil
	}
	if cfg == nil || cfg.Path == "" {
		return publicDoorError(public, "no --web.config.file was given")
	}
	var missing []string
	if !cfg.TLSEnabled() {
		missing = append(missing, "TLS (tls_server_config with cert_file and key_file)")
	}
	if !cfg.Access().Authenticates() {
		missing = append(missing, "authentication ("+cfg.Access().Missing()+")")
	}
	if len(missing) == 0 {
		return nil
	}
	return publicDoorError(public, cfg.Path+" has no "+strings.Join(missing, " and no "))
}

func publicDoorError(public []string, why string) error {
	return fmt.Errorf("listening on %s, which is reachable from the network, needs TLS and authentication, but %s; "+
		"add them to the web config (see web-config.yml.example), or listen on loopback only (--web.listen-address=127.0.0.1:9253)",
		strings.Join(public, ", "), why)
}
