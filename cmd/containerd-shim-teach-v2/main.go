// Command containerd-shim-teach-v2 is a containerd shim v2: containerd runs it
// for every container of the runtime io.containerd.teach.v2.
//
// People run it too, to look at a container: `containerd-shim-teach-v2
// inspect ID` shows its anatomy now (package inspect), and
// `containerd-shim-teach-v2 trace ID` tells its story from the shim's
// journal (package trace). `containerd-shim-teach-v2 upgrade ID` replaces
// a running shim with another binary in place (package upgrade; the shim
// checks the binary with `upgrade-check`). Everything else is containerd's
// (package shim).
package main

import (
	"os"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/shim"
	"github.com/teach/containerd-shim-teach-v2/trace"
	"github.com/teach/containerd-shim-teach-v2/upgrade"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "trace":
			os.Exit(trace.Main(os.Args[2:], os.Stdout, os.Stderr))
		case "inspect":
			os.Exit(inspect.Run(os.Args[2:], os.Stdout, os.Stderr))
		case "upgrade":
			os.Exit(upgrade.Run(os.Args[2:], os.Stdout, os.Stderr))
		case "upgrade-check":
			os.Exit(shim.UpgradeCheck(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	shim.Run()
}
