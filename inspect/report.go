package inspect

// Report is everything inspect found about one container; --json prints it
// as it is.
type Report struct {
	Namespace  string      `json:"namespace"`
	ID         string      `json:"id"`
	Bundle     string      `json:"bundle"`
	Shim       Shim        `json:"shim"`
	Processes  []Process   `json:"processes"`
	Namespaces []Namespace `json:"namespaces"`
	// NamespacesComparedWith is the process whose namespaces count as the
	// host's: "pid 1", or inspect itself when pid 1's are not readable.
	NamespacesComparedWith string       `json:"namespacesComparedWith"`
	Cgroup                 Cgroup       `json:"cgroup"`
	Descriptors            []Descriptor `json:"descriptors"`
	Root                   RootView     `json:"root"`
	Runc                   RuncState    `json:"runc"`
}

// Shim is the shim process that serves the container.
type Shim struct {
	PID        int    `json:"pid"`
	PPID       int    `json:"ppid"`
	ParentName string `json:"parentName"`
	// SessionLeader: the shim called setsid, so a terminal hang-up or a
	// signal to containerd's process group does not reach it.
	SessionLeader bool     `json:"sessionLeader"`
	Socket        string   `json:"socket"`
	Args          []string `json:"args"`
	RSSKiB        int64    `json:"rssKiB"`
}

// Process is one process of the container, in the order of a tree walk.
type Process struct {
	PID   int `json:"pid"`
	PPID  int `json:"ppid"`
	NSPID int `json:"nsPid"` // its pid inside the container's pid namespace
	// Depth is its distance from the shim: 1 for init and exec processes.
	Depth int      `json:"depth"`
	Role  string   `json:"role,omitempty"` // "init", "exec" or empty for their descendants
	Name  string   `json:"name"`
	State string   `json:"state"`
	Args  []string `json:"args"`
}

// Namespace compares one namespace of the container with the host's.
type Namespace struct {
	Type      string `json:"type"`
	Container uint64 `json:"container"` // inode of /proc/<init>/ns/<type>
	Host      uint64 `json:"host"`      // the same link of the host (NamespacesComparedWith)
	Shared    bool   `json:"shared"`
}

// Cgroup is where the kernel accounts the container's resources.
type Cgroup struct {
	Version int          `json:"version"`
	Paths   []CgroupPath `json:"paths"`
	// MemoryBytes is memory.current (v2) or memory.usage_in_bytes (v1).
	MemoryBytes int64 `json:"memoryBytes"`
	// MemoryLimitBytes is 0 when the container has no memory limit, as
	// are PidsLimit and CPUQuotaMicros.
	MemoryLimitBytes int64 `json:"memoryLimitBytes"`
	Pids             int64 `json:"pids"`
	PidsLimit        int64 `json:"pidsLimit"`
	// CPUQuotaMicros is how long the container's processes may run, all
	// together, in each CPUPeriodMicros: 50000 of 100000 is half a CPU.
	CPUQuotaMicros  int64 `json:"cpuQuotaMicros"`
	CPUPeriodMicros int64 `json:"cpuPeriodMicros"`
	// OOMKills is how many processes the kernel's OOM killer has killed in
	// the cgroup: oom_kill of memory.events (v2) or memory.oom_control (v1).
	OOMKills int64 `json:"oomKills"`
	// Freezer is "thawed", "freezing" or "frozen": cgroup.events (v2) or
	// freezer.state (v1).
	Freezer string   `json:"freezer"`
	Files   []string `json:"files"`            // the files the figures were read from
	Errors  []string `json:"errors,omitempty"` // figures that could not be read
}

// CgroupPath is one line of /proc/<pid>/cgroup.
type CgroupPath struct {
	Controllers string `json:"controllers"` // empty for the v2 hierarchy
	Path        string `json:"path"`
}

// Descriptor is one open file descriptor of the shim, and what it is for.
type Descriptor struct {
	FD      int    `json:"fd"`
	Target  string `json:"target"` // readlink /proc/<shim>/fd/<fd>
	Kind    string `json:"kind"`
	Meaning string `json:"meaning"`
}

// RootView is the container's root filesystem as the host sees it through
// /proc/<pid>/root.
type RootView struct {
	Path      string   `json:"path"`
	Entries   []string `json:"entries"`             // ls -F of its top folder
	OSRelease string   `json:"osRelease,omitempty"` // PRETTY_NAME of /etc/os-release
	Error     string   `json:"error,omitempty"`
}

// RuncState is what `runc state` says about the container.
type RuncState struct {
	Command string `json:"command"`
	Status  string `json:"status,omitempty"`
	PID     int    `json:"pid,omitempty"`
	Bundle  string `json:"bundle,omitempty"`
	Rootfs  string `json:"rootfs,omitempty"`
	Created string `json:"created,omitempty"`
	Error   string `json:"error,omitempty"`
}
