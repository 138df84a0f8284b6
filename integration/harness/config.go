package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Options change the daemon StartContainerdWith starts; the zero value is
// the daemon StartContainerd starts.
type Options struct {
	// CRI turns on containerd's Kubernetes API, with RuntimeHandlers next to
	// the built-in "runc" handler (cri.go).
	CRI             bool
	RuntimeHandlers []RuntimeHandler
	// LogLevel is the daemon's [debug] level, "debug" when empty. containerd
	// hands it on to the shims it starts.
	LogLevel string
	// ShimDir is where containerd finds containerd-shim-teach-v2 on its PATH,
	// instead of the folder ShimBinary builds into: a test of `make install`
	// names the folder it installed into.
	ShimDir string
	// ShimDirs are folders put first on the daemon's PATH, ahead of the
	// pinned tools: a shim binary in one of them wins over the one of the
	// same name in the containerd release's folder. The benchmark puts the
	// release-style build of containerd-shim-runc-v2 there.
	ShimDirs []string
	// NRI turns on containerd's Node Resource Interface, listening on
	// NRISocket for external plugins, in the daemon's folder.
	NRI bool
}

// criPlugins are the plugins of the Kubernetes API: 2.x splits it into
// several, 1.7 has one (io.containerd.grpc.v1.cri).
var criPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
}

// Plugins no test here needs, disabled so that a test daemon touches nothing
// outside its own folder and starts fast:
//   - CRI (the Kubernetes API), unless Options.CRI: it would set up CNI and
//     its own image service.
//   - NRI, unless Options.NRI: by default it listens on the fixed socket
//     /var/run/nri/nri.sock, which two daemons running side by side would
//     fight over; with Options.NRI it gets a socket in the daemon's folder.
//
// containerd ignores names of plugins it does not have, so one list serves
// both versions.
func (d *Containerd) disabledPlugins() []string {
	var disabled []string
	if !d.options.NRI {
		disabled = append(disabled, nriPlugin)
	}
	if !d.options.CRI {
		disabled = append(disabled, criPlugins...)
	}
	return disabled
}

// configTOML is the daemon's whole configuration. Every path in it is under
// the daemon's private folder, so the system's /var/lib/containerd and
// /run/containerd/containerd.sock are never used. The "opt" plugin would
// otherwise install into the shared /opt/containerd.
func (d *Containerd) configTOML() string {
	disabled := d.disabledPlugins()
	quoted := make([]string, len(disabled))
	for i, p := range disabled {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	level := d.options.LogLevel
	if level == "" {
		level = "debug"
	}
	return fmt.Sprintf(`version = %d
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, d.Release.ConfigVersion, d.RootDir, d.StateDir, strings.Join(quoted, ", "),
		d.Address, d.TTRPCAddress, level, d.path("opt")) + d.criTOML() + d.nriTOML()
}

const nriPlugin = "io.containerd.nri.v1.nri"

// NRISocket is where an NRI plugin connects, with Options.NRI.
func (d *Containerd) NRISocket() string { return d.path("nri/nri.sock") }

// nriTOML is the NRI part of the configuration, the same table in 1.7 and
// 2.x; empty when NRI is off. Plugins are not launched from a folder: the
// tests start them and they connect to NRISocket.
func (d *Containerd) nriTOML() string {
	if !d.options.NRI {
		return ""
	}
	return fmt.Sprintf(`
[plugins.%q]
  disable = false
  disable_connections = false
  socket_path = %q
  plugin_path = %q
  plugin_config_path = %q
`, nriPlugin, d.NRISocket(), d.path("nri/plugins"), d.path("nri/conf.d"))
}

func (d *Containerd) writeConfig() error {
	if d.options.NRI {
		for _, dir := range []string{filepath.Dir(d.NRISocket()), d.path("nri/plugins"), d.path("nri/conf.d")} {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
		}
	}
	return os.WriteFile(d.configPath(), []byte(d.configTOML()), 0o600)
}
