package config

import (
	"fmt"
	"net/url"
	"time"

	"github.com/coconut-os/coconut/internal/witness"
)

// Witness is one [[witness]] entry (issue 17): a C2SP tlog-witness that
// coconutd submits each new signed checkpoint to (internal/witness).
type Witness struct {
	// URL is the witness's URL prefix; coconutd posts to URL/add-checkpoint.
	URL string `toml:"url"`
	// VKey is the witness's note verifier key (NAME+HASH+KEY), checking
	// its cosignature/v1 signatures.
	VKey string `toml:"vkey"`
	// Timeout is one submission's limit ("10s" when empty).
	Timeout string `toml:"timeout"`
}

// TimeoutDuration parses Timeout (0 when empty).
func (w Witness) TimeoutDuration() (time.Duration, error) {
	if w.Timeout == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(w.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout %q: want a positive duration such as \"10s\"", w.Timeout)
	}
	return d, nil
}

// Parse checks the entry and returns it as internal/witness takes it.
func (w Witness) Parse() (witness.Witness, error) {
	if err := checkWitnessURL(w.URL); err != nil {
		return witness.Witness{}, err
	}
	if w.VKey == "" {
		return witness.Witness{}, fmt.Errorf("vkey: missing (the witness's note verifier key, NAME+HASH+KEY)")
	}
	k, err := witness.ParseKey(w.VKey)
	if err != nil {
		return witness.Witness{}, fmt.Errorf("vkey: %w", err)
	}
	d, err := w.TimeoutDuration()
	if err != nil {
		return witness.Witness{}, err
	}
	return witness.Witness{Key: k, URL: w.URL, Timeout: d}, nil
}

func checkWitnessURL(s string) error {
	if s == "" {
		return fmt.Errorf("url: missing (the witness's URL prefix, e.g. https://witness.example/)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %v", s, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url %q: want an http:// or https:// URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("url %q: no host", s)
	case u.User != nil:
		// doctor and the log show the URL: no credentials in it.
		return fmt.Errorf("url %q: credentials in the URL are refused (it is logged and shown by doctor)", u.Redacted())
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("url %q: no query or fragment (…/add-checkpoint is appended to it)", s)
	}
	return nil
}

// validateWitnesses checks every [[witness]] and that no key is named twice.
func validateWitnesses(ws []Witness) error {
	seen := map[string]int{}
	for i, w := range ws {
		p, err := w.Parse()
		if err != nil {
			return fmt.Errorf("[[witness]] %d: %w", i+1, err)
		}
		id := witness.StateFileName(p.Key)
		if j, ok := seen[id]; ok {
			return fmt.Errorf("[[witness]] %d: the same witness key as entry %d", i+1, j)
		}
		seen[id] = i + 1
	}
	return nil
}
