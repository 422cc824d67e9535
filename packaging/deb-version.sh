#!/bin/sh
# deb-version.sh VERSION COMMITS: the Debian version of the packages, from the
# Makefile's VERSION (`git describe --tags --always --dirty`) and the number
# of commits up to HEAD (`git rev-list --count HEAD`).
#
#   v1.2.3                 -> 1.2.3
#   v1.2.3-4-gabc1234      -> 1.2.3+git4.gabc1234     (after 1.2.3, before 1.2.4)
#   v1.3.0-rc1             -> 1.3.0~rc1               (before 1.3.0)
#   abc1234 (no tag), 57   -> 0.0.0~git57.gabc1234    (before any release; the
#                                                      count keeps upgrades in order)
#   any of them -dirty     -> ...+dirty               (a build from an edited tree)
#   0.0.0-dev (no git)     -> 0.0.0~dev
#
# Debian versions must start with a digit and may not hold "-" (that would
# start a Debian revision): these packages are native, built from this tree.
set -eu
v=${1:?usage: deb-version.sh VERSION COMMITS}
n=${2:-0}

dirty=
case $v in *-dirty) dirty=+dirty; v=${v%-dirty} ;; esac

if [ "$v" = 0.0.0-dev ]; then
	out=0.0.0~dev
elif printf '%s\n' "$v" | grep -Eq '^[0-9a-f]{7,40}$'; then
	out=0.0.0~git$n.g$v
elif printf '%s\n' "$v" | grep -Eq '^v?[0-9]'; then
	v=${v#v}
	# A describe suffix -N-gHASH: commits after the tag.
	after=$(printf '%s\n' "$v" | sed -nE 's/^.*-([0-9]+)-g([0-9a-f]+)$/+git\1.g\2/p')
	base=$(printf '%s\n' "$v" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
	# What is left of "-" in a tag is a pre-release: it sorts first.
	out=$(printf '%s\n' "$base" | tr - '~')$after
else
	echo "deb-version.sh: cannot make a Debian version of \"$1\": tag releases vN.N.N (git tag v0.1.0)" >&2
	exit 1
fi

out=$out$dirty
if ! printf '%s\n' "$out" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	echo "deb-version.sh: \"$1\" gives \"$out\", which is no Debian version: tag releases vN.N.N" >&2
	exit 1
fi
printf '%s\n' "$out"
