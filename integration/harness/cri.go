// This file is containerd's Kubernetes API (CRI) for the tests: its
// configuration, the pod sandbox image, crictl pointed at the daemon, and the
// removal of what pods leave.
//
//	d := harness.StartContainerdWith(t, "v2.4.2", harness.Options{CRI: true,
//		RuntimeHandlers: []harness.RuntimeHandler{{Name: "teach", RuntimeType: harness.TeachRuntime}}})
//	d.Crictl(t, "runp", "--runtime", "teach", podJSON)
//
// The pods run on the host network: a pod needs a CNI plugin only for a
// network namespace of its own, and this machine has loopback only.

package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

const (
	// CRINamespace is the containerd namespace the CRI plugin keeps pods,
	// containers and images in. It is fixed: every CRI daemon on a machine
	// uses it, so runc's state folder /run/containerd/runc/k8s.io is shared
	// and the cleanup removes only the ids its own daemon knew.
	CRINamespace = "k8s.io"

	// PauseImage is the sandbox image the CRI daemons are configured with,
	// built offline from integration/cmd/pause. The "localhost/" name can
	// never be mistaken for registry.k8s.io/pause, nor pulled.
	PauseImage = "localhost/pause:teach"

	pausePackage = "./integration/cmd/pause"

	// crictlTimeout bounds one crictl command, as ctrTimeout bounds ctr.
	crictlTimeout = 90 * time.Second
)

// RuntimeHandler is one entry of the CRI plugin's runtimes table: what
// `crictl runp --runtime <Name>` and a Kubernetes RuntimeClass's `handler`
// name, and the containerd runtime that serves it.
type RuntimeHandler struct {
	Name        string
	RuntimeType string
	// Options is the handler's options table, as a user writes it in
	// containerd's config (BinaryName, Root, SystemdCgroup...).
	Options map[string]string
}

// criState is what the CRI cleanup needs to know across its two steps.
type criState struct {
	mu  sync.Mutex
	ids []string // containers and sandboxes seen in CRINamespace
}

// PodCgroupParent is the cgroup parent of this daemon's pods: each daemon
// has its own, so that removing it removes only this daemon's cgroups. The
// kubelet passes its kubepods/... parent the same way.
func (d *Containerd) PodCgroupParent() string {
	return "/teach-pods-" + filepath.Base(d.Dir)
}

// PodLogDir is where the CRI plugin writes the logs of this daemon's pods'
// containers; `crictl logs` reads them back.
func (d *Containerd) PodLogDir() string { return d.path("pod-logs") }

func (d *Containerd) crictlConfigPath() string { return d.path("crictl.yaml") }

// criTOML is the CRI part of the daemon's configuration; empty when CRI is
// off. The table names differ between the two generations:
//   - 2.x (config version 3) splits the plugin: images (with the sandbox
//     image under pinned_images), runtime (runtimes, CNI) and the gRPC
//     server;
//   - 1.7 (config version 2) has one table, io.containerd.grpc.v1.cri.
//
// Every folder the plugin would read from or write to outside the daemon's
// root and state is named here, under the daemon's folder.
func (d *Containerd) criTOML() string {
	if !d.options.CRI {
		return ""
	}
	var b strings.Builder
	cniBin, cniConf := d.path("cni/bin"), d.path("cni/net.d")
	if d.Release.ConfigVersion >= 3 {
		images, runtime := `plugins."io.containerd.cri.v1.images"`, `plugins."io.containerd.cri.v1.runtime"`
		fmt.Fprintf(&b, "\n[%s]\n  snapshotter = \"overlayfs\"\n", images)
		fmt.Fprintf(&b, "  [%s.pinned_images]\n    sandbox = %q\n", images, PauseImage)
		fmt.Fprintf(&b, "\n[%s]\n", runtime)
		// This machine lacks CAP_SYS_RESOURCE: the CRI plugin must not ask
		// for an oom_score_adj below the daemon's own.
		fmt.Fprintf(&b, "  restrict_oom_score_adj = true\n")
		fmt.Fprintf(&b, "  cdi_spec_dirs = [%q]\n", d.path("cdi"))
		fmt.Fprintf(&b, "  [%s.cni]\n    bin_dirs = [%q]\n    conf_dir = %q\n", runtime, cniBin, cniConf)
		writeRuntimeHandlers(&b, runtime+".containerd.runtimes", d.options.RuntimeHandlers)
		fmt.Fprintf(&b, "\n[plugins.\"io.containerd.grpc.v1.cri\"]\n")
		fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
		return b.String()
	}
	cri := `plugins."io.containerd.grpc.v1.cri"`
	fmt.Fprintf(&b, "\n[%s]\n", cri)
	fmt.Fprintf(&b, "  sandbox_image = %q\n", PauseImage)
	fmt.Fprintf(&b, "  restrict_oom_score_adj = true\n")
	fmt.Fprintf(&b, "  enable_cdi = false\n")
	fmt.Fprintf(&b, "  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n")
	fmt.Fprintf(&b, "  [%s.cni]\n    bin_dir = %q\n    conf_dir = %q\n", cri, cniBin, cniConf)
	fmt.Fprintf(&b, "  [%s.containerd]\n    snapshotter = \"overlayfs\"\n", cri)
	writeRuntimeHandlers(&b, cri+".containerd.runtimes", d.options.RuntimeHandlers)
	return b.String()
}

// writeRuntimeHandlers writes the runtimes table. It names the built-in
// "runc" handler too: containerd 1.7 replaces its default table with the
// one in the file, and without "runc" (default_runtime_name) the CRI
// plugin refuses to load.
func writeRuntimeHandlers(b *strings.Builder, table string, handlers []RuntimeHandler) {
	runc := RuntimeHandler{Name: "runc", RuntimeType: RuncRuntime}
	for _, h := range append([]RuntimeHandler{runc}, handlers...) {
		fmt.Fprintf(b, "  [%s.%s]\n    runtime_type = %q\n", table, h.Name, h.RuntimeType)
		if len(h.Options) == 0 {
			continue
		}
		fmt.Fprintf(b, "    [%s.%s.options]\n", table, h.Name)
		keys := make([]string, 0, len(h.Options))
		for k := range h.Options {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(b, "      %s = %q\n", k, h.Options[k])
		}
	}
}

// prepareCRI makes the folders the configuration names and crictl's config,
// before the daemon starts.
func (d *Containerd) prepareCRI() error {
	for _, dir := range []string{d.path("cni/bin"), d.path("cni/net.d"), d.path("cdi"), d.PodLogDir()} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	// crictl reads /etc/crictl.yaml unless told otherwise; a file of our
	// own points it at this daemon and nothing else.
	config := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: %d\n",
		d.Address, d.Address, int(crictlTimeout/time.Second)-10)
	return os.WriteFile(d.crictlConfigPath(), []byte(config), 0o644)
}

// CRIContext is a context in the CRI plugin's namespace, for looking at
// what it made through the Go client.
func CRIContext() context.Context {
	return namespaces.WithNamespace(context.Background(), CRINamespace)
}

// CrictlCommand is crictl pointed at this daemon.
func (d *Containerd) CrictlCommand(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(d.crictlDir, "crictl"), append([]string{"--config", d.crictlConfigPath()}, args...)...)
	cmd.Env = d.env
	return cmd
}

// Crictl runs crictl with args and returns what it printed and its exit
// code; only a failure to run it at all fails the test.
func (d *Containerd) Crictl(t testing.TB, args ...string) CommandResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crictlTimeout)
	defer cancel()
	return RunCommand(t, ctx, d.CrictlCommand(ctx, args...), nil)
}

// MustCrictl is Crictl for a command that has to succeed; it returns its
// stdout without the trailing newline (crictl prints ids that way).
func (d *Containerd) MustCrictl(t testing.TB, args ...string) string {
	t.Helper()
	result := d.Crictl(t, args...)
	if result.ExitCode != 0 {
		t.Fatalf("crictl %s: exit code %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), result.ExitCode, result.Stdout, result.Stderr)
	}
	return strings.TrimSpace(string(result.Stdout))
}

var (
	pauseOnce    sync.Once
	pauseArchive []byte
	pauseErr     error
)

// PauseBinEnv names a pause binary built beforehand, for a machine without
// Go: the guest of `make test-cgroup2` gets one in its initramfs.
const PauseBinEnv = "TEACH_PAUSE_BIN"

// PauseArchive returns the OCI archive of PauseImage: integration/cmd/pause
// built static, once per test binary, or $TEACH_PAUSE_BIN.
func PauseArchive(t testing.TB) []byte {
	t.Helper()
	root := RepoRoot(t)
	pauseOnce.Do(func() { pauseArchive, pauseErr = buildPauseArchive(root, os.Getenv(PauseBinEnv)) })
	if pauseErr != nil {
		t.Fatalf("build the pause image: %v", pauseErr)
	}
	return pauseArchive
}

func buildPauseArchive(repoRoot, prebuilt string) ([]byte, error) {
	binary := prebuilt
	if binary == "" {
		dir, err := os.MkdirTemp("", "teach-pause-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "pause")
		build := exec.Command("go", "build", "-trimpath", "-o", binary, pausePackage)
		build.Dir = repoRoot
		// Static: the image holds nothing but this one file.
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", pausePackage, err, out)
		}
	}
	var buf bytes.Buffer
	if err := image.WritePause(&buf, binary, PauseImage); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ImportCRIImages imports the pause and busybox images into the CRI
// plugin's namespace, unpacked, and waits until the plugin lists both (it
// learns of new images from containerd's events).
func (d *Containerd) ImportCRIImages(t testing.TB) {
	t.Helper()
	ctx := CRIContext()
	imported, err := d.Client().Import(ctx, bytes.NewReader(PauseArchive(t)))
	if err != nil {
		t.Fatalf("import pause image: %v", err)
	}
	if len(imported) != 1 {
		t.Fatalf("pause import named %v, want exactly %s", imported, PauseImage)
	}
	if err := client.NewImage(d.Client(), imported[0]).Unpack(ctx, "overlayfs"); err != nil {
		t.Fatalf("unpack pause image: %v", err)
	}
	ImportBusybox(t, ctx, d.Client())
	for _, ref := range []string{PauseImage, BusyboxImage} {
		Eventually(t, 10*time.Second, "CRI lists image "+ref, func() error {
			if r := d.Crictl(t, "inspecti", ref); r.ExitCode != 0 {
				return fmt.Errorf("crictl inspecti %s: %s", ref, r.Stderr)
			}
			return nil
		})
	}
}

// PodConfig is the part of a CRI PodSandboxConfig the tests set, in the JSON
// crictl reads (the CRI's protobuf field names).
type PodConfig struct {
	Metadata     PodMetadata       `json:"metadata"`
	LogDirectory string            `json:"log_directory"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Linux        PodLinux          `json:"linux"`
}

type PodMetadata struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	UID       string `json:"uid"`
	Attempt   int    `json:"attempt"`
}

type PodLinux struct {
	CgroupParent    string             `json:"cgroup_parent"`
	SecurityContext PodSecurityContext `json:"security_context"`
}

type PodSecurityContext struct {
	NamespaceOptions NamespaceOptions `json:"namespace_options"`
}

// NamespaceOptions: 0 is POD (the pod's own), 2 is NODE (the host's).
type NamespaceOptions struct {
	Network       int            `json:"network"`
	UsernsOptions *UsernsOptions `json:"userns_options,omitempty"`
}

// UsernsOptions gives a pod a user namespace of its own (Kubernetes'
// hostUsers: false): Mode 0 (POD), with the ids mapped.
type UsernsOptions struct {
	Mode int         `json:"mode"`
	UIDs []IDMapping `json:"uids"`
	GIDs []IDMapping `json:"gids"`
}

// IDMapping maps Length ids from ContainerID inside to HostID outside.
type IDMapping struct {
	HostID      uint32 `json:"host_id"`
	ContainerID uint32 `json:"container_id"`
	Length      uint32 `json:"length"`
}

// HostNetwork is NamespaceOptions.Network for a pod on the host's network:
// no network namespace, so no CNI plugin.
const HostNetwork = 2

// NewPodConfig is the config of a host-network pod of this daemon: logs in
// PodLogDir, cgroups under PodCgroupParent. It names no hostname: runc
// refuses to set one without a UTS namespace of the pod's own, and a
// host-network pod shares the host's.
func (d *Containerd) NewPodConfig(t testing.TB, name string) PodConfig {
	t.Helper()
	uid := make([]byte, 8)
	if _, err := rand.Read(uid); err != nil {
		t.Fatal(err)
	}
	return PodConfig{
		Metadata:     PodMetadata{Name: name, Namespace: "default", UID: hex.EncodeToString(uid)},
		LogDirectory: filepath.Join(d.PodLogDir(), name),
		Linux: PodLinux{
			CgroupParent:    d.PodCgroupParent(),
			SecurityContext: PodSecurityContext{NamespaceOptions: NamespaceOptions{Network: HostNetwork}},
		},
	}
}

// ContainerConfig is the part of a CRI ContainerConfig the tests set.
type ContainerConfig struct {
	Metadata ContainerMetadata `json:"metadata"`
	Image    ImageSpec         `json:"image"`
	Command  []string          `json:"command,omitempty"`
	Args     []string          `json:"args,omitempty"`
	LogPath  string            `json:"log_path"` // relative to the pod's log_directory
	Stdin    bool              `json:"stdin,omitempty"`
	Tty      bool              `json:"tty,omitempty"`
	Mounts   []CRIMount        `json:"mounts,omitempty"`
	Linux    *ContainerLinux   `json:"linux,omitempty"`
}

// ContainerLinux: a container in a pod with a user namespace names the
// same namespace options as its pod, as the kubelet sends them.
type ContainerLinux struct {
	SecurityContext PodSecurityContext `json:"security_context"`
}

// CRIMount is a host folder in a container. RecursiveReadOnly (Kubernetes'
// recursiveReadOnly: Enabled) makes the mounts below it read-only too; it
// needs ReadOnly.
type CRIMount struct {
	ContainerPath     string `json:"container_path"`
	HostPath          string `json:"host_path"`
	ReadOnly          bool   `json:"readonly"`
	RecursiveReadOnly bool   `json:"recursive_read_only"`
}

type ContainerMetadata struct {
	Name string `json:"name"`
}

type ImageSpec struct {
	Image string `json:"image"`
}

// WriteJSON writes v as a JSON file at path and returns path, for the
// crictl commands that read their configs from files.
func WriteJSON(t testing.TB, path string, v any) string {
	t.Helper()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// removePods removes, through the CRI while the daemon runs, every pod and
// container a test left, the way a kubelet would, and records the ids the
// daemon knew for removePodLeftovers.
func (d *Containerd) removePods(t testing.TB) {
	if !d.Running() {
		d.recordPodIDs(t)
		return
	}
	for _, args := range [][]string{{"rmp", "--force", "--all"}, {"rm", "--force", "--all"}} {
		ctx, cancel := context.WithTimeout(context.Background(), crictlTimeout)
		if r := RunCommand(t, ctx, d.CrictlCommand(ctx, args...), nil); r.ExitCode != 0 {
			t.Logf("cleanup: crictl %s: %s", strings.Join(args, " "), r.Stderr)
		}
		cancel()
	}
	d.recordPodIDs(t)
	ctx, cancel := context.WithTimeout(CRIContext(), cleanupTimeout)
	defer cancel()
	containers, _ := d.Client().Containers(ctx)
	for _, c := range containers {
		t.Logf("cleanup: CRI left container %s; deleting it", c.ID())
		if err := deleteContainer(ctx, c); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}

// recordPodIDs remembers the ids of every container (sandboxes included)
// in CRINamespace: from the daemon while it runs, and from its bundles.
func (d *Containerd) recordPodIDs(t testing.TB) {
	var ids []string
	if d.Running() {
		ctx, cancel := context.WithTimeout(CRIContext(), cleanupTimeout)
		defer cancel()
		if containers, err := d.Client().Containers(ctx); err == nil {
			for _, c := range containers {
				ids = append(ids, c.ID())
			}
		}
	}
	bundles, _ := os.ReadDir(filepath.Join(d.StateDir, "io.containerd.runtime.v2.task", CRINamespace))
	for _, b := range bundles {
		ids = append(ids, b.Name())
	}
	d.cri.mu.Lock()
	d.cri.ids = append(d.cri.ids, ids...)
	d.cri.mu.Unlock()
}

// removePodLeftovers runs after the daemon stopped and its shims were
// killed: runc containers that outlived them are force-deleted, by id only,
// since other daemons' pods share runc's k8s.io folder (and a handler's own
// Root, when its options name one); then the daemon's pod cgroups go.
func (d *Containerd) removePodLeftovers(t testing.TB) {
	d.cri.mu.Lock()
	ids := d.cri.ids
	d.cri.mu.Unlock()
	roots := []string{filepath.Join(RuncRoot, CRINamespace)}
	for _, h := range d.options.RuntimeHandlers {
		if root := h.Options["Root"]; root != "" {
			roots = append(roots, filepath.Join(root, CRINamespace))
		}
	}
	for _, root := range roots {
		for _, id := range ids {
			if exists, _ := pathExists(filepath.Join(root, id)); !exists {
				continue
			}
			out, err := exec.Command(d.runcPath, "--root", root, "delete", "--force", id).CombinedOutput()
			if err != nil {
				t.Logf("cleanup: runc --root %s delete --force %s: %v %s", root, id, err, out)
			} else {
				t.Logf("cleanup: removed leftover runc container %s/%s", root, id)
			}
		}
	}
	removeCgroups(strings.TrimPrefix(d.PodCgroupParent(), "/"))
}

// PodCgroups lists the cgroup folders left under this daemon's pod cgroup
// parent, in every hierarchy: empty once every pod is gone.
func (d *Containerd) PodCgroups() []string {
	parent := strings.TrimPrefix(d.PodCgroupParent(), "/")
	matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent, "*"))
	unified, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent, "*"))
	var dirs []string
	for _, m := range append(matches, unified...) {
		if isDir(m) {
			dirs = append(dirs, m)
		}
	}
	return dirs
}
