package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	runc "github.com/containerd/go-runc"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/teach/containerd-shim-teach-v2/process"
	"github.com/teach/containerd-shim-teach-v2/version"
)

// RuntimeName is the name containerd users ask for. containerd turns
// io.containerd.teach.v2 into the binary name containerd-shim-teach-v2 and
// looks for it on its PATH.
const RuntimeName = "io.containerd.teach.v2"

// defaultSocketDir is where shim sockets live unless containerd names another
// folder (containerd 2.3+ may, in the bootstrap parameters).
const defaultSocketDir = "/run/containerd/s"

// manager does the work of the binary's short-lived invocations: `start`
// (launch the long-lived shim), `delete` (clean up after a dead one) and
// `-info`.
type manager struct{}

// Start launches the long-lived shim server for a container and returns the
// address containerd should connect to; or, for a container of a group whose
// shim runs, joins that shim and returns its address (group.go).
func (manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (*bootapi.BootstrapResult, error) {
	socketDir := defaultSocketDir
	if params.SocketDir != nil && *params.SocketDir != "" {
		socketDir = *params.SocketDir
	}
	group, grouped := shimGroup(".", params.InstanceID) // start runs in the bundle
	if !grouped {
		// An ungrouped shim's socket is named after this start: a
		// container id is reused as soon as its task is deleted, and the
		// old shim, while it exits, removes its socket — which must not
		// be the new one's.
		name := fmt.Sprintf("%s@%d.%d", group, os.Getpid(), time.Now().UnixNano())
		return launchServer(ctx, params, group, socketAddress(socketDir, params.ContainerdGrpcAddress, params.Namespace, name), false)
	}
	// A grouped shim's socket is named after its group, so the group's
	// other containers find it.
	address := socketAddress(socketDir, params.ContainerdGrpcAddress, params.Namespace, group)
	lock, err := lockGroup(address)
	if err != nil {
		return nil, err
	}
	defer lock.Unlock() // once the server is launched, or the attempt undone
	err = joinGroupShim(ctx, address, params.InstanceID)
	if errors.Is(err, errNoGroupShim) {
		return launchServer(ctx, params, group, address, true)
	}
	if err != nil {
		return nil, err
	}
	// containerd connects to the group's shim and calls Create there.
	if err := writeBundleFile("address", []byte(address)); err != nil {
		return nil, fmt.Errorf("write shim address into bundle: %w", err)
	}
	return &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}, nil
}

// launchServer creates the socket at address and starts the shim server on
// it.
//
// The server must not be containerd's child: it runs in a session of its own
// (setsid), so it survives containerd stopping, and is re-parented to PID 1
// (or the nearest subreaper) once this `start` process exits.
func launchServer(ctx context.Context, params *bootapi.BootstrapParams, group, address string, grouped bool) (*bootapi.BootstrapResult, error) {
	listener, err := newSocket(address)
	if err != nil {
		return nil, err
	}
	// The server keeps serving the socket after this process exits, so
	// closing our copy of the listener must not unlink the socket file
	// (Go's default for a listener it created).
	listener.SetUnlinkOnClose(false)
	defer listener.Close()

	cmd, err := serverCommand(params, group, address, grouped, listener)
	if err != nil {
		removeSocket(address)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		removeSocket(address)
		return nil, fmt.Errorf("start shim server: %w", err)
	}
	// The bundle is the working folder: `delete` reads "address" from it
	// to remove the socket of a shim that died.
	if err := writeBundleFile("address", []byte(address)); err != nil {
		cmd.Process.Kill()
		removeSocket(address)
		return nil, fmt.Errorf("write shim address into bundle: %w", err)
	}
	if err := adjustOOMScore(cmd.Process.Pid); err != nil {
		// The shim should die after its containers when memory runs out,
		// not before; but a kernel that refuses the change (no
		// CAP_SYS_RESOURCE) leaves a working shim.
		log.G(ctx).WithError(err).Warn("could not adjust the shim's oom_score_adj")
	}
	cmd.Process.Release()
	return &bootapi.BootstrapResult{Version: 3, Address: address, Protocol: "ttrpc"}, nil
}

// The server learns from its environment the address it serves, so that it
// can remove its own socket when it leaves, and whether the socket is a
// group's, which it then removes under the group lock.
const (
	shimAddressEnv = "TEACH_SHIM_ADDRESS"
	shimGroupedEnv = "TEACH_SHIM_GROUPED"
)

// serverCommand is the long-lived shim: this binary again, with no action. It
// inherits the listening socket as fd 3, where runServer looks for it, and
// learns containerd's event address from TTRPC_ADDRESS.
func serverCommand(params *bootapi.BootstrapParams, group, address string, grouped bool, listener *net.UnixListener) (*exec.Cmd, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	socket, err := listener.File()
	if err != nil {
		return nil, err
	}
	// -id names the shim, not a container.
	args := []string{"-namespace", params.Namespace, "-id", group, "-address", params.ContainerdGrpcAddress}
	if params.LogLevel <= bootapi.LogLevel_LOG_LEVEL_DEBUG {
		args = append(args, "-debug")
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "TTRPC_ADDRESS="+params.ContainerdTtrpcAddress, "GRPC_ADDRESS="+params.ContainerdGrpcAddress,
		shimAddressEnv+"="+address)
	if grouped {
		cmd.Env = append(cmd.Env, shimGroupedEnv+"=1")
	}
	cmd.Env = append(cmd.Env, oneProcessorEnv()...)
	cmd.ExtraFiles = []*os.File{socket}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, nil
}

// Stop is the `delete` action: containerd runs it when a shim died (or never
// answered), to clean up what the shim would have. Whatever ran in the
// container is killed by `runc delete --force`, the rootfs is unmounted, and
// containerd is told the task was killed (128 + SIGKILL).
func (manager) Stop(ctx context.Context, bundle, id string) (*taskAPI.DeleteResponse, error) {
	opts, err := loadRuncOptions(bundle)
	if err != nil {
		return nil, err
	}
	ns, _ := namespaces.Namespace(ctx)
	observer, closeJournal := cleanupJournal(bundle, ns, id)
	defer closeJournal()
	rc := process.NewRunc(process.RuncConfig{Binary: opts.BinaryName, Root: opts.Root, Namespace: ns, Bundle: bundle})
	if err := process.ForceDelete(ctx, observer, rc, id); err != nil {
		log.G(ctx).WithError(err).Warn("runc delete during shim cleanup")
	}
	if err := unmountRootfs(filepath.Join(bundle, "rootfs"), observer); err != nil {
		return nil, err
	}
	removeDeadShimSocket(ctx, bundle, id)
	pid, _ := runc.ReadPidFile(filepath.Join(bundle, "init.pid"))
	return &taskAPI.DeleteResponse{
		Pid:        uint32(pid),
		ExitStatus: 128 + uint32(unix.SIGKILL),
		ExitedAt:   protobuf.ToTimestamp(time.Now()),
	}, nil
}

// removeDeadShimSocket removes the socket a dead shim listened on, named in
// the bundle's "address" file. A socket that still answers belongs to a live
// shim (the group's, serving other containers) and stays; a group's socket is
// judged under the group lock, since a start of the group may be replacing it
// right now.
func removeDeadShimSocket(ctx context.Context, bundle, id string) {
	address, err := readAddress(filepath.Join(bundle, "address"))
	if err != nil {
		return
	}
	if _, grouped := shimGroup(bundle, id); grouped {
		lock, err := lockGroup(address)
		if err != nil {
			log.G(ctx).WithError(err).Warn("remove the dead shim's socket")
			return
		}
		defer lock.Unlock()
	}
	if shimAnswers(address) {
		return
	}
	if err := removeSocket(address); err != nil && !os.IsNotExist(err) {
		log.G(ctx).WithError(err).Warn("remove the dead shim's socket")
	}
}

// bundleFolder is the bundle of the `delete` action: named by -bundle, or the
// working folder containerd started us in.
func bundleFolder(flags launchFlags) (string, error) {
	if flags.bundle != "" {
		return flags.bundle, nil
	}
	return os.Getwd()
}

// Info is the `-info` action: containerd asks what this runtime is.
func (manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	opts, err := infoOptions(optionsR)
	if err != nil {
		return nil, err
	}
	features, err := runcFeatures(ctx, opts.BinaryName)
	if err != nil {
		return nil, err
	}
	return &types.RuntimeInfo{
		Name:     RuntimeName,
		Version:  &types.RuntimeVersion{Version: version.Version, Revision: version.Revision},
		Features: features,
	}, nil
}
