package shim

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/teach/containerd-shim-teach-v2/version"
)

// UpgradeCheck is the `upgrade-check` action, which a running shim asks of
// a binary before it lets it take over (upgrade.go): it prints, as JSON,
// which binary this is and which upgrade states it can take over; with
// --state-fd, it also reads the state handed to it there, and exits non-zero,
// saying why, if it cannot take it over.
func UpgradeCheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("upgrade-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateFd := fs.Int("state-fd", -1, "a descriptor holding the state of the shim to take over")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	info := UpgradeCheckInfo{Name: filepath.Base(os.Args[0]), Runtime: RuntimeName, Version: version.Version, StateVersions: takesStateVersions}
	if err := json.NewEncoder(stdout).Encode(info); err != nil {
		return 1
	}
	if *stateFd < 0 {
		return 0
	}
	h, err := readHandover(*stateFd)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "can take over: %s\n", h.summary())
	return 0
}

// versionString names this binary's version, for messages.
func versionString() string { return "version " + version.Version }
