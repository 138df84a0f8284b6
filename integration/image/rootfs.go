package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteRootfs writes the archive of an image whose one layer is the folder
// dir, run with config.
func WriteRootfs(w io.Writer, name, dir string, config ocispec.ImageConfig) error {
	layerTar, err := DirLayerTar(dir)
	if err != nil {
		return err
	}
	return writeImage(w, name, layerTar, config)
}

// DirLayerTar returns the uncompressed layer holding everything under dir:
// folders, regular files and symlinks, in lexical order, owned by root and
// stamped with layerModTime, so that the same files make the same layer.
func DirLayerTar(dir string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(path string, entry fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		return addToLayer(tw, path, filepath.ToSlash(rel), entry)
	})
	if err != nil {
		return nil, fmt.Errorf("layer of %s: %w", dir, err)
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close layer tar: %w", err)
	}
	return buf.Bytes(), nil
}

// addToLayer writes one entry. Permission bits (setuid, sticky included)
// are kept; owners and times are not.
func addToLayer(tw *tar.Writer, path, name string, entry fs.DirEntry) error {
	info, err := entry.Info()
	if err != nil {
		return err
	}
	mode := int64(info.Mode().Perm())
	if info.Mode()&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if info.Mode()&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if info.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	switch {
	case info.IsDir():
		return writeHeader(tw, directory(name+"/", mode))
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return err
		}
		return writeHeader(tw, symlink(name, target))
	case info.Mode().IsRegular():
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := writeHeader(tw, regularFile(name, mode, int64(len(data)))); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("write %s into layer: %w", name, err)
		}
		return nil
	}
	return nil // devices, sockets, FIFOs: an image has none to carry
}
