// Package shim is the containerd side of the shim: how the binary is
// started, the task service containerd calls, and the events it sends back.
package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"google.golang.org/protobuf/proto"

	"github.com/teach/containerd-shim-teach-v2/version"
)

// Run is what containerd runs; main hands over to it. containerd runs this
// binary in four ways:
//
//	containerd-shim-teach-v2 ... start    launch the shim server, print its address
//	containerd-shim-teach-v2 ... delete   clean up after a shim that died
//	containerd-shim-teach-v2 -info        describe the runtime
//	containerd-shim-teach-v2 ...          the shim server itself (started by start)
func Run() {
	flags, err := parseLaunchFlags(os.Args[1:])
	switch {
	case err != nil:
	case flags.version:
		printVersion()
		return
	case flags.info:
		err = runInfo()
	case flags.action == "start":
		err = runStart(context.Background(), flags, os.Stdin, os.Stdout)
	case flags.action == "delete":
		err = runDelete(flags)
	case flags.action != "":
		err = fmt.Errorf("unknown action %q: containerd runs a shim with start, delete, or none", flags.action)
	default:
		err = runServer(flags)
	}
	if err != nil {
		action := flags.action
		switch {
		case flags.info:
			action = "-info"
		case action == "":
			action = "server"
		}
		fmt.Fprintf(os.Stderr, "%s: %s: %s\n", RuntimeName, action, err)
		os.Exit(1)
	}
}

// runInfo is `-info`: containerd asks what this runtime is, and reads the
// answer as a protobuf RuntimeInfo.
func runInfo() error {
	info, err := manager{}.Info(context.Background(), os.Stdin)
	if err != nil {
		return err
	}
	return writeAnswer(info)
}

// runDelete is the `delete` action; containerd reads a protobuf
// DeleteResponse from stdout, and the log from stderr.
func runDelete(flags launchFlags) error {
	if flags.namespace == "" || flags.id == "" {
		return fmt.Errorf("delete needs -namespace and -id")
	}
	if flags.debug {
		_ = log.SetLevel(log.DebugLevel)
	}
	ctx := namespaces.WithNamespace(context.Background(), flags.namespace)
	bundle, err := bundleFolder(flags)
	if err != nil {
		return err
	}
	resp, err := manager{}.Stop(ctx, bundle, flags.id)
	if err != nil {
		return err
	}
	return writeAnswer(resp)
}

// writeAnswer writes a short-lived invocation's answer to containerd, a
// protobuf message, to stdout.
func writeAnswer(answer proto.Message) error {
	data, err := proto.Marshal(answer)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(data)
	return err
}

func printVersion() {
	fmt.Printf("%s:\n", filepath.Base(os.Args[0]))
	fmt.Println("  Version:   ", version.Version)
	fmt.Println("  Revision:  ", version.Revision)
	fmt.Println("  Go version:", version.GoVersion)
}
