// Command latepidfd is a runc for the tests (the runtime options'
// BinaryName) that passes the pidfd on late, or never.
//
// Given --pidfd-socket, it connects to the shim's socket at once, as runc
// does, runs the real runc with a socket of its own instead, takes the pidfd
// runc sends there, and sends it on to the shim only after a delay: the
// shim then waits, on a connection open from the start, for a pidfd that
// comes long after it, as it does when runc init is slow to join the
// container. With the delay "never" it connects and sends nothing. Without
// --pidfd-socket, or for a subcommand it is not asked to slow, it is the
// real runc.
//
// The environment says what to do:
//
//	LATE_PIDFD_RUNC     the real runc
//	LATE_PIDFD_DELAY    a duration (time.ParseDuration), or "never"
//	LATE_PIDFD_ONLY     create or exec: slow only that subcommand (both if unset)
//	LATE_PIDFD_RECORD   a file the shim's socket path is written to, once connected
//	LATE_PIDFD_HOLD     a file that must exist, after the delay, before the pidfd is sent
package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	real := os.Getenv("LATE_PIDFD_RUNC")
	args := os.Args[1:]
	flag := slices.Index(args, "--pidfd-socket")
	if flag < 0 || flag+1 >= len(args) || !asked(args[:flag]) {
		execRunc(real, args)
	}
	status, err := relay(real, args, flag+1)
	if err != nil {
		fmt.Fprintf(os.Stderr, "latepidfd: %v\n", err)
		os.Exit(1)
	}
	os.Exit(status)
}

// asked reports whether the subcommand, among runc's arguments before
// --pidfd-socket, is one to slow.
func asked(before []string) bool {
	only := os.Getenv("LATE_PIDFD_ONLY")
	return only == "" || slices.Contains(before, only)
}

func execRunc(real string, args []string) {
	err := syscall.Exec(real, append([]string{"runc"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "latepidfd: exec %s: %v\n", real, err)
	os.Exit(1)
}

// relay does the work with --pidfd-socket at args[value]: it returns runc's
// exit status.
func relay(real string, args []string, value int) (int, error) {
	shim, err := net.Dial("unix", args[value])
	if err != nil {
		return 0, err
	}
	defer shim.Close()
	if record := os.Getenv("LATE_PIDFD_RECORD"); record != "" {
		if err := os.WriteFile(record, []byte(args[value]), 0o600); err != nil {
			return 0, err
		}
	}
	delay := os.Getenv("LATE_PIDFD_DELAY")
	if delay == "never" {
		// runc gets no socket; the connection to the shim ends, with
		// nothing sent, when this process does.
		return runRunc(real, slices.Delete(slices.Clone(args), value-1, value+1))
	}
	wait, err := time.ParseDuration(delay)
	if err != nil {
		return 0, fmt.Errorf("LATE_PIDFD_DELAY: %w", err)
	}
	dir, err := os.MkdirTemp("", "latepidfd-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	own, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "pidfd.sock"), Net: "unix"})
	if err != nil {
		return 0, err
	}
	defer own.Close()
	args = slices.Clone(args)
	args[value] = own.Addr().String()
	if status, err := runRunc(real, args); err != nil || status != 0 {
		return status, err
	}
	// runc has sent the pidfd before it returned: it is queued here.
	pidfd, err := receivePidfd(own)
	if err != nil {
		return 0, err
	}
	defer unix.Close(pidfd)
	time.Sleep(wait)
	if hold := os.Getenv("LATE_PIDFD_HOLD"); hold != "" {
		for !exists(hold) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	_, _, err = shim.(*net.UnixConn).WriteMsgUnix([]byte("late"), unix.UnixRights(pidfd), nil)
	return 0, err
}

// runRunc runs the real runc with this process's stdio, and returns its exit
// status.
func runRunc(real string, args []string) (int, error) {
	cmd := exec.Command(real, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), nil
	}
	return 0, err
}

func receivePidfd(listener *net.UnixListener) (int, error) {
	conn, err := listener.AcceptUnix()
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := conn.ReadMsgUnix(make([]byte, 64), oob)
	if err != nil {
		return 0, err
	}
	messages, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(messages) != 1 {
		return 0, fmt.Errorf("runc sent no descriptor (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&messages[0])
	if err != nil || len(fds) != 1 {
		return 0, fmt.Errorf("runc sent %d descriptors (%v)", len(fds), err)
	}
	return fds[0], nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
