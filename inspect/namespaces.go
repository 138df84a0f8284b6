package inspect

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// namespaceTypes are the namespaces runc can give a container, in the
// order /proc/<pid>/ns lists them.
var namespaceTypes = [...]string{"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"}

// namespaceMeaning says what a new namespace of each type hides from the
// container.
func namespaceMeaning(kind string) string {
	switch kind {
	case "cgroup":
		return "its own view of the cgroup tree"
	case "ipc":
		return "System V IPC and POSIX message queues"
	case "mnt":
		return "its own mounts: the root filesystem runc pivoted into"
	case "net":
		return "network interfaces, ports, routes"
	case "pid":
		return "process ids: its init is pid 1 inside"
	case "time":
		return "boot and monotonic clocks"
	case "user":
		return "user and group ids"
	case "uts":
		return "host name and domain name"
	}
	return ""
}

// compareNamespaces reads each namespace link of pid and of the host,
// which is pid 1 where inspect may read its links, and otherwise inspect
// itself (a supervisor at pid 1 may forbid it). It says which it took.
func compareNamespaces(pid int) (list []Namespace, host string) {
	host = "pid 1"
	if _, err := os.Readlink(procPath(hostPID, "ns/pid")); err != nil {
		host = "self"
	}
	for _, kind := range namespaceTypes {
		inContainer, err := namespaceInode(strconv.Itoa(pid), kind)
		if err != nil {
			continue // a kernel without this namespace type
		}
		onHost, _ := namespaceInode(strings.TrimPrefix(host, "pid "), kind)
		list = append(list, Namespace{Type: kind, Container: inContainer, Host: onHost, Shared: inContainer == onHost})
	}
	if host == "self" {
		host = fmt.Sprintf("inspect itself (pid %d)", os.Getpid())
	}
	return list, host
}

// namespaceInode reads /proc/<process>/ns/<kind>; process is a pid or "self".
func namespaceInode(process, kind string) (uint64, error) {
	link, err := os.Readlink(procRoot + "/" + process + "/ns/" + kind)
	if err != nil {
		return 0, err
	}
	return parseNamespaceLink(kind, link)
}

// parseNamespaceLink reads the target of /proc/<pid>/ns/<kind>, "pid:[4026532764]":
// two processes are in the same namespace when the inode is the same.
func parseNamespaceLink(kind, link string) (uint64, error) {
	rest, ok := strings.CutPrefix(link, kind+":[")
	if !ok || !strings.HasSuffix(rest, "]") {
		return 0, fmt.Errorf("namespace link %q is not %s:[inode]", link, kind)
	}
	return strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
}
