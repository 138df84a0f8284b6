package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/teach/containerd-shim-teach-v2/integration/harness"
)

// measureShimStart times `<shim> start`, run the way containerd 2.x runs it
// (core/runtime/v2/command.go): the same flags and environment, the
// bootstrap parameters as protobuf on stdin, the bundle as the working
// folder, its `log` FIFO opened for reading first. The time is from exec to
// the exit of `start` with the address on stdout: when containerd could
// connect. The shim server it launched is then shut down through its own
// API, as containerd does when a task is deleted.
func (s *session) measureShimStart(warmup, iterations int) map[string]durations {
	return s.interleave("shim start", warmup, iterations, func(shim shimUnderTest, round int) (time.Duration, error) {
		return s.shimStart(shim, fmt.Sprintf("start-%s-%d", shim.label, round))
	})
}

func (s *session) shimStart(shimUT shimUnderTest, id string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
	defer cancel()
	bundle := s.path(id)
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return 0, err
	}
	defer os.RemoveAll(bundle)
	// The stock shim's start reads the bundle's config.json for a group
	// annotation; containerd always writes one.
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion":"1.2.0"}`), 0o600); err != nil {
		return 0, err
	}
	shimLog, err := fifo.OpenFifo(ctx, filepath.Join(bundle, "log"), unix.O_RDONLY|unix.O_CREAT|unix.O_NONBLOCK, 0o700)
	if err != nil {
		return 0, err
	}
	defer shimLog.Close()
	go io.Copy(io.Discard, shimLog)

	ns := s.ns
	containerd := filepath.Join(harness.ToolDir(s.tb, "containerd"), "containerd")
	params, err := proto.Marshal(&bootapi.BootstrapParams{
		InstanceID:             id,
		Namespace:              ns,
		LogLevel:               bootapi.LogLevel_LOG_LEVEL_INFO,
		ContainerdVersion:      s.daemon.Release.Version,
		ContainerdGrpcAddress:  s.daemon.Address,
		ContainerdTtrpcAddress: s.daemon.TTRPCAddress,
		ContainerdBinary:       containerd,
	})
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, shimUT.binary,
		"-namespace", ns, "-address", s.daemon.Address, "-publish-binary", containerd, "-id", id, "start")
	cmd.Dir = bundle
	cmd.Env = append(os.Environ(),
		"GOMAXPROCS=2",
		"MAX_SHIM_VERSION=2",
		"TTRPC_ADDRESS="+s.daemon.TTRPCAddress,
		"GRPC_ADDRESS="+s.daemon.Address,
		"NAMESPACE="+ns,
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stdin = bytes.NewReader(params)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	begin := time.Now()
	err = cmd.Run()
	took := time.Since(begin)
	if err != nil {
		return 0, fmt.Errorf("%s start: %v: %s", shimUT.label, err, stderr.Bytes())
	}
	var result bootapi.BootstrapResult
	if err := proto.Unmarshal(stdout.Bytes(), &result); err != nil || result.Address == "" {
		return 0, fmt.Errorf("%s start answered %q: %v", shimUT.label, stdout.Bytes(), err)
	}
	if err := shutdownShim(ctx, result.Address, id); err != nil {
		return 0, fmt.Errorf("%s: %w", shimUT.label, err)
	}
	return took, nil
}

// shutdownShim asks an idle shim server for its pid and to shut down, waits
// for it to exit, and removes its socket if the shim left it (the stock
// shim's server leaves socket removal to containerd).
func shutdownShim(ctx context.Context, address, id string) error {
	conn, err := shim.AnonDialer(address, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connect to the shim at %s: %w", address, err)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	tasks := taskAPI.NewTTRPCTaskClient(client)
	connected, err := tasks.Connect(ctx, &taskAPI.ConnectRequest{ID: id})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// The shim may exit before it answers; its pid going away is the answer.
	tasks.Shutdown(ctx, &taskAPI.ShutdownRequest{ID: id})
	pid := int(connected.ShimPid)
	if err := harness.WaitFor(stepTimeout, func() error {
		if harness.IsAlive(pid) {
			return fmt.Errorf("shim %d still runs after Shutdown", pid)
		}
		return nil
	}); err != nil {
		syscall.Kill(pid, syscall.SIGKILL)
		return err
	}
	path := strings.TrimPrefix(address, "unix://")
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
