package process

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/observe"
)

// checkpointFolder is a folder that looks like one runc checkpoint filled.
func checkpointFolder(t *testing.T, dumped *dumpOptions) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, runcDescriptors), []byte(`["/dev/null","pipe:[1]","pipe:[2]"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if dumped != nil {
		if err := dumped.save(dir); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// scriptedRunc writes a stand-in for runc: it appends its arguments to
// argv.log in dir, and runs restoreScript for `runc restore` (with $pidfile
// and $workdir set from the arguments); every other command succeeds.
func scriptedRunc(t *testing.T, dir, restoreScript string) RuncConfig {
	t.Helper()
	script := `#!/bin/sh
echo "$@" >> ` + filepath.Join(dir, "argv.log") + `
pidfile= workdir= command=
while [ $# -gt 0 ]; do
	case "$1" in
	--pid-file) pidfile=$2; shift ;;
	--work-path) workdir=$2; shift ;;
	restore|delete|kill|start) [ -z "$command" ] && command=$1 ;;
	esac
	shift
done
if [ "$command" = restore ]; then
` + restoreScript + `
fi
exit 0
`
	path := filepath.Join(dir, "runc")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return RuncConfig{Binary: path, Namespace: "ns", Bundle: dir}
}

func readArgv(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "argv.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestCheckpointLifecycleStartsCreatedFromCheckpoint(t *testing.T) {
	l := NewCheckpointLifecycle()
	if l.State() != CreatedFromCheckpoint {
		t.Fatalf("state %s", l.State())
	}
	if err := l.MoveTo(Paused, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("created from checkpoint → paused: got %v, want FailedPrecondition", err)
	}
	if err := l.MoveTo(Deleted, "c1"); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("created from checkpoint → deleted must pass through an exit: got %v", err)
	}
	if err := l.MoveTo(Running, "c1"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateFromCheckpointNeedsRuncsImages(t *testing.T) {
	bundle := t.TempDir()
	_, err := CreateInit(t.Context(), InitConfig{ID: "c1", Observer: observe.Nop{}, Bundle: bundle,
		Runc:       RuncConfig{Namespace: "ns", Bundle: bundle},
		Checkpoint: &RestoreConfig{ImagePath: t.TempDir()}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), runcDescriptors) {
		t.Fatalf("a folder runc did not fill: got %v, want InvalidArgument naming %s", err, runcDescriptors)
	}
}

// A container never restored has no process: nothing to signal, no
// terminal, and Delete drops it with the unknown exit status, no pid.
func TestUnrestoredContainerIsDroppedByDelete(t *testing.T) {
	dir := t.TempDir()
	p, err := CreateInit(t.Context(), InitConfig{ID: "c1", Observer: observe.Nop{}, Bundle: dir,
		Runc:       scriptedRunc(t, dir, "exit 1"),
		Checkpoint: &RestoreConfig{ImagePath: checkpointFolder(t, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if p.State() != CreatedFromCheckpoint || p.Pid() != 0 {
		t.Fatalf("state %s, pid %d; want created from checkpoint, no pid", p.State(), p.Pid())
	}
	if err := p.Kill(t.Context(), uint32(unix.SIGKILL), false); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("kill before restore: got %v, want FailedPrecondition", err)
	}
	if err := p.Resize(80, 24); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("resize before restore: got %v, want FailedPrecondition", err)
	}
	select {
	case <-p.OutputDone():
	default:
		t.Error("a container not restored has no output to wait for")
	}
	exit, err := p.Delete(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if exit.Pid != 0 || exit.Code != unrestoredExitCode || p.State() != Deleted {
		t.Fatalf("Delete: %+v, state %s; want no pid, code %d, deleted", exit, p.State(), unrestoredExitCode)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("Exited is not closed: a Wait would never be answered")
	}
	if _, err := os.Stat(filepath.Join(dir, "argv.log")); err == nil {
		t.Errorf("dropping an unrestored container ran runc: %s", readArgv(t, dir))
	}
}

// Start runs runc restore detached, with the CRIU options the checkpoint
// was taken with, and takes the restored pid from the pid file.
func TestStartRestoresWithTheCheckpointsOptions(t *testing.T) {
	dir := t.TempDir()
	image := checkpointFolder(t, &dumpOptions{OpenTCP: true, FileLocks: true, Terminal: true, EmptyNamespaces: []string{"network"}, CgroupsMode: "soft"})
	work := filepath.Join(t.TempDir(), "work")
	// The restored process: a sleep the test ends.
	p, err := CreateInit(t.Context(), InitConfig{ID: "c1", Observer: observe.Nop{}, Bundle: dir, NoPivotRoot: true,
		Runc:       scriptedRunc(t, dir, `sleep 100 </dev/null >/dev/null 2>&1 & printf %s $! > "$pidfile"`),
		Checkpoint: &RestoreConfig{ImagePath: image, WorkPath: work}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	t.Cleanup(func() { unix.Kill(pid, unix.SIGKILL) })
	if p.State() != Running {
		t.Fatalf("after Start: %s, want running", p.State())
	}
	data, err := os.ReadFile(filepath.Join(dir, "init.pid"))
	if err != nil || strconv.Itoa(pid) != strings.TrimSpace(string(data)) {
		t.Fatalf("pid %d, pid file %q (%v)", pid, data, err)
	}
	argv := readArgv(t, dir)
	for _, want := range []string{"restore", "--image-path " + image, "--work-path " + work, "--tcp-established", "--shell-job",
		"--file-locks", "--manage-cgroups-mode soft", "--empty-ns network", "--detach", "-no-subreaper", "--no-pivot",
		"--pid-file " + filepath.Join(dir, "init.pid"), "--bundle " + dir, " c1"} {
		if !strings.Contains(argv, want) {
			t.Errorf("runc restore lacks %q: %s", want, argv)
		}
	}
	if strings.Contains(argv, "--ext-unix-sk") {
		t.Errorf("runc restore has an option the checkpoint did not: %s", argv)
	}
	if err := p.Start(t.Context()); !errdefs.IsFailedPrecondition(err) {
		t.Fatalf("a second Start: got %v, want FailedPrecondition", err)
	}
}

// A failed restore returns CRIU's reason from restore.log, removes what runc
// may have left, and leaves the container restorable.
func TestFailedRestoreReturnsCRIUsReason(t *testing.T) {
	dir := t.TempDir()
	p, err := CreateInit(t.Context(), InitConfig{ID: "c1", Observer: observe.Nop{}, Bundle: dir,
		Runc: scriptedRunc(t, dir, `echo '(00.001) Error (criu/cr-restore.c:1): no memory to restore' > "$workdir/restore.log"
echo '{"level":"error","msg":"criu failed: type RESTORE errno 0"}' >> `+filepath.Join(dir, "log.json")+`
exit 1`),
		Checkpoint: &RestoreConfig{ImagePath: checkpointFolder(t, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Start(t.Context())
	if err == nil {
		t.Fatal("the restore failed, Start did not")
	}
	for _, want := range []string{"runc restore c1: criu failed: type RESTORE errno 0", "CRIU says: (00.001) Error (criu/cr-restore.c:1): no memory to restore"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start's error lacks %q: %v", want, err)
		}
	}
	if p.State() != CreatedFromCheckpoint || p.Pid() != 0 {
		t.Errorf("after a failed restore: %s, pid %d; want still created from checkpoint", p.State(), p.Pid())
	}
	if argv := readArgv(t, dir); !strings.Contains(argv, "delete --force c1") {
		t.Errorf("runc's state for c1 was not removed: %s", argv)
	}
	if _, err := p.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestDumpOptionsRoundTrip(t *testing.T) {
	want := dumpOptions{ExternalSockets: true, EmptyNamespaces: []string{"network", "ipc"}, CgroupsMode: "strict"}
	dir := t.TempDir()
	if err := want.save(dir); err != nil {
		t.Fatal(err)
	}
	got, err := readDumpOptions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.ExternalSockets != true || strings.Join(got.EmptyNamespaces, ",") != "network,ipc" || got.CgroupsMode != "strict" || got.OpenTCP {
		t.Fatalf("read back %+v, saved %+v", got, want)
	}
	if none, err := readDumpOptions(t.TempDir()); err != nil || none.OpenTCP || len(none.EmptyNamespaces) != 0 {
		t.Fatalf("a checkpoint without the file: %+v, %v; want CRIU's defaults", none, err)
	}
}

// FuzzParseDumpOptions feeds arbitrary files to the parser of the options
// file that comes with a checkpoint (from containerd's content store): it
// must not panic, and what it accepts must only ever become CRIU options.
func FuzzParseDumpOptions(f *testing.F) {
	f.Add([]byte(`{"tcpEstablished":true,"emptyNamespaces":["network"],"cgroupsMode":"soft"}`))
	f.Add([]byte(`{"emptyNamespaces":["--image-path=/etc"]}`))
	f.Add([]byte(`{"cgroupsMode":"full --lazy-pages"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts, err := parseDumpOptions(data)
		if err != nil {
			return
		}
		cp := opts.checkpointOpts("/image", "/work")
		for _, ns := range cp.EmptyNamespaces {
			if strings.HasPrefix(ns, "-") {
				t.Fatalf("accepted a namespace that is a flag: %q", ns)
			}
		}
		if strings.ContainsAny(string(cp.Cgroups), " -=") {
			t.Fatalf("accepted cgroups mode %q", cp.Cgroups)
		}
	})
}

// The exit a Reaper delivers for a restored process is recorded with its pid.
func TestRestoredProcessExitCarriesItsPid(t *testing.T) {
	dir := t.TempDir()
	p, err := CreateInit(t.Context(), InitConfig{ID: "c1", Observer: observe.Nop{}, Bundle: dir,
		Runc:       scriptedRunc(t, dir, `sleep 100 </dev/null >/dev/null 2>&1 & printf %s $! > "$pidfile"`),
		Checkpoint: &RestoreConfig{ImagePath: checkpointFolder(t, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	unix.Kill(pid, unix.SIGKILL)
	p.SetExited(137, time.Now())
	exit, ok := p.Exit()
	if !ok || exit.Pid != pid || exit.Code != 137 || p.State() != Stopped {
		t.Fatalf("exit %+v (%v), state %s; want pid %d, code 137, stopped", exit, ok, p.State(), pid)
	}
	if _, err := p.Delete(t.Context()); err != nil {
		t.Fatal(err)
	}
}
