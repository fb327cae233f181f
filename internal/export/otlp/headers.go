package otlp

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
)

// ParseHeaders reads a headers file: one "Name: value" a line, blank lines
// and lines starting with # ignored. A name is an HTTP token; a value has
// no control characters. Anything else is an error naming the line.
func ParseHeaders(b []byte) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		if !ok || name == "" || !isToken(name) {
			return nil, fmt.Errorf("%w: headers line %d: want \"Name: value\"", ErrConfig, n)
		}
		for _, r := range value {
			if r < 0x20 && r != '\t' || r == 0x7f {
				return nil, fmt.Errorf("%w: headers line %d: control character in the value of %s", ErrConfig, n, name)
			}
		}
		if _, dup := out[strings.ToLower(name)]; dup {
			return nil, fmt.Errorf("%w: headers line %d: %s given twice", ErrConfig, n, name)
		}
		out[strings.ToLower(name)] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: headers: %v", ErrConfig, err)
	}
	return out, nil
}

// isToken reports whether s is an HTTP field name (RFC 9110 token).
func isToken(s string) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}
