package setup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// CheckBackend asks an OpenAI-compatible server for its models (GET
// BASE/models, with the key from keyFile as a bearer token if given) and
// returns their ids. Anything but a 200 with a {"data":[{"id":…}]} body is
// an error that says what came back: a backend that cannot answer this is
// not saved.
func CheckBackend(ctx context.Context, base, keyFile string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := strings.TrimRight(base, "/") + "/models"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if keyFile != "" {
		key, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("backend key file: %w", err)
		}
		if k := strings.TrimSpace(string(key)); k != "" {
			req.Header.Set("Authorization", "Bearer "+k)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			hint = " (check the key file)"
		}
		return nil, fmt.Errorf("GET %s: %s%s: %.200s", url, resp.Status, hint, strings.TrimSpace(string(body)))
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s: not an OpenAI model list: %v", url, err)
	}
	if list.Data == nil {
		return nil, fmt.Errorf("GET %s: not an OpenAI model list (no \"data\")", url)
	}
	ids := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	if len(ids) == 0 {
		return nil, errors.New("GET " + url + ": the backend serves no models")
	}
	return ids, nil
}
