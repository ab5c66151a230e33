// Package deb checks the Debian package of amtd the way a Debian maintainer
// would: it builds the .deb with packaging/deb/build.sh (what `make deb`
// runs), runs lintian on it, builds it again to compare the bytes, reads its
// contents, and, as root, installs, upgrades, removes and purges it on this
// machine with dpkg, running the real maintainer scripts.
package deb

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Versions the tests build. They sort below any real amtd version (0.1.0~git…
// snapshots and releases), so a test package never looks newer than a real
// one, and debtest1 < debtest2 for the upgrade.
const (
	versionOld = "0.0.1~debtest1-1"
	versionNew = "0.0.1~debtest2-1"
)

var (
	topDir   string // the repository
	buildDir string // where the test packages go; removed by TestMain
	// sourceDateEpoch is the time every build of the run stamps on the
	// package: the last commit's when the run starts, fixed so that a commit
	// made meanwhile in the shared tree does not change it between builds.
	sourceDateEpoch int64
)

func TestMain(m *testing.M) {
	top, err := filepath.Abs("../..")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	topDir = top
	if sourceDateEpoch, err = lastCommitTime(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "amtd-deb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// needTools skips a test when the Debian tools it runs are missing, naming
// the packages that bring them.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (Debian packages: dpkg-dev for dpkg-shlibdeps and dpkg-buildflags, lintian for lintian, bash-completion for completions); scripts/deps.sh should install them", tool)
		}
	}
}

// built caches one build per version for the whole run: a build compiles
// SQLite once (cold: about a minute on 2 cores) and relinks after that.
var built = struct {
	sync.Mutex
	debs map[string]string
}{debs: map[string]string{}}

// buildDeb returns the package of version, building it on first use.
func buildDeb(t *testing.T, version string) string {
	t.Helper()
	needTools(t, "dpkg-deb", "dpkg-shlibdeps", "dpkg-buildflags", "go", "git")
	built.Lock()
	defer built.Unlock()
	if deb, ok := built.debs[version]; ok {
		return deb
	}
	deb, err := runBuild(filepath.Join(buildDir, version), version, "022", nil)
	if err != nil {
		t.Fatal(err)
	}
	built.debs[version] = deb
	return deb
}

// runBuild runs packaging/deb/build.sh from out (also where the package
// goes), under umask, with extra environment, and returns the .deb's path.
func runBuild(out, version, umask string, env []string) (string, error) {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("sh", "-c", `umask "$0" && exec "$@"`, umask,
		filepath.Join(topDir, "packaging/deb/build.sh"), "--out", out, "--version", version)
	cmd.Dir = out
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(sourceDateEpoch, 10))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build.sh --version %s: %v\n%s%s", version, err, stdout.String(), stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	deb := lines[len(lines)-1]
	if _, err := os.Stat(deb); err != nil {
		return "", fmt.Errorf("build.sh printed %q, not a package: %v", deb, err)
	}
	return deb, nil
}

// lastCommitTime is SOURCE_DATE_EPOCH as build.sh takes it: from the
// environment, else the last commit's time.
func lastCommitTime() (int64, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		out, err := exec.Command("git", "-C", topDir, "log", "-1", "--format=%ct").Output()
		if err != nil {
			return 0, fmt.Errorf("git log: %v", err)
		}
		s = strings.TrimSpace(string(out))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("SOURCE_DATE_EPOCH %q: %v", s, err)
	}
	return n, nil
}

// run runs a command and returns its standard output; a failure ends the test
// with both streams.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := runErr(nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runErr runs a command with extra environment and returns its standard
// output, or an error that holds the command and both streams.
func runErr(env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// debEntry is one member of the package's data archive.
type debEntry struct {
	hdr  *tar.Header
	data []byte // regular files only
}

// debContents reads the data archive of a package, as dpkg would unpack it.
func debContents(t *testing.T, deb string) map[string]debEntry {
	t.Helper()
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	entries := map[string]debEntry{}
	tr := tar.NewReader(stdout)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: data archive: %v", deb, err)
		}
		e := debEntry{hdr: hdr}
		if hdr.Typeflag == tar.TypeReg {
			if e.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		entries[strings.TrimPrefix(hdr.Name, ".")] = e
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dpkg-deb --fsys-tarfile %s: %v: %s", deb, err, stderr.String())
	}
	return entries
}

// extractBinary writes the package's /usr/sbin/amtd to a temporary file.
func extractBinary(t *testing.T, deb string) string {
	t.Helper()
	e, ok := debContents(t, deb)["/usr/sbin/amtd"]
	if !ok {
		t.Fatalf("%s has no /usr/sbin/amtd", deb)
	}
	bin := filepath.Join(t.TempDir(), "amtd")
	if err := os.WriteFile(bin, e.data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
