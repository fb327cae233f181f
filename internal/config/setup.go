package config

import "fmt"

// Setup is the [setup] table `coconut init` writes: the answers that are
// not daemon settings of their own, kept so a second `coconut init`
// starts from them (and changes nothing unless asked).
type Setup struct {
	Profile       string `toml:"profile"`       // "workstation" or "server"
	Notifications *bool  `toml:"notifications"` // desktop notifications of denies
	Anchor        string `toml:"anchor"`        // "tpm" or "fss": where checkpoints were anchored at set-up
}

func (s Setup) validate() error {
	switch s.Profile {
	case "", "workstation", "server":
	default:
		return fmt.Errorf("profile %q: must be workstation or server", s.Profile)
	}
	switch s.Anchor {
	case "", "tpm", "fss":
	default:
		return fmt.Errorf("anchor %q: must be tpm or fss", s.Anchor)
	}
	return nil
}
