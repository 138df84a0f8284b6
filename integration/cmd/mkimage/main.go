// Command mkimage writes the busybox test image as an OCI archive, for demo
// scripts that import it with ctr:
//
//	go run ./integration/cmd/mkimage -o busybox.tar [-name docker.io/library/busybox:teach]
//	ctr images import busybox.tar
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
	flag.Parse()

	if err := writeArchive(*output, *busybox, *name); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func writeArchive(path, busybox, name string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := image.WriteFrom(f, busybox, name); err != nil {
		f.Close()
		os.Remove(path) // a half-written archive would fail later, at import
		return err
	}
	return f.Close()
}
