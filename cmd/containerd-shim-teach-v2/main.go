// Command containerd-shim-teach-v2 is a containerd shim v2: containerd runs it
// for every container of the runtime io.containerd.teach.v2.
package main

import "github.com/teach/containerd-shim-teach-v2/shim"

func main() {
	shim.Run()
}
