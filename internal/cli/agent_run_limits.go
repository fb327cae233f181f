package cli

import "strconv"

// runPids reads agent run's --pids: a positive count, or max (-1 on the
// wire: no limit, instead of the host's default; issue 19).
func runPids(s string) (int, error) {
	if s == "max" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, usagef("--pids %q: want a positive number or max", s)
	}
	return n, nil
}
