package journal

import "github.com/containerd/errdefs"

// errorKinds are the errdefs kinds in the order they are tested: the first
// that matches names the error.
var errorKinds = []struct {
	name string
	is   func(error) bool
}{
	{"NotFound", errdefs.IsNotFound},
	{"AlreadyExists", errdefs.IsAlreadyExists},
	{"FailedPrecondition", errdefs.IsFailedPrecondition},
	{"InvalidArgument", errdefs.IsInvalidArgument},
	{"Unavailable", errdefs.IsUnavailable},
	{"NotImplemented", errdefs.IsNotImplemented},
	{"Canceled", errdefs.IsCanceled},
	{"DeadlineExceeded", errdefs.IsDeadlineExceeded},
	{"PermissionDenied", errdefs.IsPermissionDenied},
	{"Unauthenticated", errdefs.IsUnauthorized},
	{"ResourceExhausted", errdefs.IsResourceExhausted},
	{"Aborted", errdefs.IsAborted},
	{"OutOfRange", errdefs.IsOutOfRange},
	{"DataLoss", errdefs.IsDataLoss},
}

// ErrorKind names err's errdefs kind as containerd will see it; "Unknown"
// when it has none, "" for no error.
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	for _, kind := range errorKinds {
		if kind.is(err) {
			return kind.name
		}
	}
	return "Unknown"
}
