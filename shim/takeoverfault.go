//go:build !teach_takeover_fault

package shim

// takeOverFault is nil in the shim: see takeoverfault_injected.go, the
// build the integration tests use to see a take-over fail after execve.
func takeOverFault() error { return nil }
