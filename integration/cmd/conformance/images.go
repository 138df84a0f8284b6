package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/teach/containerd-shim-teach-v2/integration/image"
)

// The suite pulls its images from public registries, by the names in its
// integration/images package. It resolves them as the package loads, before
// any flag is read, so its -image-list flag changes nothing in the client
// suite: the images must be found under their public names. Each image the
// client tests use is made here from Debian's packages, as close to the
// public one as those tests look, and pushed to a registry under the same
// path; inside a run, the public registries' names lead to that registry
// (namespace.go).

// suiteImage is one image the suite pulls.
type suiteImage struct {
	ref   string // its public name
	build func(*imageParts) (image.Index, error)
}

var suiteImages = []suiteImage{
	{ref: "ghcr.io/containerd/busybox:1.36", build: buildBusybox},
	{ref: "registry.k8s.io/pause:3.10.2", build: buildPause},
	{ref: "ghcr.io/containerd/volume-copy-up:2.2", build: buildVolumeCopyUp},
	{ref: "ghcr.io/containerd/volume-ownership:2.1", build: buildVolumeOwnership},
}

// publicRegistries are the hosts of the suite's image names.
func publicRegistries() []string {
	var hosts []string
	for _, img := range suiteImages {
		host, _, _ := strings.Cut(img.ref, "/")
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	return hosts
}

// onRegistry is the image's name on the registry at host: the same
// repository and tag, another host.
func (img suiteImage) onRegistry(host string) string {
	_, path, _ := strings.Cut(img.ref, "/")
	return host + "/" + path
}

// imageParts is what the images are made of: the unpacked Debian packages
// and the layers several images share.
type imageParts struct {
	work     string // a folder for unpacking
	debs     string // the folder of .deb files hack/tools.sh conformance downloads
	repo     string // this repository, for the pause program
	busybox  []byte // the busybox layer, the base of every image but pause
	accounts []byte // /etc/passwd and /etc/group of Debian's base-passwd
}

// buildImages makes every image the suite pulls, by public name.
func buildImages(work, debs, repo string) (map[string]image.Index, error) {
	parts := &imageParts{work: work, debs: debs, repo: repo}
	if err := parts.prepare(); err != nil {
		return nil, err
	}
	built := map[string]image.Index{}
	for _, img := range suiteImages {
		index, err := img.build(parts)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", img.ref, err)
		}
		built[img.ref] = index
	}
	return built, nil
}

// prepare makes the busybox layer and the accounts layer.
func (p *imageParts) prepare() error {
	rootfs, err := p.unpack("busybox", "busybox-static", "base-passwd")
	if err != nil {
		return err
	}
	accounts := filepath.Join(p.work, "accounts")
	if err := copyAccounts(rootfs, rootfs, accounts); err != nil {
		return err
	}
	if p.accounts, err = image.DirLayerTar(accounts); err != nil {
		return err
	}
	if err := finishBusybox(rootfs); err != nil {
		return err
	}
	// Only what the busybox image has goes in its layer: the packages'
	// documentation and base-passwd's own program, all in /usr, stay out.
	if err := os.RemoveAll(filepath.Join(rootfs, "usr")); err != nil {
		return err
	}
	p.busybox, err = image.DirLayerTar(rootfs)
	return err
}

// copyAccounts writes /etc/passwd and /etc/group into each root folder, as
// base-passwd's scripts would: the accounts every Debian system starts with
// (www-data is 33, backup 34, nobody 65534), the ones the suite's tests
// name, from the package unpacked in unpacked.
func copyAccounts(unpacked string, roots ...string) error {
	for _, name := range []string{"passwd", "group"} {
		data, err := os.ReadFile(filepath.Join(unpacked, "usr/share/base-passwd", name+".master"))
		if err != nil {
			return err
		}
		for _, root := range roots {
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(root, "etc", name), data, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// finishBusybox lays busybox out as the busybox image does: a link in /bin
// for each applet, and the folders a shell expects.
func finishBusybox(rootfs string) error {
	busybox := filepath.Join(rootfs, "bin/busybox")
	applets, err := image.Applets(busybox)
	if err != nil {
		return err
	}
	for _, applet := range applets {
		link := filepath.Join(rootfs, "bin", applet)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink("busybox", link); err != nil {
			return err
		}
	}
	// proc, sys, dev and run are where containerd's default spec mounts
	// filesystems: on a read-only root, runc cannot make them.
	for dir, mode := range map[string]os.FileMode{
		"tmp": 0o1777, "root": 0o700, "home": 0o755, "var": 0o755,
		"proc": 0o555, "sys": 0o555, "dev": 0o755, "run": 0o755,
	} {
		if err := os.MkdirAll(filepath.Join(rootfs, dir), mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(rootfs, dir), mode); err != nil { // past the umask
			return err
		}
	}
	return nil
}

// unpack extracts the named packages into one new folder, as dpkg would
// before running any maintainer script.
func (p *imageParts) unpack(folder string, packages ...string) (string, error) {
	rootfs := filepath.Join(p.work, folder)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", err
	}
	for _, pkg := range packages {
		debs, err := filepath.Glob(filepath.Join(p.debs, pkg+"_*.deb"))
		if err != nil || len(debs) != 1 {
			return "", fmt.Errorf("want one %s package in %s, found %v (hack/tools.sh conformance downloads it)", pkg, p.debs, debs)
		}
		if out, err := exec.Command("dpkg-deb", "-x", debs[0], rootfs).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %v: %s", debs[0], err, out)
		}
	}
	return rootfs, nil
}

var busyboxConfig = ocispec.ImageConfig{
	Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	Cmd: []string{"sh"},
}

func hostPlatform() ocispec.Platform {
	return ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH}
}

// otherArchitecture is a platform the index lists besides the host's, for
// the tests that fetch, export and prune one platform of many. Debian's
// busybox for it would need apt sources for that architecture, so its layer
// holds only what is the same on every architecture, the accounts: no test
// runs it.
func otherArchitecture() ocispec.Platform {
	arch := "arm64"
	if runtime.GOARCH == arch {
		arch = "amd64"
	}
	return ocispec.Platform{OS: "linux", Architecture: arch}
}

// buildBusybox: ghcr.io/containerd/busybox:1.36, busybox for two platforms.
func buildBusybox(p *imageParts) (image.Index, error) {
	return image.BuildIndex(
		image.Manifest{Platform: hostPlatform(), Layers: [][]byte{p.busybox}, Config: busyboxConfig},
		image.Manifest{Platform: otherArchitecture(), Layers: [][]byte{p.accounts}, Config: busyboxConfig},
	)
}

// buildVolumeCopyUp: ghcr.io/containerd/volume-copy-up, busybox and one
// layer per RUN of its Dockerfile, each adding a folder with a file, and
// the three folders declared volumes.
func buildVolumeCopyUp(p *imageParts) (image.Index, error) {
	layers := [][]byte{p.busybox}
	for _, file := range []string{"test_dir/test_file", "C:/weird_test_dir/weird_test_file", ":colon_prefixed/colon_prefixed_file"} {
		dir := filepath.Join(p.work, "copy-up", fmt.Sprint(len(layers)))
		path := filepath.Join(dir, file)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return image.Index{}, err
		}
		if err := os.WriteFile(path, []byte("test_content\n"), 0o644); err != nil {
			return image.Index{}, err
		}
		layer, err := image.DirLayerTar(dir)
		if err != nil {
			return image.Index{}, err
		}
		layers = append(layers, layer)
	}
	config := busyboxConfig
	config.Volumes = map[string]struct{}{"/test_dir": {}, "C:/weird_test_dir": {}, "/:colon_prefixed": {}}
	return image.BuildIndex(image.Manifest{Platform: hostPlatform(), Layers: layers, Config: config})
}

// buildVolumeOwnership: ghcr.io/containerd/volume-ownership, which the
// user namespace tests run: bash, a setuid /usr/bin/passwd (whose bit they
// check survives the id mapping), and /test_dir owned by nobody:nogroup.
// The public image is Ubuntu; here the same files come from Debian.
func buildVolumeOwnership(p *imageParts) (image.Index, error) {
	rootfs, err := p.unpack("ownership", "bash", "libc6", "libtinfo6", "passwd")
	if err != nil {
		return image.Index{}, err
	}
	debian, err := image.DirLayerTar(rootfs)
	if err != nil {
		return image.Index{}, err
	}
	testDir, err := image.FolderLayerTar("test_dir", 0o755, 65534, 65534)
	if err != nil {
		return image.Index{}, err
	}
	config := busyboxConfig
	config.Volumes = map[string]struct{}{"/test_dir": {}}
	return image.BuildIndex(image.Manifest{Platform: hostPlatform(), Layers: [][]byte{p.busybox, debian, testDir}, Config: config})
}

// pauseArchitectures are those of the pause index: the public one lists
// several, and the suite checks that fetching all of them fetches more
// than one platform's.
var pauseArchitectures = []string{"amd64", "arm64", "s390x"}

// buildPause: registry.k8s.io/pause, this repository's pause program
// (integration/cmd/pause) built for each architecture.
func buildPause(p *imageParts) (image.Index, error) {
	var manifests []image.Manifest
	for _, arch := range pauseArchitectures {
		binary := filepath.Join(p.work, "pause-"+arch)
		build := exec.Command("go", "build", "-trimpath", "-o", binary, "./integration/cmd/pause")
		build.Dir = p.repo
		build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if out, err := build.CombinedOutput(); err != nil {
			return image.Index{}, fmt.Errorf("go build pause for %s: %v: %s", arch, err, out)
		}
		layer, err := image.SingleFileLayerTar(binary, "pause")
		if err != nil {
			return image.Index{}, err
		}
		manifests = append(manifests, image.Manifest{
			Platform: ocispec.Platform{OS: "linux", Architecture: arch},
			Layers:   [][]byte{layer},
			Config:   ocispec.ImageConfig{Entrypoint: []string{"/pause"}},
		})
	}
	return image.BuildIndex(manifests...)
}
