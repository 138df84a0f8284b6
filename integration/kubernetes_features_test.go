package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// containerd's CRI allows some pod and container settings only on a runtime
// handler whose shim reports it supports them: `containerd-shim-teach-v2
// -info` answers with the features of its runc (shim/features.go), which
// containerd reads for each handler. Without them, the CRI refuses a pod
// with a user namespace of its own (Kubernetes' hostUsers: false) and a
// recursive read-only mount (recursiveReadOnly: Enabled) as unsupported.
//
// TestKubernetesRuntimeFeatures/containerd-<version>/<handler>/<case>, on
// the pinned 2.x release (1.7's CRI asks no shim for its features).
func TestKubernetesRuntimeFeatures(t *testing.T) {
	release := harness.ContainerdReleases(t)[0]
	t.Run("containerd-"+release.Version, func(t *testing.T) {
		harness.ShimBinary(t)
		d := harness.StartContainerdWith(t, release.Version, harness.Options{CRI: true, RuntimeHandlers: criHandlers})
		for i, row := range criRows {
			t.Run(row.name, func(t *testing.T) {
				s := &podSession{d: d, handler: row.handler, shim: row.shim, dir: t.TempDir()}
				// Each row's pod maps its ids to a range of host ids of its own.
				hostIDs := uint32(i+1) << 20
				t.Run("user-namespace", func(t *testing.T) { podInUserNamespace(t, s, hostIDs) })
				t.Run("recursive-read-only", func(t *testing.T) { podRecursiveReadOnlyMount(t, s) })
			})
		}
	})
}

// podInUserNamespace: a pod whose root is an unprivileged host id. Inside,
// its container is root and owns its files (containerd maps the rootfs with
// an idmapped mount); seen from the host, it runs as hostIDs.
func podInUserNamespace(t *testing.T, s *podSession, hostIDs uint32) {
	const length = 65536
	config := s.d.NewPodConfig(t, "userns-"+s.handler)
	mapping := []harness.IDMapping{{HostID: hostIDs, ContainerID: 0, Length: length}}
	config.Linux.SecurityContext.NamespaceOptions.UsernsOptions = &harness.UsernsOptions{UIDs: mapping, GIDs: mapping}
	pod, id := s.runPodWithContainer(t, config, harness.ContainerConfig{
		Metadata: harness.ContainerMetadata{Name: "mapped"},
		Image:    harness.ImageSpec{Image: harness.BusyboxImage},
		Command:  loopUntilTERM("mapped"),
		LogPath:  "mapped.log",
		Linux:    &harness.ContainerLinux{SecurityContext: config.Linux.SecurityContext},
	})
	defer s.removePod(t, pod)

	want := fmt.Sprintf("0 %d %d", hostIDs, length)
	if got := s.execSync(t, id, "cat", "/proc/self/uid_map"); got != want {
		t.Errorf("uid_map inside: %q, want %q", got, want)
	}
	if got := s.execSync(t, id, "sh", "-c", "id -u; stat -c %u:%g /bin/sh"); got != "0 0:0" {
		t.Errorf("inside: uid, and owner of /bin/sh: %q, want \"0 0:0\" (root, owning its rootfs)", got)
	}
	pid := s.inspect(t, "inspect", id).Info.Pid
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	if uid := statusField(string(status), "Uid:"); uid != fmt.Sprint(hostIDs) {
		t.Errorf("the container's process %d runs as host uid %s, want %d", pid, uid, hostIDs)
	}
}

// podRecursiveReadOnlyMount: a host folder with another mount inside it,
// given read-only with recursiveReadOnly. A plain read-only bind leaves the
// mount inside writable; here neither may be written to.
func podRecursiveReadOnlyMount(t *testing.T, s *podSession) {
	host := t.TempDir()
	inner := filepath.Join(host, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", inner, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a tmpfs inside the shared folder: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(inner, unix.MNT_DETACH) })

	pod, id := s.runPodWithContainer(t, s.d.NewPodConfig(t, "rro-"+s.handler), harness.ContainerConfig{
		Metadata: harness.ContainerMetadata{Name: "reader"},
		Image:    harness.ImageSpec{Image: harness.BusyboxImage},
		Command:  loopUntilTERM("reader"),
		LogPath:  "reader.log",
		Mounts:   []harness.CRIMount{{ContainerPath: "/data", HostPath: host, ReadOnly: true, RecursiveReadOnly: true}},
	})
	defer s.removePod(t, pod)

	for _, path := range []string{"/data/file", "/data/inner/file"} {
		r := s.d.Crictl(t, "exec", "--sync", id, "touch", path)
		if r.ExitCode == 0 || !strings.Contains(string(r.Stdout)+string(r.Stderr), "Read-only file system") {
			t.Errorf("touch %s in the container: %s\nwant it refused: Read-only file system", path, r)
		}
	}
	if got := s.execSync(t, id, "sh", "-c", "grep ' /data/inner ' /proc/self/mountinfo | cut -d' ' -f6"); !strings.HasPrefix(got, "ro") {
		t.Errorf("options of /data/inner inside: %q, want ro", got)
	}
}

// runPodWithContainer runs a pod with config through the session's handler
// and one container in it, and returns their ids.
func (s *podSession) runPodWithContainer(t *testing.T, pod harness.PodConfig, container harness.ContainerConfig) (podID, containerID string) {
	t.Helper()
	dir := t.TempDir()
	podConfig := harness.WriteJSON(t, filepath.Join(dir, "pod.json"), pod)
	podID = s.d.MustCrictl(t, "runp", "--runtime", s.handler, podConfig)
	containerID = s.d.MustCrictl(t, "create", podID, harness.WriteJSON(t, filepath.Join(dir, "container.json"), container), podConfig)
	s.d.MustCrictl(t, "start", containerID)
	assertShimBinary(t, s.inspect(t, "inspect", containerID).Info.Pid, s.shim)
	return podID, containerID
}

func (s *podSession) removePod(t *testing.T, pod string) {
	t.Helper()
	s.d.MustCrictl(t, "stopp", pod)
	s.d.MustCrictl(t, "rmp", pod)
}

// execSync runs a command in a container through `crictl exec -s` and
// returns its output, words joined by single spaces.
func (s *podSession) execSync(t *testing.T, id string, command ...string) string {
	t.Helper()
	out := s.d.MustCrictl(t, append([]string{"exec", "--sync", id}, command...)...)
	return strings.Join(strings.Fields(out), " ")
}

// statusField is the first value of a /proc/<pid>/status line.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				return fields[0]
			}
		}
	}
	return ""
}
