package inspect

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// defaultRuncRoot is where the shim has runc keep its state, one folder per
// containerd namespace, unless the runtime options name another Root.
const defaultRuncRoot = "/run/containerd/runc"

// runcTimeout bounds `runc state`, which takes runc's lock on the container.
const runcTimeout = 10 * time.Second

// bundleOptions are the runc options the shim saved in the bundle
// (options.json): the runc binary and its root, when the runtime's
// configuration names them.
type bundleOptions struct {
	BinaryName string `json:"binary_name"`
	Root       string `json:"root"`
}

// runcState asks runc, the way the shim would, what it knows about the
// container.
func runcState(c *container) RuncState {
	opts := bundleOptions{BinaryName: "runc", Root: defaultRuncRoot}
	if data, err := os.ReadFile(filepath.Join(c.bundle, "options.json")); err == nil {
		json.Unmarshal(data, &opts) // unreadable options leave the defaults
		if opts.BinaryName == "" {
			opts.BinaryName = "runc"
		}
		if opts.Root == "" {
			opts.Root = defaultRuncRoot
		}
	}
	args := []string{"--root", filepath.Join(opts.Root, c.namespace), "state", c.id}
	st := RuncState{Command: opts.BinaryName + " " + strings.Join(args, " ")}
	ctx, cancel := context.WithTimeout(context.Background(), runcTimeout)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, opts.BinaryName, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		st.Error = fmt.Sprintf("%v: %s", err, strings.TrimSpace(stderr.String()))
		return st
	}
	if err := parseRuncState(out, &st); err != nil {
		st.Error = err.Error()
	}
	return st
}

// parseRuncState reads the JSON `runc state` prints.
func parseRuncState(data []byte, st *RuncState) error {
	var state struct {
		PID     int    `json:"pid"`
		Status  string `json:"status"`
		Bundle  string `json:"bundle"`
		Rootfs  string `json:"rootfs"`
		Created string `json:"created"`
	}
	if err := json.Unmarshal(data, &state); err != nil {
		return fmt.Errorf("runc state printed no state: %w", err)
	}
	st.PID, st.Status, st.Bundle, st.Rootfs, st.Created = state.PID, state.Status, state.Bundle, state.Rootfs, state.Created
	return nil
}
