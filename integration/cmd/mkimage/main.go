// Command mkimage writes the busybox test image as an OCI archive, for demo
// scripts and recipes that import it with ctr or docker load:
//
//	go run ./integration/cmd/mkimage -o busybox.tar [-name docker.io/library/busybox:teach]
//	ctr images import busybox.tar
//
// With -pause it writes a pod sandbox image instead, from a static pause
// binary (integration/cmd/pause), for a CRI plugin that cannot pull
// registry.k8s.io/pause:
//
//	CGO_ENABLED=0 go build -o pause ./integration/cmd/pause
//	go run ./integration/cmd/mkimage -pause pause -name localhost/pause:teach -o pause.tar
//	ctr -n k8s.io images import pause.tar
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

func main() {
	output := flag.String("o", "busybox.tar", "archive to write")
	name := flag.String("name", image.DefaultName, "image reference stored in the archive")
	busybox := flag.String("busybox", image.DefaultBusybox, "statically linked busybox to package")
	pause := flag.String("pause", "", "static pause binary: write a pod sandbox image of it instead of busybox")
	flag.Parse()

	write := func(f *os.File) error { return image.WriteFrom(f, *busybox, *name) }
	if *pause != "" {
		write = func(f *os.File) error { return image.WritePause(f, *pause, *name) }
	}
	if err := writeArchive(*output, write); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func writeArchive(path string, write func(*os.File) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(path) // a half-written archive would fail later, at import
		return err
	}
	return f.Close()
}
