// Package top is the interactive `coconut top`: a live table of the agents
// the caller may see with the figures of the top bar (active agents, tokens,
// denies), built with bubbletea and lipgloss. Agents, usage and the broker's
// counters are polled once a second; audit rows (denies, each agent's last
// events) come from the daemon's event stream, the same one the Center,
// `coconut notify` and `coconut-tail` read. Keys: arrows move, s/r sort,
// / filters, enter shows an agent's detail, k kills and Q quarantines after
// a confirmation, ? shows the help, q or ctrl-c quits. Works over ssh: no
// mouse is needed.
package top
