package center

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/coconut-os/coconut/internal/tiles"
)

// serveTiles serves the C2SP tlog-tiles directory `coconut audit tiles`
// wrote (Config.Tiles) read-only at /tiles/: the signed checkpoint and the
// hash tiles, which hold hashes only. It needs no session: outside
// verifiers' clients cannot log in, and the Center is loopback only,
// behind the Host check. The entry bundles (tile/entries/...) hold every
// agent's rows, which the Center shows a caller only as far as the daemon
// lets them see, so it refuses them (403): publish the directory with a
// web server of your own for a verifier that needs the entries. The path is checked against the layout's
// grammar (tiles.ParsePath) before it touches the file system, so nothing
// outside the directory is reachable; the bytes go out as they are (tiles
// are binary, the checkpoint is signed text), never through a template.
func (c *Center) serveTiles(w http.ResponseWriter, r *http.Request) {
	rel := strings.TrimPrefix(r.URL.Path, "/tiles/")
	immutable, err := tiles.ParsePath(rel)
	if err != nil || c.cfg.Tiles == "" {
		http.Error(w, "no such tile", http.StatusNotFound)
		return
	}
	if strings.HasPrefix(rel, "tile/entries/") {
		http.Error(w, "entry bundles hold every agent's rows and are not served here: publish the directory `coconut audit tiles` wrote with a web server of your own", http.StatusForbidden)
		return
	}
	b, err := os.ReadFile(filepath.Join(c.cfg.Tiles, filepath.FromSlash(rel)))
	if errors.Is(err, fs.ErrNotExist) {
		http.Error(w, "no such tile", http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, "tile unreadable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	if rel == tiles.CheckpointPath {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Content-Type", "application/octet-stream")
		if immutable {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
	}
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	_, _ = w.Write(b)
}
