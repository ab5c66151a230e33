package deb

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// TestVersionFromGitDescribe: packaging/deb/version.sh, which names every
// `make deb` package, maps each state of a scratch repository to the Debian
// version the comment in it promises, and the versions sort as the history
// does (dpkg --compare-versions): a snapshot before its release, the release,
// a commit after it, the next release candidate, the next release.
func TestVersionFromGitDescribe(t *testing.T) {
	needTools(t, "git", "dpkg")
	script := filepath.Join(topDir, "packaging/deb/version.sh")
	repo := t.TempDir()
	changelog := filepath.Join(repo, "changelog")
	if err := os.WriteFile(changelog, []byte("amtd (1.2.0-1) unstable; urgency=medium\n\n  * x\n\n -- a <a@example.org>  Mon, 23 Nov 2026 08:56:26 +0000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		out, err := runErr([]string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.org", "GIT_COMMITTER_DATE=2026-01-15T12:00:00Z", "GIT_AUTHOR_DATE=2026-01-15T12:00:00Z"},
			"git", append([]string{"-C", repo}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	commit := func() string {
		t.Helper()
		git("commit", "-q", "--allow-empty", "-m", "c")
		return git("rev-parse", "--short=7", "HEAD")[:7]
	}
	version := func() string {
		t.Helper()
		cmd := exec.Command(script, changelog)
		cmd.Dir = repo
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		return string(regexp.MustCompile(`\s+$`).ReplaceAll(out, nil))
	}

	git("init", "-q")
	git("add", "changelog")
	h := commit()
	var seen []string
	check := func(want string) {
		t.Helper()
		if got := version(); got != want {
			t.Errorf("version.sh: %q, want %q", got, want)
		}
		seen = append(seen, want)
	}
	check("1.2.0~git20260115." + h + "-1")

	if err := os.WriteFile(changelog, []byte("amtd (1.2.0-1) unstable; urgency=medium\n\n  * y\n\n -- a <a@example.org>  Mon, 23 Nov 2026 08:56:26 +0000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := version(), "1.2.0~git20260115."+h+"+dirty-1"; got != want {
		t.Errorf("modified tree: %q, want %q", got, want)
	}
	git("commit", "-q", "-am", "c")

	git("tag", "v1.2.0")
	check("1.2.0-1")
	git("tag", "not-a-version") // ignored: only v* tags name releases
	h = commit()
	check("1.2.0+git1." + h + "-1")
	commit()
	git("tag", "v1.3.0-rc1")
	check("1.3.0~rc1-1")
	commit()
	git("tag", "v1.3.0")
	check("1.3.0-1")

	for i := 1; i < len(seen); i++ {
		if err := exec.Command("dpkg", "--compare-versions", seen[i-1], "lt", seen[i]).Run(); err != nil {
			t.Errorf("dpkg --compare-versions %s lt %s: false; the versions do not sort as the history", seen[i-1], seen[i])
		}
	}
}
