package image

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	diskDomain = "disk.amtd.example"
	// OVMF's firmware as Debian 12's ovmf package installs it; its
	// variables are copied, as a VM's NVRAM is written to.
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// TestDiskImageBoots builds the bootable disk (build.sh --disk) and boots it
// as a box would: UEFI firmware (OVMF) under qemu, q35, software emulation
// (no KVM here), systemd-boot from the ESP, Debian's kernel and initrd, the
// ext4 root found by its PARTUUID. It passes once the serial console shows
// the operator's summary with amtd.service active, which the first boot
// reaches only after configuring the package and making the master key.
func TestDiskImageBoots(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: building the image unpacks a Debian system with its owners (CI runs as root)")
	}
	for _, tool := range []string{"mmdebstrap", "qemu-system-x86_64", "mkfs.vfat", "mcopy", "mtype", "sfdisk", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: scripts/deps.sh installs it (mmdebstrap, qemu-system-x86, dosfstools, mtools, fdisk, e2fsprogs)", tool)
		}
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: scripts/deps.sh installs ovmf", err)
		}
	}
	top, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	start := time.Now()
	build := exec.Command(filepath.Join(top, "packaging/image/build.sh"), "--domain", diskDomain,
		"--address", address+"/24", "--router", "none", "--cache", cacheDir, "--out", out,
		"--no-squashfs", "--disk", "--disk-free", "256")
	build.Dir = top
	build.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10))
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("packaging/image/build.sh --disk: %v\n%s", err, b)
	} else {
		t.Logf("build.sh:\n%s", b)
	}
	t.Logf("disk image build took %s", time.Since(start).Round(time.Second))
	img := filepath.Join(out, "amtd-image-"+diskDomain+".img")

	// The layout: GPT, an EFI system partition then the root, and the
	// loader entry on the ESP naming the root by its PARTUUID.
	b, err := exec.Command("sfdisk", "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json %s: %v", img, err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string
			Partitions []struct {
				Start, Size int64
				Type, UUID  string
			}
		}
	}
	if err := json.Unmarshal(b, &pt); err != nil {
		t.Fatalf("sfdisk --json: %v\n%s", err, b)
	}
	parts := pt.PartitionTable.Partitions
	if pt.PartitionTable.Label != "gpt" || len(parts) != 2 ||
		!strings.EqualFold(parts[0].Type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B") ||
		!strings.EqualFold(parts[1].Type, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709") {
		t.Fatalf("the disk is not GPT with an ESP and an x86-64 root:\n%s", b)
	}
	espAt := img + "@@" + strconv.FormatInt(parts[0].Start*512, 10)
	entry, err := exec.Command("mtype", "-i", espAt, "::/loader/entries/amtd.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("the ESP's loader entry: %v\n%s", err, entry)
	}
	if !strings.Contains(string(entry), "root=PARTUUID="+strings.ToLower(parts[1].UUID)+" ") {
		t.Errorf("the loader entry does not name the root partition %s:\n%s", parts[1].UUID, entry)
	}
	for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/vmlinuz", "::/initrd.img"} {
		if o, err := exec.Command("mdir", "-i", espAt, f).CombinedOutput(); err != nil {
			t.Errorf("the ESP has no %s: %v\n%s", f, err, o)
		}
	}
	if t.Failed() {
		return
	}

	vars := filepath.Join(dir, "OVMF_VARS.fd")
	v, err := os.ReadFile(ovmfVars)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(vars, v, 0o600); err != nil {
		t.Fatal(err)
	}
	var console syncBuffer
	qemu := exec.Command("qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-m", "1024", "-smp", "2",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-drive", "if=virtio,format=raw,file="+img,
		"-nic", "user,model=virtio-net-pci",
		"-nographic", "-monitor", "none", "-serial", "stdio", "-no-reboot")
	qemu.Stdout, qemu.Stderr = &console, &console
	qemu.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	booted := time.Now()
	if err := qemu.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- qemu.Wait() }()
	t.Cleanup(func() {
		_ = qemu.Process.Kill()
		<-done
	})
	text := func() string { return strings.ReplaceAll(console.String(), "\r", "") }

	deadline := time.Now().Add(4 * time.Minute)
	for {
		c := text()
		if strings.Contains(c, "==== amtd appliance for "+diskDomain) && strings.Contains(c, "amtd.service: active") {
			break
		}
		select {
		case err := <-done:
			done <- err
			t.Fatalf("qemu exited before the console summary: %v\nconsole:\n%s", err, c)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no console summary with amtd.service active within 4 min of power-on\nconsole:\n%s", c)
		}
		time.Sleep(time.Second)
	}
	t.Logf("power-on to the console summary (amtd.service active) took %s", time.Since(booted).Round(time.Second))
	c := text()
	if i := strings.Index(c, "==== amtd appliance"); i >= 0 {
		t.Logf("console:\n%s", c[i:])
	}
	for _, want := range []string{address + "/24", "amtd domain add " + diskDomain, "dns           up"} {
		if !strings.Contains(c, want) {
			t.Errorf("the console summary does not show %q", want)
		}
	}
}
