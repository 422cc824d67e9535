package routes

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v2"
)

// maxYAMLErrors bounds the type errors listed for one file: a list of ten
// thousand scalars where routes belong is one mistake, not ten thousand.
const maxYAMLErrors = 20

var (
	// yamlValueRE matches a value yaml.v2 quotes in a type error
	// ("cannot unmarshal !!str `hunter2...`"): a secret in the wrong place.
	yamlValueRE = regexp.MustCompile("`[^`]*`")
	// hexRunRE matches a long run of hex digits: a token hash, whole or
	// truncated, pasted where a name or path belongs.
	hexRunRE = regexp.MustCompile(`[0-9A-Fa-f]{32,}`)
	// unknownFieldRE, typeErrorRE and duplicateKeyRE parse yaml.v2's type
	// errors, so they can be restated in the file's own terms.
	unknownFieldRE   = regexp.MustCompile(`^line (\d+): field (.*) not found in type (\S+)$`)
	typeErrorRE      = regexp.MustCompile(`^line (\d+): cannot unmarshal !!(\w+)(?: .*)? into (.+)$`)
	duplicateKeyRE   = regexp.MustCompile(`^line (\d+): key (.*) already set in map$`)
	duplicateFieldRE = regexp.MustCompile(`^line (\d+): field (.*) already set in type (\S+)$`)
	// settingNameRE matches keys shaped like the file's own setting names.
	settingNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)
	// benignYAMLErrorRE matches syntax errors that quote nothing from the file.
	benignYAMLErrorRE = regexp.MustCompile(`^(line \d+: )?[a-zA-Z0-9 ,.:()-]*$`)
)

// redact is the last line of defence for "messages never contain a token
// hash": every message passes through it, whatever it quotes.
func redact(s string) string {
	return hexRunRE.ReplaceAllString(s, "(hex not shown)")
}

// describeDecodeError restates a yaml.v2 error in terms of the file's keys,
// without the values it quotes.
func describeDecodeError(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if !benignYAMLErrorRE.MatchString(msg) {
			// For instance "invalid map key: map[...]": it quotes the file.
			return []string{"invalid YAML (details not shown: they would quote the file); check the file's syntax against examples/routes.yml"}
		}
		return []string{"invalid YAML: " + msg}
	}
	var out []string
	for i, e := range te.Errors {
		if i == maxYAMLErrors {
			out = append(out, fmt.Sprintf("and %d more errors of this kind, not listed", len(te.Errors)-i))
			break
		}
		out = append(out, yamlValueRE.ReplaceAllString(describeYAMLTypeError(e), "(value not shown)"))
	}
	return out
}

// describeYAMLTypeError rewrites one of yaml.v2's Go-centric messages,
// keeping the line number as yaml.v2 reports it.
func describeYAMLTypeError(e string) string {
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		section, keys := sectionOf(m[3])
		if !settingNameRE.MatchString(m[2]) {
			// Not shaped like a setting: a value pasted one line off (a
			// token, a hash) would otherwise reach the log here.
			return fmt.Sprintf("line %s: unknown key in %s (not shown: it does not look like a setting name); fix or remove it (the keys are %s)", m[1], section, keys)
		}
		return fmt.Sprintf("line %s: unknown key %q in %s; fix its spelling or remove it (the keys are %s)", m[1], m[2], section, keys)
	}
	if m := typeErrorRE.FindStringSubmatch(e); m != nil {
		shown := " (value not shown)"
		if m[2] == "seq" || m[2] == "map" {
			shown = ""
		}
		return fmt.Sprintf("line %s: found %s%s where %s belongs", m[1], kindOf(m[2]), shown, expected(m[3]))
	}
	if m := duplicateFieldRE.FindStringSubmatch(e); m != nil {
		section, _ := sectionOf(m[3])
		if !settingNameRE.MatchString(m[2]) {
			return fmt.Sprintf("line %s: a key (not shown) is given twice in %s; keep one", m[1], section)
		}
		return fmt.Sprintf("line %s: key %q is given twice in %s; keep one", m[1], m[2], section)
	}
	if m := duplicateKeyRE.FindStringSubmatch(e); m != nil {
		key := strings.Trim(m[2], `"`)
		if settingNameRE.MatchString(key) || nameRE.MatchString(key) {
			return fmt.Sprintf("line %s: key %q is given twice; keep one", m[1], key)
		}
		return fmt.Sprintf("line %s: a key (not shown) is given twice; keep one", m[1])
	}
	return e
}

// sectionOf names the part of the file a decoding type stands for, and the
// keys it takes.
func sectionOf(goType string) (section, keys string) {
	switch goType {
	case "routes.routeFields":
		return "a route", "name, path, upstream, timeout, max_response_bytes and allow"
	case "routes.allowFields":
		return "allow:", "users, client_sans and tokens"
	}
	return "the top level", "routes and tokens"
}

// kindOf names a YAML tag for an operator.
func kindOf(tag string) string {
	switch tag {
	case "str":
		return "a string"
	case "int", "float":
		return "a number"
	case "bool":
		return "true or false"
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "null":
		return "an empty value"
	}
	return "a value of another kind"
}

// expected names what a decoding type takes, for an operator.
func expected(goType string) string {
	switch goType {
	case "routes.fileYAML":
		return "the top level (a mapping with routes: and tokens:)"
	case "[]routes.route":
		return "routes: (a list of routes, each starting with - name:)"
	case "routes.routeFields":
		return "a route (a mapping with name, path, upstream and optionally timeout, max_response_bytes, allow)"
	case "routes.allowFields":
		return "allow: (a mapping with users, client_sans and tokens lists)"
	case "map[string]string":
		return "tokens: (a mapping of token names to sha256 values)"
	case "[]string":
		return "a list such as [oncall]"
	case "int64":
		return "a whole number of bytes"
	case "string":
		return "a single value"
	}
	return "something else"
}
