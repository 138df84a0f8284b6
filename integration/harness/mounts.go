package harness

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Mount is one line of /proc/self/mountinfo, reduced to what the tests ask.
type Mount struct {
	ID         int
	ParentID   int
	MountPoint string
	FSType     string
	Source     string
}

// Mounts reads the mount table of the test process's mount namespace, which
// is the one containerd and the shims mount the containers' rootfs in.
func Mounts() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var mounts []Mount
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		m, err := parseMountInfoLine(scanner.Text())
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	return mounts, scanner.Err()
}

// parseMountInfoLine reads
// "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue":
// the optional fields end at the lone "-", after which come type and source.
func parseMountInfoLine(line string) (Mount, error) {
	fields := strings.Fields(line)
	sep := -1
	for i, field := range fields {
		if field == "-" {
			sep = i
			break
		}
	}
	if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
		return Mount{}, fmt.Errorf("mountinfo: unexpected line %q", line)
	}
	id, err := strconv.Atoi(fields[0])
	if err != nil {
		return Mount{}, fmt.Errorf("mountinfo: %q: %w", line, err)
	}
	parent, err := strconv.Atoi(fields[1])
	if err != nil {
		return Mount{}, fmt.Errorf("mountinfo: %q: %w", line, err)
	}
	return Mount{
		ID:         id,
		ParentID:   parent,
		MountPoint: unescapeMountPath(fields[4]),
		FSType:     fields[sep+1],
		Source:     unescapeMountPath(fields[sep+2]),
	}, nil
}

// unescapeMountPath undoes the kernel's octal escapes (\040 for a space,
// \011 tab, \012 newline, \134 backslash) in mountinfo paths.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// MountsUnder lists the mounts at path or below it.
func MountsUnder(path string) ([]Mount, error) {
	all, err := Mounts()
	if err != nil {
		return nil, err
	}
	path = filepath.Clean(path)
	var under []Mount
	for _, m := range all {
		if m.MountPoint == path || strings.HasPrefix(m.MountPoint, path+"/") {
			under = append(under, m)
		}
	}
	return under, nil
}

// UnmountAllUnder unmounts every mount at or below path, deepest first: a
// mount with others on top of it cannot be unmounted before them. A mount
// still busy is detached (MNT_DETACH), since the folder is removed next.
func UnmountAllUnder(path string) error {
	mounts, err := MountsUnder(path)
	if err != nil {
		return err
	}
	// Deeper paths first; on one path, the later mount (higher ID) is on top.
	sort.Slice(mounts, func(i, j int) bool {
		di, dj := strings.Count(mounts[i].MountPoint, "/"), strings.Count(mounts[j].MountPoint, "/")
		if di != dj {
			return di > dj
		}
		return mounts[i].ID > mounts[j].ID
	})
	var firstErr error
	for _, m := range mounts {
		err := unix.Unmount(m.MountPoint, 0)
		if err == unix.EBUSY {
			err = unix.Unmount(m.MountPoint, unix.MNT_DETACH)
		}
		if err != nil && err != unix.EINVAL && err != unix.ENOENT && firstErr == nil {
			firstErr = fmt.Errorf("unmount %s: %w", m.MountPoint, err)
		}
	}
	return firstErr
}
