#!/bin/sh
# stage.sh STAGE: everything the two packages hold but their binaries, under
# STAGE/alloy-runner and STAGE/metrics-proxy, for packaging/*.yaml (nfpm).
# `make deb` runs it from the top of the tree. Inputs are the files `make
# install` installs (systemd/, examples/, web-config.yml.example), so the
# packages follow them:
#
#   units/        systemd/*.service, *.socket of the package, with @BINDIR@
#                 /usr/bin and @DOCDIR@ /usr/share/doc/PACKAGE (as make install)
#   sysusers.conf, tmpfiles.conf
#                 the package's lines of systemd/alloy-runner.sysusers and
#                 systemd/alloy-runner.tmpfiles: a user goes with the
#                 package of its name, a path with the package whose name it
#                 holds; a line that fits neither stops the build
#   doc/          /usr/share/doc/PACKAGE: systemd/README.md, copyright,
#                 changelog.gz, examples/ (the drop-ins of the package's units
#                 as make install renders them, and its example configs)
#   man/          PACKAGE.1.gz, from the binary's own --help-man (kingpin)
#
# DEB_VERSION, DEB_MAINTAINER, SOURCE_DATE_EPOCH and DEB_BIN (the binaries,
# built for this host) come from the Makefile.
set -eu
stage=${1:?usage: stage.sh STAGE}
: "${DEB_VERSION:?DEB_VERSION is not set (make deb sets it)}"
: "${DEB_MAINTAINER:?DEB_MAINTAINER is not set (make deb sets it)}"
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH is not set (make deb sets it)}"
: "${DEB_BIN:?DEB_BIN is not set (make deb sets it)}"
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)

rm -rf "$stage"
for pkg in alloy-runner metrics-proxy; do
	mkdir -p "$stage/$pkg/units" "$stage/$pkg/doc/examples" "$stage/$pkg/man"
done

# The package a unit, drop-in directory or path belongs to.
owner() {
	case $1 in
	*metrics-proxy*) echo metrics-proxy ;;
	*alloy-runner*) echo alloy-runner ;;
	*) echo "stage.sh: $1 belongs to neither package: add it to packaging/stage.sh" >&2; return 1 ;;
	esac
}

# render SRC DST PKG: what make install's UNIT_SUBST does, for this package.
render() {
	sed -e 's|@BINDIR@|/usr/bin|g' -e "s|@DOCDIR@|/usr/share/doc/$3|g" "$1" > "$2"
	if grep -n '@[A-Z]*@' "$2" >&2; then
		echo "stage.sh: $1: a placeholder is left after rendering (above)" >&2
		return 1
	fi
	chmod 0644 "$2"
}

for u in systemd/*.service systemd/*.socket; do
	name=${u#systemd/}
	pkg=$(owner "$name")
	render "$u" "$stage/$pkg/units/$name" "$pkg"
done
for d in systemd/*.d/*.example; do
	rel=${d#systemd/}
	pkg=$(owner "${rel%%/*}")
	mkdir -p "$stage/$pkg/doc/examples/${rel%/*}"
	render "$d" "$stage/$pkg/doc/examples/$rel" "$pkg"
done

# split FILE KIND FIELD: sort FILE's entries (not comments) into the packages'
# KIND.conf by the name in FIELD (the user for sysusers, the path for tmpfiles).
split() {
	for pkg in alloy-runner metrics-proxy; do
		printf '# %s entries of the %s package: the lines of %s in this\n# repository that are %s'"'"'s (packaging/stage.sh).\n' \
			"$2" "$pkg" "$1" "$pkg" > "$stage/$pkg/$2.conf"
	done
	grep -Ev '^[[:space:]]*(#|$)' "$1" | while IFS= read -r line; do
		name=$(printf '%s\n' "$line" | awk -v f="$3" '{print $f}')
		pkg=$(owner "$name") || { echo "stage.sh: in $1: $line" >&2; exit 1; }
		printf '%s\n' "$line" >> "$stage/$pkg/$2.conf"
	done
	chmod 0644 "$stage"/*/"$2".conf
}
split systemd/alloy-runner.sysusers sysusers 2
split systemd/alloy-runner.tmpfiles tmpfiles 2
# /run/alloy-runner (the runner's unix metrics socket) belongs to the group
# metrics-proxy, so the runner's package needs that group even where the
# proxy is not installed; the proxy's user takes it as its primary group.
cat >> "$stage/alloy-runner/sysusers.conf" <<'EOT'
# The group that may reach the runner's unix metrics socket in /run/alloy-runner
# (tmpfiles.d/alloy-runner.conf); the metrics-proxy package's user joins it.
g metrics-proxy -
EOT

# Docs: the systemd README names both units; the example configs go with the
# program that reads them.
for pkg in alloy-runner metrics-proxy; do
	install -m 0644 systemd/README.md "$stage/$pkg/doc/README.md"
	years=$(git log --format=%ad --date=format:%Y 2>/dev/null | sort -u |
		awk 'NR == 1 { first = $0 } { last = $0 } END { if (NR) print (first == last ? first : first "-" last) }')
	sed "s|@YEARS@|${years:-$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)}|" packaging/copyright > "$stage/$pkg/doc/copyright"
	chmod 0644 "$stage/$pkg/doc/copyright"
	{
		printf '%s (%s) unstable; urgency=medium\n\n' "$pkg" "$DEB_VERSION"
		printf '  * Built with make deb from git %s of the hardened AlloyCI runner;\n' "$revision"
		printf '    the repository'"'"'s git log holds the changes.\n\n'
		printf ' -- %s  %s\n' "$DEB_MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9n > "$stage/$pkg/doc/changelog.gz"
	chmod 0644 "$stage/$pkg/doc/changelog.gz"
done
install -m 0644 examples/config.toml "$stage/alloy-runner/doc/examples/config.toml"
install -m 0644 web-config.yml.example "$stage/metrics-proxy/doc/examples/web-config.yml.example"
install -m 0644 examples/routes.yml examples/nftables-metrics-proxy.nft "$stage/metrics-proxy/doc/examples/"
# man pages: kingpin's --help-man, with a .TH line man can read (kingpin puts
# the whole multi-line --version there) and a NAME line with its whatis text.
manpage() {
	bin=$1 whatis=$2
	"$DEB_BIN/$bin" --help-man > "$stage/$bin/man/raw" || {
		echo "stage.sh: $DEB_BIN/$bin --help-man failed: make deb builds for this host only" >&2; return 1; }
	{
		printf '.TH %s 1 "%s" "%s %s" "User Commands"\n' "$bin" \
			"$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)" "$bin" "$DEB_VERSION"
		sed -n '/^\.SH "NAME"$/,$p' "$stage/$bin/man/raw" | sed "2s|^$bin\$|$bin \\\\- $whatis|"
	} | gzip -9n > "$stage/$bin/man/$bin.1.gz"
	rm "$stage/$bin/man/raw"
	chmod 0644 "$stage/$bin/man/$bin.1.gz"
}
manpage alloy-runner "AlloyCI runner with the shell executor, sandboxed by systemd"
manpage metrics-proxy "TLS and authentication in front of Prometheus exporters"

find "$stage" -type d -exec chmod 0755 {} +
