//go:build teach_takeover_fault

package shim

import "errors"

// takeOverFault, in a shim built with the tag teach_takeover_fault (and
// only for the integration tests), makes every take-over after an upgrade
// fail at the last moment it still can: the state read, the sockets made,
// nothing restored yet. The binary answers `upgrade-check` as any shim
// does, so the old shim commits to it; then it executes the old binary
// again (runServer, fallBack). The shipped shim is built without the tag.
func takeOverFault() error {
	return errors.New("injected take-over fault (a shim built with the tag teach_takeover_fault)")
}
