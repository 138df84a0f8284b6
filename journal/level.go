package journal

import "fmt"

// Level is how much a container's journal records.
type Level int

const (
	Off   Level = iota // no journal at all
	Info               // every step of the lifecycle (the default)
	Debug              // also file descriptors, and the bytes each stream carried when it closed
)

// DefaultLevel is the level of a container that asks for none.
const DefaultLevel = Info

// ParseLevel reads a level as the annotation and the runtime options spell
// it; an empty string is the default.
func ParseLevel(s string) (Level, error) {
	switch s {
	case "":
		return DefaultLevel, nil
	case "off":
		return Off, nil
	case "info":
		return Info, nil
	case "debug":
		return Debug, nil
	}
	if len(s) > 32 {
		s = s[:32] + "…" // an annotation may be long; the message need not be
	}
	return Off, fmt.Errorf("journal level %q: want off, info or debug", s)
}

func (l Level) String() string {
	switch l {
	case Off:
		return "off"
	case Info:
		return "info"
	case Debug:
		return "debug"
	}
	return fmt.Sprintf("level(%d)", int(l))
}
