package launch

// Arg0 marks a trampoline invocation of the daemon's binary.
const Arg0 = "coconut-trampoline"

// File descriptors in the trampoline, fixed by Start's ExtraFiles order.
const (
	fdSpec   = 3 // read: the JSON Spec
	fdStatus = 4 // write: an error message if the exec fails; EOF means it worked
	fdExec   = 5 // the sealed memfd to exec
	fdScript = 6 // optional: the sealed script memfd, kept open for the interpreter
	fdSuper  = 7 // optional: the socket to the seccomp supervisor (supervise.Install)
)

// ScriptPath is how the interpreter reaches the measured script: through the
// open memfd rather than the path, which could be swapped after measuring.
const ScriptPath = "/proc/self/fd/6"

// Spec is what the trampoline does before exec.
type Spec struct {
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
	// KeepExecFD leaves the exec memfd open across exec: a "#!" script run
	// directly needs the kernel to hand its interpreter a /proc/self/fd path.
	KeepExecFD bool `json:"keep_exec_fd"`
	HasScript  bool `json:"has_script"`
	// CgroupProcs are the cgroup.procs files of the v1 controller groups
	// (cpu, memory, pids on a hybrid host) the trampoline writes its own
	// pid to while still root, so the agent's first instruction already
	// runs under its limits. The unified group is entered at clone.
	CgroupProcs []string `json:"cgroup_procs,omitempty"`
	// Floor, when set, is the Landlock domain applied right before exec.
	Floor *Floor `json:"floor,omitempty"`
	// Supervised installs the seccomp supervisor's filter after the floor,
	// immediately before exec, handing its listener over fd 7. Set by
	// Start from Config.Supervise.
	Supervised bool `json:"supervised,omitempty"`
	// Static installs the static filter (supervise.Options.Static):
	// read-only opens are left to the floor. Set by Start from
	// Config.Static; meaningful with Supervised only.
	Static bool `json:"static,omitempty"`
}
