package capability

import (
	"fmt"
	"strconv"
	"strings"
)

// inferScope is model=GLOB[,tokens=N]; tokens 0 means no limit in the scope
// (the agent's quota still applies).
type inferScope struct {
	model  string
	tokens int64
}

// maxTokens keeps token counts far from int64 overflow when summed.
const maxTokens = 1 << 50

func parseInference(s string) (inferScope, error) {
	var is inferScope
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return is, fmt.Errorf("inference scope must be model=NAME[,tokens=N], got %q", kv)
		}
		if seen[k] {
			return is, fmt.Errorf("duplicate %q in inference scope", k)
		}
		seen[k] = true
		switch k {
		case "model":
			if err := checkModel(v); err != nil {
				return is, err
			}
			is.model = v
		case "tokens":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > maxTokens || strconv.FormatInt(n, 10) != v {
				return is, fmt.Errorf("tokens must be an integer from 1 to %d, got %q", int64(maxTokens), v)
			}
			is.tokens = n
		default:
			return is, fmt.Errorf("unknown inference scope key %q (want model, tokens)", k)
		}
	}
	if is.model == "" {
		return is, fmt.Errorf("inference scope needs model=NAME (model=* for any)")
	}
	return is, nil
}

// checkModel allows the characters model names use in practice
// (meta-llama/Llama-3.1-8B, llama3:8b, gpt-4o@2024) plus the * glob.
func checkModel(m string) error {
	if m == "" {
		return fmt.Errorf("empty model name")
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._-/:@*", c) >= 0) {
			return fmt.Errorf("model name %q: byte %q not allowed", m, c)
		}
	}
	return nil
}

func (is inferScope) String() string {
	if is.tokens == 0 {
		return "model=" + is.model
	}
	return "model=" + is.model + ",tokens=" + strconv.FormatInt(is.tokens, 10)
}

// covers: o's model glob lies within c's, and o's token cap is within c's.
func (is inferScope) covers(o inferScope) bool {
	if is.tokens != 0 && (o.tokens == 0 || o.tokens > is.tokens) {
		return false
	}
	// A * in o is literal to globMatch and can only be absorbed by a * in c.
	return globMatch(is.model, o.model)
}

// MatchModel reports whether an inference capability allows model (a
// concrete name). The token limit is for the broker to enforce.
func (c Cap) MatchModel(model string) bool {
	if c.Domain != "inference" || model == "" {
		return false
	}
	is, err := parseInference(c.Scope)
	return err == nil && globMatch(is.model, model)
}

// Tokens returns the token limit in an inference capability's scope, or 0
// when the scope sets none.
func (c Cap) Tokens() int64 {
	if c.Domain != "inference" {
		return 0
	}
	is, _ := parseInference(c.Scope)
	return is.tokens
}
