package shell

import (
	"testing"
)

// vars is a job's variables as ParseGitVariables reads them.
func vars(kv map[string]string) func(string) (string, bool) {
	return func(key string) (string, bool) {
		v, ok := kv[key]
		return v, ok
	}
}

func TestParseGitVariablesDefaults(t *testing.T) {
	want := GitOptions{Strategy: GitFetch, Submodules: SubmodulesNone, Attempts: 1}
	for _, kv := range []map[string]string{
		nil,
		// What an empty or null YAML value renders to.
		{"GIT_STRATEGY": "", "GIT_CHECKOUT": "", "GIT_SUBMODULE_STRATEGY": "", "GIT_DEPTH": "", "GET_SOURCES_ATTEMPTS": ""},
		{"GIT_DEPTH": "0", "GIT_CHECKOUT": "true", "GET_SOURCES_ATTEMPTS": "1"},
	} {
		got, err := ParseGitVariables(vars(kv))
		if err != nil || got != want {
			t.Errorf("%v: %+v, %v; want %+v", kv, got, err, want)
		}
	}
}

func TestParseGitVariablesValues(t *testing.T) {
	for _, tc := range []struct {
		kv   map[string]string
		want GitOptions
	}{
		{map[string]string{"GIT_STRATEGY": "clone"}, GitOptions{Strategy: GitClone, Submodules: SubmodulesNone, Attempts: 1}},
		{map[string]string{"GIT_STRATEGY": "none"}, GitOptions{Strategy: GitNone, Submodules: SubmodulesNone, Attempts: 1}},
		{map[string]string{"GIT_STRATEGY": "fetch", "GIT_CHECKOUT": "false"}, GitOptions{Strategy: GitFetch, SkipCheckout: true, Submodules: SubmodulesNone, Attempts: 1}},
		{map[string]string{"GIT_CHECKOUT": "0"}, GitOptions{Strategy: GitFetch, SkipCheckout: true, Submodules: SubmodulesNone, Attempts: 1}},
		{map[string]string{"GIT_SUBMODULE_STRATEGY": "normal"}, GitOptions{Strategy: GitFetch, Submodules: SubmodulesNormal, Attempts: 1}},
		{map[string]string{"GIT_SUBMODULE_STRATEGY": "recursive", "GIT_DEPTH": "3", "GET_SOURCES_ATTEMPTS": "10"},
			GitOptions{Strategy: GitFetch, Submodules: SubmodulesRecursive, Depth: 3, Attempts: 10}},
		{map[string]string{"GIT_DEPTH": "050", "GET_SOURCES_ATTEMPTS": "3"}, GitOptions{Strategy: GitFetch, Submodules: SubmodulesNone, Depth: 50, Attempts: 3}},
		{map[string]string{"GIT_DEPTH": "2147483647"}, GitOptions{Strategy: GitFetch, Submodules: SubmodulesNone, Depth: 2147483647, Attempts: 1}},
	} {
		got, err := ParseGitVariables(vars(tc.kv))
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.kv, got, err, tc.want)
		}
	}
}

func TestParseGitVariablesRefusesInvalidValues(t *testing.T) {
	for _, tc := range []struct {
		key, value, want string
	}{
		{"GIT_STRATEGY", "clonee", `GIT_STRATEGY is "clonee": set it to clone, fetch or none, or leave it empty for fetch`},
		{"GIT_STRATEGY", "Clone", `GIT_STRATEGY is "Clone": set it to clone, fetch or none, or leave it empty for fetch`},
		{"GIT_STRATEGY", "true", `GIT_STRATEGY is "true": set it to clone, fetch or none, or leave it empty for fetch`},
		{"GIT_CHECKOUT", "no", `GIT_CHECKOUT is "no": set it to true or false, or leave it empty for true`},
		{"GIT_CHECKOUT", "3", `GIT_CHECKOUT is "3": set it to true or false, or leave it empty for true`},
		{"GIT_SUBMODULE_STRATEGY", "deep", `GIT_SUBMODULE_STRATEGY is "deep": set it to none, normal or recursive, or leave it empty for none`},
		{"GIT_DEPTH", "abc", `GIT_DEPTH is "abc": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", "-1", `GIT_DEPTH is "-1": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", "+3", `GIT_DEPTH is "+3": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", " 3", `GIT_DEPTH is " 3": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", "true", `GIT_DEPTH is "true": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", "1.5", `GIT_DEPTH is "1.5": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GIT_DEPTH", "2147483648", `GIT_DEPTH is "2147483648": set it to the number of commits to fetch, or to 0 or empty for the whole history`},
		{"GET_SOURCES_ATTEMPTS", "0", `GET_SOURCES_ATTEMPTS is "0": set it to a whole number from 1 to 10, or leave it empty for 1`},
		{"GET_SOURCES_ATTEMPTS", "11", `GET_SOURCES_ATTEMPTS is "11": set it to a whole number from 1 to 10, or leave it empty for 1`},
		{"GET_SOURCES_ATTEMPTS", "-1", `GET_SOURCES_ATTEMPTS is "-1": set it to a whole number from 1 to 10, or leave it empty for 1`},
		{"GET_SOURCES_ATTEMPTS", "three", `GET_SOURCES_ATTEMPTS is "three": set it to a whole number from 1 to 10, or leave it empty for 1`},
	} {
		got, err := ParseGitVariables(vars(map[string]string{tc.key: tc.value}))
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s=%q: %+v, %v; want the error %q", tc.key, tc.value, got, err, tc.want)
		}
		if got != (GitOptions{}) {
			t.Errorf("%s=%q: options %+v alongside the error", tc.key, tc.value, got)
		}
	}
}

func TestParseGitVariablesReportsEveryInvalidVariable(t *testing.T) {
	_, err := ParseGitVariables(vars(map[string]string{
		"GIT_STRATEGY": "clone", "GIT_DEPTH": "abc", "GET_SOURCES_ATTEMPTS": "0",
	}))
	want := `GIT_DEPTH is "abc": set it to the number of commits to fetch, or to 0 or empty for the whole history` + "\n" +
		`GET_SOURCES_ATTEMPTS is "0": set it to a whole number from 1 to 10, or leave it empty for 1`
	if err == nil || err.Error() != want {
		t.Fatalf("error %v; want %q", err, want)
	}
}
