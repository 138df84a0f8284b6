package shim

import (
	"os"
	"strings"
	"testing"
)

func TestRestoreChildGOMAXPROCS(t *testing.T) {
	for _, tc := range []struct {
		name       string
		containerd string // GOMAXPROCS in start's environment
		want       string // in the server's after the restore; "unset"
	}{
		{"containerd's 2 comes back", "2", "2"},
		{"containerd set none", "", "unset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOMAXPROCS", tc.containerd)
			// The server's environment is start's with these on top.
			for _, entry := range oneProcessorEnv() {
				name, value, _ := strings.Cut(entry, "=")
				t.Setenv(name, value)
			}
			if got := os.Getenv("GOMAXPROCS"); got != "1" {
				t.Fatalf("the server would start with GOMAXPROCS=%q, want 1", got)
			}

			restoreChildGOMAXPROCS()

			got, ok := os.LookupEnv("GOMAXPROCS")
			if !ok {
				got = "unset"
			}
			if got != tc.want {
				t.Errorf("GOMAXPROCS = %q, want %q", got, tc.want)
			}
			if _, left := os.LookupEnv(containerdGOMAXPROCSEnv); left {
				t.Errorf("%s is still set: runc would inherit it", containerdGOMAXPROCSEnv)
			}
		})
	}
}

func TestRestoreChildGOMAXPROCSWithoutStart(t *testing.T) {
	// A server started some other way got no value from start: its
	// GOMAXPROCS is left as it is.
	t.Setenv("GOMAXPROCS", "3")
	t.Setenv(containerdGOMAXPROCSEnv, "")
	os.Unsetenv(containerdGOMAXPROCSEnv)
	restoreChildGOMAXPROCS()
	if got := os.Getenv("GOMAXPROCS"); got != "3" {
		t.Errorf("GOMAXPROCS = %q, want 3 untouched", got)
	}
}
