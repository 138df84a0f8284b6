package inspect

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// viewRoot lists the top of the container's root filesystem as the host
// sees it through /proc/<pid>/root, and names its distribution.
func viewRoot(pid int) RootView {
	v := RootView{Path: procPath(pid, "root")}
	entries, err := os.ReadDir(v.Path)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	for _, e := range entries {
		v.Entries = append(v.Entries, e.Name()+typeSuffix(e.Type()))
	}
	sort.Strings(v.Entries)
	for _, name := range []string{"etc/os-release", "usr/lib/os-release"} {
		if data, err := readInRoot(v.Path, name); err == nil {
			v.OSRelease = parseOSRelease(data)
			break
		}
	}
	return v
}

// typeSuffix is ls -F's mark: / for a folder, @ for a symlink.
func typeSuffix(mode os.FileMode) string {
	switch {
	case mode.IsDir():
		return "/"
	case mode&os.ModeSymlink != 0:
		return "@"
	}
	return ""
}

// readInRoot reads name inside the folder root as if root were "/": a
// symlink in the container (Debian's /etc/os-release -> ../usr/lib/os-release,
// or an absolute one) must resolve in the container's filesystem, not the
// host's, which a plain open of /proc/<pid>/root/etc/os-release would do
// for an absolute link. openat2's RESOLVE_IN_ROOT does that.
func readInRoot(root, name string) ([]byte, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), name, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// parseOSRelease returns PRETTY_NAME (or NAME) of an os-release file: shell
// style KEY=value lines, the value maybe quoted.
func parseOSRelease(data []byte) string {
	values := map[string]string{}
	scanner := bufio.NewScanner(bytes.NewReader(data))
	for scanner.Scan() {
		key, value, ok := strings.Cut(strings.TrimSpace(scanner.Text()), "=")
		if !ok || strings.HasPrefix(key, "#") {
			continue
		}
		if unquoted, err := strconv.Unquote(value); err == nil {
			value = unquoted
		} else if len(value) >= 2 && value[0] == '\'' && value[len(value)-1] == '\'' {
			value = value[1 : len(value)-1]
		}
		values[key] = value
	}
	if name := values["PRETTY_NAME"]; name != "" {
		return name
	}
	return values["NAME"]
}
