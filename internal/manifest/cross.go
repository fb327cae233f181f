package manifest

import "strconv"

// crossCheck checks what spans agents: agent names are unique, instance
// names (NAME or NAME-N) are unique and valid, and the instances sum to at
// most MaxInstances.
func (d *decoder) crossCheck(v val, specs []AgentSpec) {
	byName := map[string]int{}
	byInstance := map[string]int{}
	total, reported := 0, false
	for i, a := range specs {
		nameField := item(v.field, i) + ".name"
		line := d.lineOr(nameField, a.Line)
		if a.Name == "" {
			continue // missing or invalid: already reported
		}
		if j, dup := byName[a.Name]; dup {
			d.errorf(line, nameField, "duplicate agent name %q (also agents[%d])", a.Name, j)
			continue
		}
		byName[a.Name] = i
		if a.Replicas > 1 {
			if n := len(a.Name) + 1 + len(strconv.Itoa(a.Replicas)); n > 63 {
				d.errorf(line, nameField, "instance names %s-1..%s-%d would be longer than 63 characters", a.Name, a.Name, a.Replicas)
				continue
			}
		}
		for _, name := range instanceNames(a) {
			if j, dup := byInstance[name]; dup && j != i {
				d.errorf(line, nameField, "instance name %q clashes with agents[%d]", name, j)
				break
			}
			byInstance[name] = i
		}
		total += a.Replicas
		if total > MaxInstances && !reported {
			f := item(v.field, i) + ".replicas"
			d.errorf(d.lineOr(f, a.Line), f, "total instances %d exceeds %d", total, MaxInstances)
			reported = true
		}
	}
}

func (d *decoder) lineOr(field string, def int) int {
	if l, ok := d.lines[field]; ok {
		return l
	}
	return def
}

// instanceNames lists the names an agent spec's instances get.
func instanceNames(a AgentSpec) []string {
	if a.Replicas <= 1 {
		return []string{a.Name}
	}
	out := make([]string, a.Replicas)
	for r := range out {
		out[r] = a.Name + "-" + strconv.Itoa(r+1)
	}
	return out
}
