package webconfig

import (
	"errors"
	"sort"
	"strconv"
	"strings"

	config_util "github.com/prometheus/common/config"

	"github.com/alloyci/hardened-runner/auth"
)

// buildUsers validates the password hashes through package auth, which owns
// the rules (well-formed bcrypt, sane cost, not the example hash), and reports
// cheap costs. When one user's hash is refused, the others are still checked
// for cost one by one, so that Check lists everything in one go.
func (l *loader) buildUsers(m map[string]config_util.Secret) *auth.Users {
	plain := make(map[string]string, len(m))
	for name, h := range m {
		plain[name] = string(h)
	}
	users, err := auth.ParseUsers(plain)
	if err == nil {
		l.warnWeak(users)
		l.noteMixedCosts(users)
		return users
	}
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) {
		for _, e := range multi.Unwrap() {
			l.problem("%v", e)
		}
	} else {
		l.problem("%v", err)
	}
	names := make([]string, 0, len(plain))
	for name := range plain {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if one, err := auth.ParseUsers(map[string]string{name: plain[name]}); err == nil {
			l.warnWeak(one)
		}
	}
	return nil
}

// warnWeak reports users whose bcrypt cost is below auth.RecommendedMinCost:
// a stolen config file would make offline guessing of their passwords cheap.
func (l *loader) warnWeak(users *auth.Users) {
	for _, name := range users.Weak(auth.RecommendedMinCost) {
		cost, _ := users.Cost(name)
		l.warn("user %q: bcrypt cost %d is below %d; regenerate with metrics-proxy hash-password", name, cost, auth.RecommendedMinCost)
	}
}

// noteMixedCosts explains what mixed bcrypt costs cost: the verifier pads every
// check to the highest cost (so that timing reveals neither names nor cheap
// hashes), so the cheaper hashes save nothing and only weaken those users
// against offline guessing.
func (l *loader) noteMixedCosts(users *auth.Users) {
	costs := users.Costs()
	if len(costs) < 2 {
		return
	}
	strs := make([]string, len(costs))
	for i, c := range costs {
		strs[i] = strconv.Itoa(c)
	}
	highest := strs[len(strs)-1]
	list := strings.Join(strs[:len(strs)-1], ", ") + " and " + highest
	l.note("basic_auth_users mixes bcrypt costs (%s): every check pays cost %s so timing does not reveal names; rehash the others at %s to spend less", list, highest, highest)
}
