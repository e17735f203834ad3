package charm

import (
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Env is what Juju tells the charm process through its environment (spec/juju.md §1.4).
type Env struct {
	// Kind is "hooks" or "actions"; Name the hook or action name.
	Kind, Name string
	Unit       string // falco-k8s/0
	App        string // falco-k8s
	Model      string // the model name, which is the Kubernetes namespace on a K8s cloud
	ModelUUID  string
	// RelationID is the relation of a relation hook ("logging:3"); in -relation-broken it is
	// the relation going away, which relation-ids still lists.
	RelationID string
	RemoteApp  string // JUJU_REMOTE_APP in a relation hook
	RemoteUnit string // JUJU_REMOTE_UNIT (empty for application data changes)
	CharmDir   string
	ActionName string
	ActionUUID string
	SecretID   string // secret-* hooks
	// Outside-Juju overrides (package comment).
	PebbleSocket string
	WorkloadRoot string
	Kubeconfig   string
	// FalcoBinary and FalcoPluginsDir locate Falco in the workload image (engine=falco);
	// empty: where falcosecurity/falco images have them. Tests point them at ../shared/falco.
	FalcoBinary, FalcoPluginsDir string
}

// Container is the workload container declared in metadata.yaml.
const Container = "falco"

// IsDispatch reports whether the process runs as the charm: Juju sets JUJU_DISPATCH_PATH, and a
// legacy hook symlink or the charm's own file is named dispatch.
func IsDispatch(argv0 string) bool {
	return os.Getenv("JUJU_DISPATCH_PATH") != "" || filepath.Base(argv0) == "dispatch"
}

// ReadEnv reads the hook environment. The dispatch path is split the way ops does
// ("hooks/config-changed" → hooks, config-changed); without it the executable's name is the
// hook name (legacy hooks/<name> symlinks).
func ReadEnv(argv0 string) Env {
	e := Env{
		Unit:            os.Getenv("JUJU_UNIT_NAME"),
		Model:           os.Getenv("JUJU_MODEL_NAME"),
		ModelUUID:       os.Getenv("JUJU_MODEL_UUID"),
		RelationID:      os.Getenv("JUJU_RELATION_ID"),
		RemoteApp:       os.Getenv("JUJU_REMOTE_APP"),
		RemoteUnit:      os.Getenv("JUJU_REMOTE_UNIT"),
		CharmDir:        firstNonEmpty(os.Getenv("JUJU_CHARM_DIR"), os.Getenv("CHARM_DIR")),
		ActionName:      os.Getenv("JUJU_ACTION_NAME"),
		ActionUUID:      os.Getenv("JUJU_ACTION_UUID"),
		SecretID:        os.Getenv("JUJU_SECRET_ID"),
		PebbleSocket:    firstNonEmpty(os.Getenv("FALCO_K8S_PEBBLE_SOCKET"), "/charm/containers/"+Container+"/pebble.socket"),
		WorkloadRoot:    os.Getenv("FALCO_K8S_WORKLOAD_ROOT"),
		Kubeconfig:      os.Getenv("FALCO_K8S_KUBECONFIG"),
		FalcoBinary:     os.Getenv("FALCO_K8S_FALCO_BINARY"),
		FalcoPluginsDir: os.Getenv("FALCO_K8S_FALCO_PLUGINS_DIR"),
	}
	if dp := os.Getenv("JUJU_DISPATCH_PATH"); dp != "" {
		dir, name := path.Split(dp)
		e.Kind, e.Name = strings.TrimSuffix(dir, "/"), name
	} else {
		e.Kind, e.Name = "hooks", filepath.Base(argv0)
		if e.ActionName != "" {
			e.Kind, e.Name = "actions", e.ActionName
		}
	}
	if e.Kind == "actions" && e.ActionName == "" {
		e.ActionName = e.Name
	}
	e.App, _, _ = strings.Cut(e.Unit, "/")
	return e
}

// PodName is the unit's pod: Juju names a sidecar unit's pod <app>-<n>.
func (e Env) PodName() string { return strings.ReplaceAll(e.Unit, "/", "-") }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}
