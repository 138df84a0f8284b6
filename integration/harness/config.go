package harness

import (
	"fmt"
	"os"
	"strings"
)

// Plugins no test here needs, disabled so that a test daemon touches nothing
// outside its own folder and starts fast:
//   - CRI (the Kubernetes API) would set up CNI and its own image service;
//     2.x splits it into several plugins, 1.7 has one.
//   - NRI listens on the fixed socket /var/run/nri/nri.sock, which two daemons
//     running side by side would fight over.
//
// containerd ignores names of plugins it does not have, so one list serves
// both versions.
var disabledPlugins = []string{
	"io.containerd.grpc.v1.cri",
	"io.containerd.cri.v1.images",
	"io.containerd.cri.v1.runtime",
	"io.containerd.podsandbox.controller.v1.podsandbox",
	"io.containerd.nri.v1.nri",
}

// configTOML is the daemon's whole configuration. Every path in it is under
// the daemon's private folder, so the system's /var/lib/containerd and
// /run/containerd/containerd.sock are never used. The "opt" plugin would
// otherwise install into the shared /opt/containerd.
func (d *Containerd) configTOML() string {
	quoted := make([]string, len(disabledPlugins))
	for i, p := range disabledPlugins {
		quoted[i] = fmt.Sprintf("%q", p)
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
		d.Address, d.TTRPCAddress, d.logLevel, d.path("opt"))
}

func (d *Containerd) writeConfig() error {
	return os.WriteFile(d.configPath(), []byte(d.configTOML()), 0o600)
}
