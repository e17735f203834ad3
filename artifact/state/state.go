// Package state reads and writes falcoctl's artifact state files,
// <stateDir>/.falcoctl/artifact-state/<sha256hex(ref)>.json (file 0600,
// directory 0700), so that falcoctl and falco-k8s containers sharing a state
// directory (the helm chart's init container and sidecar) agree on what is
// installed.
//
// We add two fields falcoctl ignores: "files", the paths an install wrote
// (relative to "dir"), so the next version can remove files it dropped and a
// follower can notice deleted files; and "sha256", their content hashes.
package state

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// Record is one state file.
type Record struct {
	Ref       string            `json:"ref"`
	Digest    string            `json:"digest"`
	UpdatedAt time.Time         `json:"updatedAt"`
	Dir       string            `json:"dir,omitempty"`
	Files     []string          `json:"files,omitempty"`
	SHA256    map[string]string `json:"sha256,omitempty"`
	// Config is the artifact's config blob, kept so dependency resolution
	// can reason about installed versions without asking the registry.
	Config json.RawMessage `json:"config,omitempty"`
	Type   string          `json:"type,omitempty"`
}

// Intact reports whether every file the record lists still exists with the
// recorded hash; records without hashes (written by falcoctl) count as intact
// because there is nothing to compare with.
func (r Record) Intact() bool {
	for _, f := range r.Files {
		want, ok := r.SHA256[f]
		if !ok {
			continue
		}
		got, err := HashFile(filepath.Join(r.Dir, filepath.FromSlash(f)))
		if err != nil || got != want {
			return false
		}
	}
	return true
}

// HashFile returns the hex sha256 of a file's content.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// All returns every readable record in stateDir, sorted by ref; corrupt files
// are skipped because one bad file must not block installs.
func All(stateDir string) []Record {
	entries, err := os.ReadDir(Dir(stateDir))
	if err != nil {
		return nil
	}
	var out []Record
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(Dir(stateDir), e.Name()))
		if err != nil {
			continue
		}
		var r Record
		if json.Unmarshal(b, &r) == nil && r.Ref != "" {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// Dir returns the state directory under stateDir.
func Dir(stateDir string) string {
	return filepath.Join(stateDir, ".falcoctl", "artifact-state")
}

// Path returns the state file of ref (the resolved reference string).
func Path(stateDir, ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(Dir(stateDir), hex.EncodeToString(sum[:])+".json")
}

// Read returns the record for ref; ok is false when there is none. A corrupt
// file is reported as an error so callers can log it and re-install.
func Read(stateDir, ref string) (rec Record, ok bool, err error) {
	b, err := os.ReadFile(Path(stateDir, ref))
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, false, nil
	}
	if err != nil {
		return Record{}, false, fmt.Errorf("read state for %s: %w", ref, err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, false, fmt.Errorf("state file %s is corrupt (delete it to force a re-install): %w", Path(stateDir, ref), err)
	}
	return rec, true, nil
}

// Write stores rec atomically (temp file, fsync, rename).
func Write(stateDir string, rec Record) error {
	dir := Dir(stateDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	if rec.UpdatedAt.IsZero() {
		rec.UpdatedAt = time.Now().UTC()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(Path(stateDir, rec.Ref), b, 0o600)
}
