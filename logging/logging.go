// Package logging builds the go-kit loggers both binaries use, configured by the
// exporter-convention flags --log.level and --log.format.
package logging

import (
	"fmt"
	"io"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
)

// Config holds the values of the logging flags.
type Config struct {
	Level  string
	Format string
}

// AddFlags registers --log.level and --log.format on app and returns where their
// values land once the command line is parsed.
func AddFlags(app *kingpin.Application) *Config {
	c := &Config{}
	app.Flag("log.level", "Only log messages with the given severity or above. One of: [debug, info, warn, error]").
		Default("info").EnumVar(&c.Level, "debug", "info", "warn", "error")
	app.Flag("log.format", "Output format of log messages. One of: [logfmt, json]").
		Default("logfmt").EnumVar(&c.Format, "logfmt", "json")
	return c
}

// New returns a logger writing to w in the configured format, filtered at the
// configured level, with a UTC timestamp and the caller on every line.
func New(c Config, w io.Writer) (log.Logger, error) { return NewObserved(c, w, nil) }

// NewObserved is New with observe (when not nil) wrapped around the logger
// under the timestamp and caller: it sees every line, with its level, before
// the level filter, and adds no key or stack frame to what is written (the
// runner counts its warn and error lines this way).
func NewObserved(c Config, w io.Writer, observe func(log.Logger) log.Logger) (log.Logger, error) {
	var l log.Logger
	switch c.Format {
	case "", "logfmt":
		l = log.NewLogfmtLogger(log.NewSyncWriter(w))
	case "json":
		l = log.NewJSONLogger(log.NewSyncWriter(w))
	default:
		return nil, fmt.Errorf("unknown log format %q: use logfmt or json", c.Format)
	}
	var opt level.Option
	switch c.Level {
	case "debug":
		opt = level.AllowDebug()
	case "", "info":
		opt = level.AllowInfo()
	case "warn":
		opt = level.AllowWarn()
	case "error":
		opt = level.AllowError()
	default:
		return nil, fmt.Errorf("unknown log level %q: use debug, info, warn or error", c.Level)
	}
	l = level.NewFilter(l, opt)
	if observe != nil {
		l = observe(l)
	}
	return log.With(l, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller), nil
}
