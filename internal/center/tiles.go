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
// wrote (Config.Tiles) read-only at /tiles/. It needs no session: the
// directory holds only what the user chose to publish for outside
// verifiers (whose clients cannot log in), and the Center is loopback
// only, behind the Host check. The path is checked against the layout's
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
