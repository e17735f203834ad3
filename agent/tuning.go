package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
)

// OriginTuning marks the tuning file (rules.tuning_file) in /status.
const OriginTuning = "tuning"

// readLocal reads rules.files and then, last of all, the tuning file when it exists, so its
// exceptions apply to rules from every other file (built-in, followed and local).
func (a *Agent) readLocal() ([]engine.File, error) {
	// Falco's rules_files expansion, the same as the CLI's (engine/rulesfile).
	files, ignored, err := rulesfile.ReadFiles(a.localPaths)
	for _, p := range ignored {
		a.log.Warn().Str("file", p).Msg("rules.files: ignoring a file that does not end in .yaml or .yml, as Falco does")
	}
	if err != nil {
		return nil, err
	}
	p := a.cfg.Rules.TuningPath()
	if p == "" {
		return files, nil
	}
	for _, f := range files {
		if filepath.Clean(f.Name) == filepath.Clean(p) {
			return files, nil // listed in rules.files too: loading it twice would be an error
		}
	}
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return files, nil
	case err != nil:
		return nil, fmt.Errorf("%s: read tuning file: %w", p, err)
	}
	return append(files, engine.File{Name: p, Content: b}), nil
}

func (a *Agent) localOrigin(name string) string {
	if p := a.cfg.Rules.TuningPath(); p != "" && filepath.Clean(name) == filepath.Clean(p) {
		return OriginTuning
	}
	return OriginFile
}

// withoutTuning retries a failed start-up load without the tuning file. When that loads, the
// tuning file was at fault: it is recorded as ignored (with Falco's internal alert) and the agent
// starts on the untuned rules rather than not at all; alerts it would have silenced show up,
// which is the safe side. Callers hold a.mu.
func (a *Agent) withoutTuning(local []engine.File, b *built, err error) (*built, error) {
	if len(local) == 0 || a.localOrigin(local[len(local)-1].Name) != OriginTuning {
		return b, err
	}
	rest := local[:len(local)-1]
	b2, err2 := a.compose(rest, "", nil)
	if err2 != nil {
		return b, err
	}
	a.reject(OriginTuning, TriggerStartup, "", "", err)
	a.local = rest
	return b2, nil
}
