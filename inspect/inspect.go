// Package inspect is the `inspect` subcommand: the anatomy of a running
// container, read from the kernel (/proc, the cgroup files) and from runc,
// without asking containerd or the shim anything.
//
//	containerd-shim-teach-v2 inspect [-n NAMESPACE] ID [--json] [--state DIR]
//
// It answers what a learner would otherwise piece together from ps, ls -l
// /proc/<pid>/fd, readlink /proc/<pid>/ns/* and runc state: which process
// is the shim, that it is not containerd's child, which processes are the
// container, how the container is isolated, and what the shim holds for it.
//
// The package is linked into the shim binary, whose server must stay small:
// it does no work at package level and imports only the standard library,
// errdefs, and the project's journal and printable.
package inspect

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/teach/containerd-shim-teach-v2/journal"
	"github.com/teach/containerd-shim-teach-v2/printable"
)

// defaultStateDir is containerd's default state folder (state = in its
// config.toml); a private containerd has its own, given with --state.
const defaultStateDir = "/run/containerd"

// findStateDir is the state folder of the containerd that runs the
// container, for a command line without --state: the default containerd's
// if it has a task of that name; else the one the shim's journal was kept
// for (the journal notes which containerd each belongs to, journal.Find);
// else the default, whose message then lists the tasks it does have.
func findStateDir(ns, id string) string {
	if _, err := os.Stat(filepath.Join(defaultStateDir, taskFolder, ns, id)); err == nil {
		return defaultStateDir
	}
	found, err := journal.Find(journal.DefaultRoot, "", ns, id)
	if err == nil && found.State != "" {
		if _, err := os.Stat(filepath.Join(found.State, taskFolder, ns, id)); err == nil {
			return found.State
		}
	}
	return defaultStateDir
}

// Exit codes of the subcommand.
const (
	exitFailure = 1 // the container cannot be inspected: the message says why
	exitUsage   = 2 // the command line is wrong
)

const usage = `usage: containerd-shim-teach-v2 inspect [-n NAMESPACE] ID [--json] [--state DIR]

Shows the anatomy of a running container of this runtime: its shim, its
processes, namespaces, cgroup, the descriptors the shim holds for it, its
root filesystem and runc's state. Reads /proc and runs runc; needs root.

  -n, --namespace NAMESPACE  containerd namespace (default "default"; Docker uses "moby")
  --state DIR                containerd's state folder (default: /run/containerd,
                             or the one whose journal knows the container)
  --json                     one JSON document instead of the text
`

// options is the parsed command line.
type options struct {
	namespace, id, stateDir string
	json                    bool
}

// Run is the subcommand; it returns the process's exit code.
func Run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		printable.Fprintf(stderr, "inspect: %s\n\n", err)
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if opts.stateDir == "" {
		opts.stateDir = findStateDir(opts.namespace, opts.id)
	}
	report, err := Inspect(opts.stateDir, opts.namespace, opts.id)
	if err != nil {
		// The reason may quote runc, or a name the container chose.
		printable.Fprintf(stderr, "inspect: %s\n", err)
		return exitFailure
	}
	if opts.json {
		err = writeJSON(stdout, report)
	} else {
		err = writeText(stdout, report)
	}
	if err != nil {
		fmt.Fprintf(stderr, "inspect: write the report: %s\n", err)
		return exitFailure
	}
	return 0
}

// parseArgs reads the command line. Flags may come before or after the id,
// as people type them: `inspect -n moby abc --json`.
func parseArgs(args []string) (options, error) {
	opts := options{namespace: "default"}
	fs := flag.NewFlagSet("inspect", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.namespace, "n", opts.namespace, "")
	fs.StringVar(&opts.namespace, "namespace", opts.namespace, "")
	fs.StringVar(&opts.stateDir, "state", opts.stateDir, "")
	fs.BoolVar(&opts.json, "json", false, "")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return opts, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch len(positional) {
	case 0:
		return opts, errors.New("name the container: inspect [-n NAMESPACE] ID")
	case 1:
		opts.id = positional[0]
	default:
		return opts, fmt.Errorf("one container at a time, got %q", positional)
	}
	return opts, nil
}

// Inspect gathers the report of container id in namespace ns of the
// containerd whose state folder is stateDir.
func Inspect(stateDir, ns, id string) (*Report, error) {
	c, err := locate(stateDir, ns, id)
	if err != nil {
		return nil, err
	}
	r := &Report{Namespace: ns, ID: id, Bundle: c.bundle}
	r.Shim = describeShim(c)
	r.Processes, err = containerProcesses(c)
	if err != nil {
		return nil, err
	}
	r.Namespaces, r.NamespacesComparedWith = compareNamespaces(c.initPID)
	r.Cgroup = readCgroup(c.initPID)
	r.Descriptors = shimDescriptors(c, r.Processes)
	r.Root = viewRoot(c.initPID)
	r.Runc = runcState(c)
	return r, nil
}

// checkName refuses a namespace or id that would climb out of the state
// folder once joined into a path.
func checkName(what, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%s %q is not a valid name: %w", what, name, errdefs.ErrInvalidArgument)
	}
	return nil
}

func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
