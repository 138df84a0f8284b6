package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// runc connects to the shim's --pidfd-socket as it starts, and runc init
// sends the pidfd only once it has joined the container: on a slow machine,
// seconds later. These tests name a runc (harness.LatePidfdRunc) that
// connects at once and sends the pidfd late, or never. The stock shim gives
// runc no pidfd socket, so on its rows the stand-in is the real runc: they
// show the same container life without pidfds.

// latePidfdDelay is longer than the grace the shim gives a sender after
// runc returns (2 s): a timer started when runc connected would end first.
const latePidfdDelay = 3 * time.Second

// A create and an exec whose pidfd comes latePidfdDelay after runc connected
// succeed, with their exit codes, and the shim holds both pidfds.
func TestPidfdSentLate(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		late := harness.PidfdLateBy(t, latePidfdDelay, "")
		const id = "late-pidfd"
		// The init waits for the exec to have run, then exits 3.
		container := s.newContainer(t, id, []string{"sh", "-c", "while [ ! -e /exec-ran ]; do sleep 0.1; done; exit 3"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: late.Path}))
		task, exitCh := s.startTask(t, container, &stdio{})
		result, err := runExec(s, task, "late-exec", execSpec(t, s, container, "sh", "-c", "touch /exec-ran; echo ran; exit 5"), "")
		if err != nil || result.code != 5 {
			t.Fatalf("exec: %+v, %v; want exit 5", result, err)
		}
		if result.stdout != "ran\n" {
			s.shimFellShort(t, "exec stdout %q, want \"ran\\n\"", result.stdout)
		}
		code := exitCodeOf(t, exitCh)
		if code != 3 {
			t.Fatalf("init exit %d, want 3", code)
		}
		deleteTask(t, s.ctx, task, code)
		if s.runtime != harness.TeachRuntime {
			return
		}
		// The init exits the moment the exec has run: the exec's
		// TaskExit must still come first.
		assertShimEventOrder(t, s)
		// The pidfds were taken, not given up for attribution by pid.
		for _, process := range []string{"", "late-exec"} {
			var lines []string
			harness.WaitFor(s.settleTimeout(), func() error {
				if lines = attributionLines(s, id, process); len(lines) == 0 {
					return fmt.Errorf("no attribution line yet")
				}
				return nil
			})
			if text := strings.Join(lines, "\n"); !strings.Contains(text, attributedByPidfd) {
				t.Errorf("the shim's log for process %q of %s says:\n%s\nwant %q", process, id, text, attributedByPidfd)
			}
		}
	})
}

// A runc that connects and never sends fails the exec, and then the
// create, with an error that names the pidfd; the exec's process is
// killed, the failed container leaves nothing, and the shim's folder of
// pidfd sockets is empty, then gone with the shim.
func TestPidfdNeverSent(t *testing.T) {
	forEachDaemonAndRuntime(t, func(t *testing.T, s *session) {
		t.Run("exec", func(t *testing.T) { pidfdNeverSentOnExec(t, s) })
		t.Run("create", func(t *testing.T) { pidfdNeverSentOnCreate(t, s) })
	})
}

func pidfdNeverSentOnExec(t *testing.T, s *session) {
	silent := harness.PidfdNeverSent(t, "exec")
	container := s.newContainer(t, "pidfd-never-exec", []string{"sleep", "1000"},
		client.WithRuntime(s.runtime, &options.Options{BinaryName: silent.Path}))
	task, _ := s.startTask(t, container, &stdio{})
	shimPID, err := harness.ParentPID(int(task.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	if s.runtime != harness.TeachRuntime {
		result, err := runExec(s, task, "silent", execSpec(t, s, container, "sh", "-c", "exit 5"), "")
		t.Logf("stock runc shim (no pidfd socket): exec: %+v, %v", result, err)
		return
	}
	// A process that would run until killed.
	_, err = runExec(s, task, "silent", execSpec(t, s, container, "sleep", "1000"), "")
	if err == nil || !strings.Contains(err.Error(), "sent no pidfd") {
		t.Fatalf("exec whose runc sent no pidfd: %v; want an error saying so", err)
	}
	t.Logf("exec: %v", err)
	// The exec's process was started by runc, and killed by the shim.
	harness.Eventually(t, s.settleTimeout(), "only the init left in the container", func() error {
		pids, err := task.Pids(s.ctx)
		if err != nil {
			return err
		}
		if len(pids) != 1 || pids[0].Pid != task.Pid() {
			return fmt.Errorf("the container's processes: %v", pids)
		}
		return nil
	})
	folder := filepath.Dir(silent.SocketPath())
	if want := fmt.Sprint(shimPID); filepath.Base(folder) != want {
		t.Fatalf("the pidfd socket %s is not in the shim's folder (shim %s)", silent.SocketPath(), want)
	}
	if entries, err := os.ReadDir(folder); err != nil || len(entries) > 0 {
		t.Errorf("the shim's pidfd folder %s holds %v (%v); want it empty", folder, entries, err)
	}
}

func pidfdNeverSentOnCreate(t *testing.T, s *session) {
	const id = "pidfd-never-create"
	silent := harness.PidfdNeverSent(t, "create")
	container := s.newContainer(t, id, []string{"sleep", "1000"},
		client.WithRuntime(s.runtime, &options.Options{BinaryName: silent.Path}))
	task, err := s.createTask(container, &stdio{})
	if s.runtime != harness.TeachRuntime {
		t.Logf("stock runc shim (no pidfd socket): create: %v", err)
		if task != nil {
			task.Delete(s.ctx, client.WithProcessKill)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "sent no pidfd") {
		if task != nil {
			task.Delete(s.ctx, client.WithProcessKill)
		}
		t.Fatalf("create whose runc sent no pidfd: %v; want an error saying so", err)
	}
	t.Logf("create: %v", err)
	s.daemon.AssertNoContainerTraces(t, s.ns, id)
	folder := filepath.Dir(silent.SocketPath())
	harness.Eventually(t, s.settleTimeout(), "the pidfd folder of the failed task's shim to go", func() error {
		return harness.PathGone(folder)
	})
}

// The pidfd socket is in a folder only root may enter: a process of
// another user cannot connect to it, root can.
func TestPidfdSocketIsRootsAlone(t *testing.T) {
	probe := probeBinary(t)
	forEachDaemonWithTeach(t, func(t *testing.T, s *session) {
		held := harness.PidfdHeld(t)
		container := s.newContainer(t, "pidfd-access", []string{"sleep", "1000"},
			client.WithRuntime(s.runtime, &options.Options{BinaryName: held.Path}))
		created := make(chan error, 1)
		var task client.Task
		go func() {
			var err error
			task, err = s.createTask(container, &stdio{})
			created <- err
		}()
		// runc create waits for Release, connected to the socket.
		harness.Eventually(t, time.Minute, "runc create to connect to the pidfd socket", func() error {
			if held.SocketPath() == "" {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		socket := held.SocketPath()
		for _, path := range []string{socket, filepath.Dir(socket), filepath.Dir(filepath.Dir(socket))} {
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: mode %04o uid %d", path, st.Mode&0o7777, st.Uid)
			if path != socket && (st.Uid != 0 || st.Mode&0o077 != 0) {
				t.Errorf("%s: mode %04o owner %d; want root's alone", path, st.Mode&0o7777, st.Uid)
			}
		}
		asNobody := runProbe(t, probe, socket, &syscall.Credential{Uid: 65534, Gid: 65534})
		asRoot := runProbe(t, probe, socket, nil)
		t.Logf("connect as nobody: %s; as root: %s", asNobody, asRoot)
		if asNobody == "connected" {
			t.Errorf("nobody connected to the pidfd socket %s", socket)
		}
		if asRoot != "connected" {
			t.Errorf("root could not connect to the pidfd socket %s: %s", socket, asRoot)
		}
		held.Release()
		if err := <-created; err != nil {
			t.Fatalf("create after the probes: %v", err)
		}
		if err := task.Start(s.ctx); err != nil {
			t.Fatal(err)
		}
		shimPID, err := harness.ParentPID(int(task.Pid()))
		if err != nil {
			t.Fatal(err)
		}
		pidfds, _ := harness.PidfdTargets(shimPID)
		if !slices.Contains(pidfds, int(task.Pid())) {
			t.Errorf("the shim's pidfds name %v, not the init %d", pidfds, task.Pid())
		}
	})
}
