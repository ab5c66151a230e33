#!/usr/bin/env bash
# Prints the Debian version of the git work tree it runs in, for build.sh.
#
# Usage: packaging/deb/version.sh CHANGELOG
#
# CHANGELOG is packaging/deb/changelog: its first entry names the release in
# preparation, which snapshots before the first tag are versioned against.
# tests/deb checks the mapping in a scratch repository.
set -euo pipefail

changelog=${1:?usage: version.sh CHANGELOG}

# debian_version maps `git describe` (tags v*) to a Debian
# version (always with the revision -1, as the package is not native):
#   v1.2.0                 -> 1.2.0-1
#   v1.2.0-rc1             -> 1.2.0~rc1-1           (sorts before 1.2.0)
#   v1.2.0-5-gabc1234      -> 1.2.0+git5.abc1234-1  (after 1.2.0, before 1.2.1)
#   abc1234 (no tag yet)   -> NEXT~git20260115.abc1234-1, NEXT being the
#                             upstream version of the changelog's first entry,
#                             the release in preparation: snapshots sort before
#                             it, and later commits (by date) after earlier ones
# and a build from a modified tree gets +dirty.
debian_version() {
	local desc dirty='' base n hash next
	desc=$(git describe --tags --match 'v[0-9]*' --always --dirty --abbrev=7)
	if [[ $desc == *-dirty ]]; then
		dirty=+dirty
		desc=${desc%-dirty}
	fi
	if [[ $desc =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
		base=${base#v}
		echo "${base//-/\~}+git$n.$hash$dirty-1"
	elif [[ $desc =~ ^[0-9a-f]+$ ]]; then
		next=$(sed -n '1s/^amtd (\([^)-]*\)-[^)]*).*/\1/p' "$changelog")
		if [ -z "$next" ]; then
			echo "version.sh: cannot read the version of the first entry of $changelog" >&2
			return 1
		fi
		echo "$next~git$(TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y%m%d).$desc$dirty-1"
	else
		base=${desc#v}
		echo "${base//-/\~}$dirty-1"
	fi
}

debian_version
