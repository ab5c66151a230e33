package deb

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"debug/buildinfo"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestLintian: lintian, as Debian runs it on every upload, finds no error and
// no warning. Informational and pedantic tags are logged; the overrides the
// package ships each carry their reason.
func TestLintian(t *testing.T) {
	needTools(t, "lintian")
	deb := buildDeb(t, versionNew)
	cmd := exec.Command("lintian", "--pedantic", "--info", "--display-info", "--show-overrides", deb)
	out, err := cmd.CombinedOutput()
	var bad []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "E: "), strings.HasPrefix(line, "W: "):
			bad = append(bad, line)
		case strings.HasPrefix(line, "I: "), strings.HasPrefix(line, "P: "), strings.HasPrefix(line, "O: "):
			t.Log(line)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("lintian %s: %d errors and warnings:\n%s\n\nfull output:\n%s", filepath.Base(deb), len(bad), strings.Join(bad, "\n"), out)
	}
	// lintian exits non-zero on errors; with none printed a failure is lintian's own.
	if err != nil {
		t.Fatalf("lintian %s: %v\n%s", deb, err, out)
	}
}

// TestReproducibleBuild: a second build of the same commit and version, from
// another directory, with another umask, time zone and locale, gives the
// same bytes. Every member of the package carries SOURCE_DATE_EPOCH.
func TestReproducibleBuild(t *testing.T) {
	first := buildDeb(t, versionNew)
	second, err := runBuild(filepath.Join(buildDir, "again", "elsewhere"), versionNew, "077", []string{
		"TMPDIR=" + t.TempDir(), "TZ=America/Los_Angeles", "LC_ALL=C.UTF-8",
	})
	if err != nil {
		t.Fatal(err)
	}
	sum := func(path string) string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	a, b := sum(first), sum(second)
	t.Logf("sha256 %s  %s", a, filepath.Base(first))
	if a != b {
		t.Errorf("two builds of version %s differ: sha256 %s and %s (diffoscope %s %s shows where)", versionNew, a, b, first, second)
	}

	for name, e := range debContents(t, first) {
		if got := e.hdr.ModTime.Unix(); got != sourceDateEpoch {
			t.Errorf("%s: mtime %d, want SOURCE_DATE_EPOCH %d", name, got, sourceDateEpoch)
		}
	}
}

// TestPackageContents: the files, their modes and owners, the control
// fields, conffiles and md5sums are what Debian policy and the units expect.
func TestPackageContents(t *testing.T) {
	deb := buildDeb(t, versionNew)
	entries := debContents(t, deb)

	wantFiles := map[string]int64{
		"/usr/sbin/amtd":                              0o755,
		"/etc/amtd/amtd.conf":                         0o644,
		"/usr/lib/systemd/system/amtd.service":        0o644,
		"/usr/lib/systemd/system/amtd-dhcp.socket":    0o644,
		"/usr/lib/systemd/system/amtd-dns.socket":     0o644,
		"/usr/lib/systemd/system/amtd-dns-tcp.socket": 0o644,
		"/usr/lib/systemd/system/amtd-hello.socket":   0o644,
		"/usr/lib/systemd/system/amtd-cira.socket":    0o644,
		"/usr/lib/systemd/system/amtd-api.socket":     0o644,
		"/usr/lib/systemd/system/amtd-metrics.socket": 0o644,
		"/usr/lib/sysusers.d/amtd.conf":               0o644,
		"/usr/lib/tmpfiles.d/amtd.conf":               0o644,
		"/usr/share/man/man8/amtd.8.gz":               0o644,
		"/usr/share/man/man5/amtd.conf.5.gz":          0o644,
		"/usr/share/doc/amtd/copyright":               0o644,
		"/usr/share/doc/amtd/changelog.Debian.gz":     0o644,
		"/usr/share/bash-completion/completions/amtd": 0o644,
		"/usr/share/lintian/overrides/amtd":           0o644,
	}
	var files []string
	for name, e := range entries {
		if e.hdr.Uid != 0 || e.hdr.Gid != 0 || e.hdr.Uname != "root" || e.hdr.Gname != "root" {
			t.Errorf("%s: owner %s:%s (%d:%d), want root:root", name, e.hdr.Uname, e.hdr.Gname, e.hdr.Uid, e.hdr.Gid)
		}
		switch e.hdr.Typeflag {
		case '5': // directory
			if e.hdr.Mode != 0o755 {
				t.Errorf("directory %s: mode %04o, want 0755", name, e.hdr.Mode)
			}
		case '0':
			files = append(files, name)
			want, ok := wantFiles[name]
			if !ok {
				t.Errorf("unexpected file %s in the package", name)
				continue
			}
			if e.hdr.Mode != want {
				t.Errorf("%s: mode %04o, want %04o", name, e.hdr.Mode, want)
			}
		default:
			t.Errorf("%s: unexpected member type %q", name, e.hdr.Typeflag)
		}
	}
	for name := range wantFiles {
		if _, ok := entries[name]; !ok {
			t.Errorf("%s is missing from the package", name)
		}
	}
	// The units are the tree's, byte for byte.
	for _, unit := range append(slices.Clone(amtdUnits), optionalUnits...) {
		src, err := os.ReadFile(filepath.Join(topDir, "rootfs/usr/lib/systemd/system", unit))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(entries["/usr/lib/systemd/system/"+unit].data, src) {
			t.Errorf("%s in the package differs from rootfs/", unit)
		}
	}

	field := func(name string) string {
		return strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, name))
	}
	if got := field("Version"); got != versionNew {
		t.Errorf("Version: %q, want %q", got, versionNew)
	}
	if got := field("Architecture"); got != strings.TrimSpace(run(t, "dpkg", "--print-architecture")) {
		t.Errorf("Architecture: %q, not this machine's", got)
	}
	// ${shlibs:Depends} from dpkg-shlibdeps: libc6 with a minimum version.
	if got := field("Depends"); !regexp.MustCompile(`(^|, )libc6 \(>= [0-9.]+\)`).MatchString(got) || !strings.Contains(got, "adduser") {
		t.Errorf("Depends: %q, want adduser and libc6 (>= VERSION) from dpkg-shlibdeps", got)
	}
	if got := field("Recommends"); got != "systemd (>= 252)" {
		t.Errorf("Recommends: %q, want systemd (>= 252)", got)
	}

	ctrl := t.TempDir()
	run(t, "dpkg-deb", "--control", deb, ctrl)
	conffiles, err := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if err != nil {
		t.Fatal(err)
	}
	if string(conffiles) != "/etc/amtd/amtd.conf\n" {
		t.Errorf("conffiles: %q, want only /etc/amtd/amtd.conf", conffiles)
	}
	for _, s := range []string{"preinst", "postinst", "prerm", "postrm"} {
		fi, err := os.Stat(filepath.Join(ctrl, s))
		if err != nil {
			t.Errorf("maintainer script %s: %v", s, err)
		} else if fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: mode %04o, want 0755", s, fi.Mode().Perm())
		}
		if out, err := exec.Command("sh", "-n", filepath.Join(ctrl, s)).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v: %s", s, err, out)
		}
	}

	// md5sums: every file but the conffile, with its sum.
	md5sums, err := os.ReadFile(filepath.Join(ctrl, "md5sums"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(md5sums))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("md5sums line %q", sc.Text())
		}
		e, ok := entries["/"+name]
		if !ok {
			t.Errorf("md5sums lists %s, which is not in the package", name)
			continue
		}
		if got := md5.Sum(e.data); hex.EncodeToString(got[:]) != sum {
			t.Errorf("md5sums: %s is %x, listed as %s", name, got, sum)
		}
		listed["/"+name] = true
	}
	sort.Strings(files)
	for _, f := range files {
		if f == "/etc/amtd/amtd.conf" {
			if listed[f] {
				t.Errorf("md5sums lists the conffile %s (dpkg tracks conffiles itself)", f)
			}
		} else if !listed[f] {
			t.Errorf("md5sums misses %s", f)
		}
	}
}

// TestBinaryHardened: /usr/sbin/amtd is stripped, position independent,
// with full RELRO, built with -trimpath, and reports the package's version.
func TestBinaryHardened(t *testing.T) {
	bin := extractBinary(t, buildDeb(t, versionNew))
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Type != elf.ET_DYN {
		t.Errorf("ELF type %v, want ET_DYN (PIE)", f.Type)
	}
	for _, s := range f.Sections {
		if s.Name == ".symtab" || strings.HasPrefix(s.Name, ".debug_") || s.Name == ".comment" {
			t.Errorf("section %s left in: not stripped as dh_strip would", s.Name)
		}
	}
	relro := false
	for _, p := range f.Progs {
		relro = relro || p.Type == elf.PT_GNU_RELRO
	}
	if !relro {
		t.Error("no PT_GNU_RELRO segment: not linked with -z relro")
	}
	flags, _ := f.DynValue(elf.DT_FLAGS)
	flags1, _ := f.DynValue(elf.DT_FLAGS_1)
	now := false
	for _, v := range flags {
		now = now || v&uint64(elf.DF_BIND_NOW) != 0
	}
	for _, v := range flags1 {
		now = now || v&uint64(elf.DF_1_NOW) != 0
	}
	if !now {
		t.Error("no BIND_NOW: not linked with -z now")
	}

	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if settings["-trimpath"] != "true" || settings["-buildmode"] != "pie" {
		t.Errorf("build settings -trimpath=%q -buildmode=%q, want true and pie", settings["-trimpath"], settings["-buildmode"])
	}
	if _, ok := settings["vcs.revision"]; ok {
		t.Error("the binary carries a VCS stamp: its bytes would depend on the checkout, not the source")
	}
	if got := strings.TrimSpace(run(t, bin, "version")); got != "amtd "+versionNew {
		t.Errorf("amtd version: %q, want %q", got, "amtd "+versionNew)
	}
}

// TestCopyrightCoversLinkedModules: every Go module compiled into the
// packaged binary has its paragraph in debian/copyright, and every module
// the copyright lists is still linked.
func TestCopyrightCoversLinkedModules(t *testing.T) {
	deb := buildDeb(t, versionNew)
	info, err := buildinfo.ReadFile(extractBinary(t, deb))
	if err != nil {
		t.Fatal(err)
	}
	copyright := string(debContents(t, deb)["/usr/share/doc/amtd/copyright"].data)
	linked := map[string]bool{}
	for _, dep := range info.Deps {
		linked[dep.Path] = true
		if !strings.Contains(copyright, "vendor/"+dep.Path+"/*") {
			t.Errorf("module %s %s is linked into amtd but has no Files: vendor/%s/* paragraph in packaging/deb/copyright", dep.Path, dep.Version, dep.Path)
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^(?:Files:)? +vendor/(\S+)/\*$`).FindAllStringSubmatch(copyright, -1) {
		if !linked[m[1]] {
			t.Errorf("packaging/deb/copyright lists %s, which is not linked into amtd any more", m[1])
		}
	}
	if len(info.Deps) == 0 {
		t.Fatal("no modules in the binary's build info")
	}
	if !t.Failed() {
		t.Logf("%d modules linked, all in the copyright file", len(info.Deps))
	}
}
