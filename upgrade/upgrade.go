// Package upgrade is the `upgrade` subcommand: it replaces the shim process
// of running containers with another shim binary, in place, at the same pid
// (docs/upgrade.md). The shim does the work (shim/upgrade.go); the command
// finds each shim's socket, asks, and reports.
package upgrade

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/inspect"
	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/printable"
	"github.com/teach/containerd-shim-teach-v2/shim"
)

const usage = `usage: containerd-shim-teach-v2 upgrade [-n NAMESPACE] [--binary PATH] [--state DIR] (ID | --all)

Replaces the shim process of a running container (and of the containers it
serves with it) with another shim binary, in place: same pid, containerd's
connection kept, no output or exit lost. Prints each shim's old and new
version; exits non-zero if any shim did not take the upgrade. Needs root.

  -n, --namespace NAMESPACE  containerd namespace (default "default"; with
                             --all, every namespace unless given)
  --binary PATH              the shim binary to become (default: this one)
  --state DIR                containerd's state folder (default /run/containerd)
  --all                      every running shim of this runtime, one at a time
`

// Exit codes of the subcommand.
const (
	exitNotTaken = 1 // a shim did not take the upgrade, or none was found
	exitUsage    = 2
)

type options struct {
	namespace, binary, stateDir, id string
	all, namespaceGiven             bool
}

// Run is the subcommand; it returns the process's exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "%s\n%s", err, usage)
		return exitUsage
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "upgrade: only root may upgrade a shim: its socket is root's alone")
		return exitNotTaken
	}
	shims, err := findShims(opts)
	if err != nil {
		printable.Fprintf(stderr, "upgrade: %s\n", err.Error())
		return exitNotTaken
	}
	code := 0
	for _, s := range shims {
		if !upgradeOne(context.Background(), s, opts.binary, stdout, stderr) {
			code = exitNotTaken
		}
	}
	return code
}

func parseArgs(args []string) (options, error) {
	var opts options
	fs := flag.NewFlagSet("upgrade", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.namespace, "n", "default", "")
	fs.StringVar(&opts.namespace, "namespace", "default", "")
	fs.StringVar(&opts.binary, "binary", "", "")
	fs.StringVar(&opts.stateDir, "state", "", "")
	fs.BoolVar(&opts.all, "all", false, "")
	// Flags may follow the id, as in `upgrade ID --binary PATH`.
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return opts, err
		}
		if fs.NArg() == 0 {
			break
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
	fs.Visit(func(f *flag.Flag) {
		opts.namespaceGiven = opts.namespaceGiven || f.Name == "n" || f.Name == "namespace"
	})
	switch {
	case opts.all && len(rest) > 0:
		return opts, errors.New("give a container id or --all, not both")
	case !opts.all && len(rest) != 1:
		return opts, errors.New("give one container id, or --all")
	case len(rest) == 1:
		opts.id = rest[0]
	}
	if opts.binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return opts, fmt.Errorf("find this binary to upgrade to: %w; give --binary", err)
		}
		opts.binary = exe
	}
	binary, err := filepath.Abs(opts.binary)
	if err != nil {
		return opts, err
	}
	opts.binary = binary
	return opts, nil
}

// shimRef is one shim to upgrade: where it listens, and a container it
// serves, to name it by.
type shimRef struct {
	address, namespace, id string
}

// findShims finds the shim of the container named, or every shim of every
// task (grouped containers share one shim: it is upgraded once).
func findShims(opts options) ([]shimRef, error) {
	if !opts.all {
		stateDir := opts.stateDir
		if stateDir == "" {
			stateDir = inspect.StateDir(opts.namespace, opts.id)
		}
		bundle := filepath.Join(stateDir, journal.TaskFolder, opts.namespace, opts.id)
		address, err := inspect.ShimAddress(bundle)
		if err != nil {
			return nil, fmt.Errorf("no running task %s in namespace %s under %s: %w: %w", opts.id, opts.namespace, stateDir, err, errdefs.ErrNotFound)
		}
		return []shimRef{{address: address, namespace: opts.namespace, id: opts.id}}, nil
	}
	stateDir := opts.stateDir
	if stateDir == "" {
		stateDir = "/run/containerd"
	}
	tasks := filepath.Join(stateDir, journal.TaskFolder)
	pattern := filepath.Join(tasks, "*", "*")
	if opts.namespaceGiven {
		pattern = filepath.Join(tasks, opts.namespace, "*")
	}
	bundles, _ := filepath.Glob(pattern)
	sort.Strings(bundles)
	seen := map[string]bool{}
	var shims []shimRef
	for _, bundle := range bundles {
		address, err := inspect.ShimAddress(bundle)
		if err != nil || seen[address] {
			continue
		}
		seen[address] = true
		shims = append(shims, shimRef{address: address, namespace: filepath.Base(filepath.Dir(bundle)), id: filepath.Base(bundle)})
	}
	if len(shims) == 0 {
		return nil, fmt.Errorf("no running task under %s: %w", tasks, errdefs.ErrNotFound)
	}
	return shims, nil
}

// upgradeOne upgrades one shim and reports it; it tells whether the shim
// took the upgrade. A shim of another runtime, which has no Shim service,
// is skipped.
func upgradeOne(ctx context.Context, s shimRef, binary string, stdout, stderr io.Writer) bool {
	name := s.namespace + "/" + s.id
	if _, err := shim.AwaitUpgrade(ctx, s.address, 0); errdefs.IsNotImplemented(err) {
		printable.Fprintf(stdout, "%s: not a shim of this runtime; skipped\n", name)
		return true
	}
	answer, err := shim.RequestUpgrade(ctx, s.address, binary)
	if err != nil {
		printable.Fprintf(stderr, "%s: refused: %s\n", name, err.Error())
		return false
	}
	status, err := shim.AwaitUpgrade(ctx, s.address, answer.Attempt)
	if err != nil {
		printable.Fprintf(stderr, "%s: %s -> %s: no answer after the switch: %s\n", name, answer.From, answer.To, err.Error())
		return false
	}
	if status.Last.Err != "" {
		printable.Fprintf(stderr, "%s: did not take %s; still %s (shim pid %d): %s\n", name, answer.To, status.Version, status.Pid, status.Last.Err)
		return false
	}
	printable.Fprintf(stdout, "%s: shim pid %d: %s -> %s (switch %s; %s)\n", name, status.Pid, status.Last.From, status.Last.To, status.Last.Switch, status.Last.Handed)
	return true
}
