package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Each run of the suite has a mount and a network namespace of its own,
// whose first process is this program again, started with namespaceCommand.
// It makes the namespaces into the machine the suite expects, starts the
// registry and then the suite, and stops the registry when the suite ends.
//
// Why a mount namespace: the suite starts its containerd itself, and must
// (its restart tests restart that daemon, some read its pid), with a root
// (/var/lib/containerd-test) and a state (/run/containerd-test) that are
// constants of the suite. In the namespace, /run and /var/lib are folders
// of the run: containerd's root and state, the shims' sockets
// (/run/containerd/s), runc's state (/run/containerd/runc), the teach
// shim's journal and every overlay mount are the run's and go with it. The
// machine's /run/containerd is not touched.
//
// Why a network namespace: the suite pulls its images by their public
// names. There, only the loopback interface exists, /etc/hosts (mounted
// from the run's folder) sends the public registries' names to 127.0.0.1,
// and the registry listens on 127.0.0.1:443 with a certificate for them.
// The run is offline by construction: no other address can be reached.

// namespaceCommand is the hidden first argument that makes this program
// the first process of a run's namespaces.
const namespaceCommand = "in-namespace"

// hostsFile is /etc/hosts inside a run: the public registries are local.
func hostsFile(registries []string) string {
	return "127.0.0.1 localhost\n::1 localhost\n127.0.0.1 " + strings.Join(registries, " ") + "\n"
}

// inNamespaceArgs are the arguments of the namespace's first process:
// where the run's folders are, the registry to start, then the suite's
// command line after "--".
func inNamespaceArgs(s suiteRun) []string {
	args := []string{namespaceCommand,
		"-dir", s.Dir,
		"-registry", s.Registry,
		"-storage", s.RegistryStorage,
		"-certificate", s.TLS.Certificate,
		"-key", s.TLS.Key,
		"--", s.TestBinary,
	}
	return append(args, s.args()...)
}

// runInNamespace is the namespace's first process. Its output goes where
// the suite's does, so a failure to set up shows in the run's log.
func runInNamespace(args []string) int {
	flags := flag.NewFlagSet(namespaceCommand, flag.ExitOnError)
	dir := flags.String("dir", "", "the run's folder")
	registryBinary := flags.String("registry", "", "the registry binary")
	storage := flags.String("storage", "", "the registry's storage, images pushed")
	certificate := flags.String("certificate", "", "the registry's TLS certificate")
	key := flags.String("key", "", "the registry's TLS key")
	flags.Parse(args)
	suiteArgs := flags.Args()
	if len(suiteArgs) == 0 {
		fmt.Fprintln(os.Stderr, "conformance in-namespace: no suite to run")
		return 2
	}
	// A Ctrl-C reaches the suite, which ends; the registry is stopped after.
	signal.Ignore(syscall.SIGINT)

	if err := mountRunFolders(*dir); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		return 125
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: bring up lo: %v\n", err)
		return 125
	}
	registryDir := filepath.Join(*dir, "registry")
	if err := os.MkdirAll(registryDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		return 125
	}
	reg, err := startRegistry(*registryBinary, registryDir, registryConfig{
		Storage: *storage, Addr: "127.0.0.1:443", Certificate: *certificate, Key: *key,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		return 125
	}
	defer reg.Stop()

	suite := exec.Command(suiteArgs[0], suiteArgs[1:]...)
	suite.Stdout, suite.Stderr = os.Stdout, os.Stderr
	err = suite.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		if status, ok := exit.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal())
		}
		return exit.ExitCode()
	case err != nil:
		fmt.Fprintf(os.Stderr, "conformance: %v\n", err)
		return 125
	}
	return 0
}

// mountRunFolders puts the run's folders over /run, /var/lib and
// /etc/hosts. Go made the namespace with every mount private, so these bind
// mounts, and the ones containerd makes, never reach the machine's.
func mountRunFolders(dir string) error {
	for target, source := range map[string]string{
		"/run":       filepath.Join(dir, "run"),
		"/var/lib":   filepath.Join(dir, "var-lib"),
		"/etc/hosts": filepath.Join(dir, "hosts"),
	} {
		if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mount --bind %s %s: %w", source, target, err)
		}
	}
	return nil
}

// loopbackUp brings up lo, the one interface of a new network namespace,
// down until then.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
