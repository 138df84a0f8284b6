package stdio

// Streams is a process's stdio as the shim relays it once the process
// exists: through pipes (Relay) or through a pseudo-terminal (Terminal).
type Streams interface {
	// OutputDone is closed once all of the process's output is in the
	// FIFOs.
	OutputDone() <-chan struct{}
	// CloseStdin ends the process's stdin (containerd's CloseIO).
	CloseStdin()
	// Resize sets the terminal's window size; without a terminal it does
	// nothing.
	Resize(width, height uint32) error
	// ProcessExited tells the streams their process has exited.
	ProcessExited()
	// Close releases everything.
	Close() error
}

// Resize does nothing: pipes have no window size.
func (r *Relay) Resize(width, height uint32) error { return nil }

// ProcessExited does nothing: the pipes end by themselves when the last
// process holding them exits.
func (r *Relay) ProcessExited() {}
