package manifest

// Instances expands every agent spec into its replicas, in manifest order:
// "planner" for a single replica, "researcher-1" .. "researcher-10" for ten.
func (m *Manifest) Instances() []Instance {
	var out []Instance
	for i := range m.Agents {
		a := &m.Agents[i]
		for r, name := range instanceNames(*a) {
			out = append(out, Instance{Spec: a, Name: name, Replica: r + 1})
		}
	}
	return out
}

// Line returns the line of a field path such as "metadata.name",
// "agents[2]", "agents[2].command[0]" or "agents[0].env.HOME", or 0 when the
// manifest has no such field.
func (m *Manifest) Line(field string) int {
	if m == nil {
		return 0
	}
	return m.lines[field]
}
