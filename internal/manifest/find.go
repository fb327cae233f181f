package manifest

import (
	"fmt"
	"os"
	"path/filepath"
)

// Find resolves `coconut agent spawn NAME|FILE`: a path if it looks
// like one or exists, else NAME.yaml in the usual places.
func Find(arg string) (string, error) {
	if filepath.Ext(arg) == ".yaml" || filepath.Ext(arg) == ".yml" || filepath.Base(arg) != arg {
		return arg, nil
	}
	if st, err := os.Stat(arg); err == nil && !st.IsDir() {
		return arg, nil
	}
	var dirs []string
	if p := os.Getenv("COCONUT_MANIFEST_PATH"); p != "" {
		dirs = append(dirs, filepath.SplitList(p)...)
	}
	home, _ := os.UserHomeDir()
	dirs = append(dirs, filepath.Join("examples", arg), filepath.Join(home, ".config/coconut/manifests"), "/etc/coconut/manifests")
	// The examples of the prefix this binary runs from (make install:
	// /usr/local, the package: /usr), then of either.
	if self, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Join(filepath.Dir(self), "../share/coconut/examples", arg))
	}
	dirs = append(dirs, filepath.Join("/usr/share/coconut/examples", arg), filepath.Join("/usr/local/share/coconut/examples", arg))
	for _, d := range dirs {
		p := filepath.Join(d, arg+".yaml")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no manifest named %q (looked for %s.yaml in $COCONUT_MANIFEST_PATH, ./examples/%s, ~/.config/coconut/manifests, /etc/coconut/manifests, {/usr,/usr/local}/share/coconut/examples/%s; sudo coconut init prepares ~/.config/coconut/manifests/dream-team.yaml)", arg, arg, arg, arg)
}
