package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// layerModTime is the one timestamp every entry of the layer carries. A fixed
// time (instead of the files' real ones) is what makes two builds of the layer
// byte-identical, and so gives them the same digest.
var layerModTime = time.Unix(0, 0).UTC()

// Applets asks busybox which commands it implements. Each becomes a symlink in
// /bin, the way the busybox image on Docker Hub is laid out, so `sh`, `cat`,
// `sleep` and `true` resolve through PATH inside the container.
func Applets(busyboxPath string) ([]string, error) {
	out, err := exec.Command(busyboxPath, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busyboxPath, err)
	}
	var applets []string
	for _, name := range strings.Fields(string(out)) {
		// busybox lists itself on some builds; the real binary is already there.
		if name != "busybox" {
			applets = append(applets, name)
		}
	}
	// The list order is busybox's; sorting keeps the tar independent of it.
	sort.Strings(applets)
	return applets, nil
}

// LayerTar returns the uncompressed layer: /bin/busybox, one symlink per
// applet, and an empty /tmp for shells that write here-documents there.
func LayerTar(busyboxPath string, applets []string) ([]byte, error) {
	binary, err := os.ReadFile(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, dir := range []*tar.Header{directory("bin/", 0o755), directory("tmp/", 0o1777)} {
		if err := writeHeader(tw, dir); err != nil {
			return nil, err
		}
	}
	if err := writeHeader(tw, regularFile("bin/busybox", 0o755, int64(len(binary)))); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, fmt.Errorf("write busybox into layer: %w", err)
	}
	for _, applet := range applets {
		// A relative target keeps the link valid wherever the snapshot is mounted.
		if err := writeHeader(tw, symlink("bin/"+applet, "busybox")); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// SingleFileLayerTar returns a layer holding one executable, the file at
// path, as /name.
func SingleFileLayerTar(path, name string) ([]byte, error) {
	binary, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeHeader(tw, regularFile(name, 0o755, int64(len(binary)))); err != nil {
		return nil, err
	}
	if _, err := tw.Write(binary); err != nil {
		return nil, fmt.Errorf("write %s into layer: %w", name, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// FolderLayerTar returns a layer holding one empty folder with the given
// mode and owner, what `RUN mkdir /name && chown uid:gid /name` adds.
func FolderLayerTar(name string, mode int64, uid, gid int) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	folder := directory(name+"/", mode)
	folder.Uid, folder.Gid = uid, gid
	if err := writeHeader(tw, folder); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// Gzip compresses data with an empty gzip header: no file name and a zero
// modification time, so the compressed bytes depend on the input alone.
func Gzip(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(data); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip layer: %w", err)
	}
	return buf.Bytes(), nil
}

func writeHeader(tw *tar.Writer, hdr *tar.Header) error {
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("tar header %s: %w", hdr.Name, err)
	}
	return nil
}

// Owner root:root and a fixed time on every entry: the layer must not depend on
// who built it or when.
func directory(name string, mode int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: layerModTime}
}

func regularFile(name string, mode, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: size, ModTime: layerModTime}
}

func symlink(name, target string) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: layerModTime}
}
