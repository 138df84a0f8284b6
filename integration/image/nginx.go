package image

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// NginxCommand is how the image runs nginx: in the foreground, as a
// container's init process must, with notices (a reload, a log reopening)
// on stderr, where `docker logs` finds them.
var NginxCommand = []string{"nginx", "-g", "daemon off; error_log stderr notice;"}

// WriteNginx writes the archive of an nginx image made from the .deb files
// in debDir (hack/tools.sh all downloads Debian's nginx, its configuration,
// the libraries it links and base-files for /etc/os-release there), unpacked the way dpkg would before running any maintainer
// script. What the scripts would have added is added here: the users nginx
// names, its working folders, and logs that go to the container's stdout
// and stderr, as in Docker's official nginx image.
func WriteNginx(w io.Writer, debDir, name string) error {
	rootfs, err := os.MkdirTemp("", "nginx-rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rootfs)
	debs, err := filepath.Glob(filepath.Join(debDir, "*.deb"))
	if err != nil || len(debs) == 0 {
		return fmt.Errorf("no .deb files in %s (hack/tools.sh all downloads them)", debDir)
	}
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, rootfs).CombinedOutput(); err != nil {
			return fmt.Errorf("dpkg-deb -x %s: %v: %s", deb, err, out)
		}
	}
	if err := finishNginxRootfs(rootfs); err != nil {
		return err
	}
	return WriteRootfs(w, name, rootfs, ocispec.ImageConfig{
		Env: []string{defaultPath},
		Cmd: NginxCommand,
		// nginx finishes the requests it serves on SIGQUIT; SIGTERM
		// drops them.
		StopSignal: "SIGQUIT",
	})
}

// finishNginxRootfs adds what the packages' scripts would have made.
func finishNginxRootfs(rootfs string) error {
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":  "root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rootfs, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, dir := range []string{"var/lib/nginx", "var/log/nginx", "etc/nginx/modules-enabled", "run/lock"} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), 0o755); err != nil {
			return err
		}
	}
	for link, target := range map[string]string{
		"var/log/nginx/access.log": "/dev/stdout",
		"var/log/nginx/error.log":  "/dev/stderr",
	} {
		if err := os.Symlink(target, filepath.Join(rootfs, link)); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(rootfs, "usr/sbin/nginx")); err != nil {
		return fmt.Errorf("the packages hold no usr/sbin/nginx: %w", err)
	}
	return nil
}
