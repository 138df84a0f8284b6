// Command pause is the process of a Kubernetes pod's sandbox container, the
// role registry.k8s.io/pause plays: it holds the pod's namespaces open while
// the pod's containers come and go, and does nothing else.
//
// The integration tests build it static (CGO_ENABLED=0) and package it as the
// only file of an image (integration/image.WritePause), so that containerd's
// CRI plugin finds a sandbox image without a registry.
//
// What it must do, besides waiting:
//   - exit 0 on SIGINT or SIGTERM: the CRI plugin stops a sandbox with
//     SIGTERM (StopPodSandbox), and a pause that ignored it would be
//     SIGKILLed after a grace period, slowing every pod stop;
//   - reap zombies: when the pod shares one PID namespace, pause is its
//     PID 1, and orphans of the pod's containers are re-parented to it.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig == syscall.SIGCHLD {
			reapChildren()
			continue
		}
		os.Exit(0)
	}
}

// reapChildren collects every child that has exited. One SIGCHLD can stand
// for several exits (signals of one kind do not queue), so it loops until
// none is left.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
