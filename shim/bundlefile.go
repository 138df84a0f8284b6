package shim

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// writeBundleFile writes a file the shim owns in a bundle (the shim's
// address, the runtime options). Something else may stand where the file
// goes, a symlink to anywhere among them: it is removed (os.Remove does not
// follow symlinks) and the file made anew, O_EXCL|O_NOFOLLOW, so the shim
// never writes through a link to outside the bundle.
func writeBundleFile(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.Write(data)
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}
