package cli

// The audit chain's disk headroom (issue 19.5), reported by the daemon
// (agent/reserve.go) and shown in the audit anchor group.
func init() {
	daemonFindingsSorted["disk-reserve"] = true
	fixes["disk-reserve"] = "free space on the state directory's filesystem (or lower audit_reserve in coconut.toml); spawning resumes at once"
	registerDoctorCheck(doctorCheck{Group: groupAnchor, Name: "disk-reserve", Run: daemonFinding("disk-reserve")})
}
