package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// The shim runs as root and takes requests and files from outside: its
// socket, the ids and paths in requests, the bundle. Nobody but root may
// reach the socket; nothing of the shim's may leak into a container; a bad
// id is refused; a symlink in the bundle must not turn a write or a mount
// into one outside it.

var socketAccessScenario = scenarioSpec{
	name: "the shim's socket is root's alone",
	test: "TestReliabilitySocketAccess",
	about: "The shim's socket must be owned by root and closed to group and others, in a folder closed the same way; " +
		"a process running as `nobody` must fail to connect to it (the test binary, copied where nobody can run it, " +
		"tries with setuid/setgid credentials), while the same probe as root connects.",
}

// connectProbeEnv makes the test binary a probe that dials a unix socket
// and exits 0 if it connected, 1 if not (with the error on stderr).
const connectProbeEnv = "TEACH_CONNECT_PROBE"

func connectProbe(socket string) int {
	conn, err := net.Dial("unix", socket)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	conn.Close()
	return 0
}

func TestReliabilitySocketAccess(t *testing.T) {
	probe := probeBinary(t)
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, socketAccessScenario, s)
		_, task, _ := s.runningTask(t, "socket-access")
		shimPID, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		sockets, err := harness.ListeningSockets(shimPID)
		if err != nil || len(sockets) == 0 {
			t.Fatalf("shim %d listens on %v (%v)", shimPID, sockets, err)
		}
		for _, socket := range sockets {
			for _, path := range []string{socket, filepath.Dir(socket)} {
				var st unix.Stat_t
				if err := unix.Stat(path, &st); err != nil {
					t.Fatal(err)
				}
				sc.figure("mode of "+kindOfPath(path, socket), fmt.Sprintf("%04o uid %d", st.Mode&0o7777, st.Uid))
				if st.Uid != 0 || st.Mode&0o077 != 0 {
					t.Errorf("%s: mode %04o owner %d; want root's alone (no group or other bits)", path, st.Mode&0o7777, st.Uid)
				}
			}
			asRoot := runProbe(t, probe, socket, nil)
			asNobody := runProbe(t, probe, socket, &syscall.Credential{Uid: 65534, Gid: 65534})
			sc.figure("connect as root", asRoot)
			sc.figure("connect as nobody", asNobody)
			if asRoot != "connected" {
				t.Errorf("the probe as root could not connect to %s: %s", socket, asRoot)
			}
			if asNobody == "connected" {
				t.Errorf("nobody connected to the shim's socket %s", socket)
			}
		}
	})
}

func kindOfPath(path, socket string) string {
	if path == socket {
		return "socket"
	}
	return "socket folder"
}

// probeBinary copies the test binary where user nobody can run it (Go's
// build folders are root's alone).
func probeBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return copyForEveryone(t, self)
}

// copyForEveryone copies a program into a folder of its own that every
// user may search, so that another user can run it.
func copyForEveryone(t *testing.T, program string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "probe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(program)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	path := filepath.Join(dir, filepath.Base(program))
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// runProbe runs the probe against socket, as root or with credential, and
// says "connected" or why not.
func runProbe(t *testing.T, probe, socket string, credential *syscall.Credential) string {
	t.Helper()
	cmd := exec.Command(probe)
	cmd.Env = []string{connectProbeEnv + "=" + socket}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: credential}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return "connected"
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 1:
		return "refused: " + strings.TrimSpace(stderr.String())
	default:
		t.Fatalf("probe: %v: %s", err, stderr.String())
		return ""
	}
}

var descriptorScenario = scenarioSpec{
	name: "no shim descriptor in the container",
	test: "TestReliabilityNoDescriptorLeaks",
	about: "The container's init and an exec process must hold only descriptors 0, 1 and 2, seen from the host " +
		"(/proc/<pid>/fd) and from inside (`ls -l /proc/1/fd` in an exec): a shim descriptor left open across exec " +
		"(its socket, a FIFO, another container's pipe) would be reachable from the container.",
}

func TestReliabilityNoDescriptorLeaks(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		sc := newScenario(t, descriptorScenario, s)
		// Two containers, so that one's pipes could leak into the other.
		s.runningTask(t, "neighbour")
		container, task, _ := s.runningTask(t, "fd-check")
		process := sleepingExec(t, s, container, task, "sleeper")

		for what, pid := range map[string]int{"init": int(task.Pid()), "exec": int(process.Pid())} {
			fds, err := harness.OpenFDs(pid)
			if err != nil {
				t.Fatal(err)
			}
			sc.figure(what+" descriptors (host view)", len(fds))
			if len(fds) != 3 || fds[0].FD != 0 || fds[1].FD != 1 || fds[2].FD != 2 {
				t.Errorf("%s (pid %d) holds %v; want only 0, 1 and 2", what, pid, fds)
			}
		}
		result, err := runExec(s, task, "ls-fd", execSpec(t, s, container, "ls", "/proc/1/fd"), "")
		if err != nil || result.code != 0 {
			t.Fatalf("ls /proc/1/fd: %+v, %v", result, err)
		}
		inside := strings.Fields(result.stdout)
		sc.figure("/proc/1/fd inside", strings.Join(inside, " "))
		switch {
		case len(inside) == 0:
			// Nothing came back: the exec's output was lost, not a
			// descriptor leaked (the host view above checked those).
			sc.shimFellShort("exec-output-lost", fmt.Errorf("ls /proc/1/fd printed nothing"))
		case strings.Join(inside, " ") != "0 1 2":
			t.Errorf("inside the container /proc/1/fd lists %q; want 0 1 2", inside)
		}
	})
}

var badInputScenario = scenarioSpec{
	name: "bad ids and symlinks in the bundle",
	test: "TestReliabilityBadInput",
	about: "Sent straight to a shim started by hand (containerd would refuse them first): exec ids that could name a " +
		"path outside the bundle must be refused with InvalidArgument; a bundle whose options.json is a symlink to a " +
		"file outside it, a stdout path that is a symlink to a regular file, a `rootfs` that is a symlink to a folder " +
		"outside the bundle, and a working folder whose `address` is a symlink, must not make the shim write or mount " +
		"outside the bundle.",
}

func TestReliabilityBadInput(t *testing.T) {
	sc := newScenario(t, badInputScenario, nil)
	outside := t.TempDir()
	const untouched = "untouched\n"
	victim := func(name string) string {
		path := filepath.Join(outside, name)
		if err := os.WriteFile(path, []byte(untouched), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	addressVictim := victim("address-target")
	s := startShimDirectlyIn(t, func(dir string) {
		os.Symlink(addressVictim, filepath.Join(dir, "address"))
	})
	var problems []string
	check := func(what string, err error) {
		if err != nil {
			problems = append(problems, what+": "+err.Error())
		}
	}
	check("address symlink in the folder start runs in", unchanged(addressVictim, untouched))

	// Exec ids, against a running container.
	running := s.bundle(t, "running", "sleep", "1000")
	if err := s.create("running", running, s.runc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "running"}); err != nil {
		t.Fatal(err)
	}
	spec, _ := typeurl.MarshalAnyToProto(&specs.Process{Args: []string{"true"}, Cwd: "/"})
	refused := 0
	for _, execID := range []string{"", "..", "../../etc/x", "a/b", strings.Repeat("e", 80), "-flag", "a\x00b"} {
		_, err := s.task.Exec(s.ctx, &taskAPI.ExecProcessRequest{ID: "running", ExecID: execID, Spec: spec})
		if err = errgrpc.ToNative(err); errdefs.IsInvalidArgument(err) {
			refused++
		} else {
			problems = append(problems, fmt.Sprintf("exec id %q: %v, want InvalidArgument", execID, err))
		}
	}
	sc.figure("bad exec ids refused", fmt.Sprintf("%d of 7", refused))
	s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: "running", Signal: 9})
	s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: "running"})
	s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "running"})

	// options.json: the shim saves the runtime options in the bundle.
	optionsVictim := victim("options-target")
	bundle := s.bundle(t, "options-link", "true")
	os.Symlink(optionsVictim, filepath.Join(bundle, "options.json"))
	createAndDelete(s, "options-link", bundle, nil, "")
	check("options.json symlink", unchanged(optionsVictim, untouched))

	// A stdout path that is a symlink to a regular file.
	stdoutVictim := victim("stdout-target")
	link := filepath.Join(outside, "stdout-link")
	os.Symlink(stdoutVictim, link)
	bundle = s.bundle(t, "stdout-link", "sh", "-c", "echo overwritten")
	err := createAndDelete(s, "stdout-link", bundle, nil, link)
	if !errdefs.IsInvalidArgument(err) {
		problems = append(problems, fmt.Sprintf("stdout path that is a symlink to a regular file: %v, want InvalidArgument", err))
	}
	check("stdout symlink", unchanged(stdoutVictim, untouched))

	// rootfs: a symlink to a folder outside the bundle, and a mount for it.
	target := filepath.Join(outside, "rootfs-target")
	os.Mkdir(target, 0o755)
	source := s.bundle(t, "rootfs-source", "true")
	bundle = filepath.Join(s.bundleDir, "rootfs-link")
	os.MkdirAll(bundle, 0o755)
	data, _ := os.ReadFile(filepath.Join(source, "config.json"))
	os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644)
	os.Symlink(target, filepath.Join(bundle, "rootfs"))
	mounts := []*types.Mount{{Type: "bind", Source: filepath.Join(source, "rootfs"), Options: []string{"rbind", "ro"}}}
	createAndDelete(s, "rootfs-link", bundle, mounts, "")
	if found, _ := harness.MountsUnder(target); len(found) > 0 {
		problems = append(problems, fmt.Sprintf("a rootfs symlink made the shim mount outside the bundle, at %s", target))
		harness.UnmountAllUnder(target)
	}
	sc.figure("writes or mounts outside the bundle", len(problems))

	// The shim is still fit for work.
	good := s.bundle(t, "good", "sh", "-c", "exit 3")
	if err := s.create("good", good, s.runc); err != nil {
		t.Fatalf("create after bad input: %v", err)
	}
	s.task.Start(s.ctx, &taskAPI.StartRequest{ID: "good"})
	if waited, err := s.task.Wait(s.ctx, &taskAPI.WaitRequest{ID: "good"}); err != nil || waited.ExitStatus != 3 {
		t.Fatalf("wait after bad input: %v, %v", waited, err)
	}
	s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: "good"})

	for _, p := range problems {
		t.Log(p)
	}
	if len(problems) > 0 {
		sc.knownShimBug("writes-through-bundle-symlinks", errors.New(strings.Join(problems, "; ")))
	}
}

// createAndDelete creates a task from bundle (with rootfs mounts and a
// stdout path if given), and removes it again whatever happened.
func createAndDelete(s *directShim, id, bundle string, rootfs []*types.Mount, stdout string) error {
	_, err := s.task.Create(s.ctx, &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle, Options: s.runc, Rootfs: rootfs, Stdout: stdout})
	err = errgrpc.ToNative(err)
	if err == nil {
		s.task.Kill(s.ctx, &taskAPI.KillRequest{ID: id, Signal: 9})
		s.task.Delete(s.ctx, &taskAPI.DeleteRequest{ID: id})
	}
	return err
}

func unchanged(path, want string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(data) != want {
		return fmt.Errorf("%s was written through the symlink: now %q", path, data)
	}
	return nil
}
