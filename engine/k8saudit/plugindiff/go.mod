// The plugin-fields differential: the real k8saudit and json plugins' Go modules, extracting
// in-process next to the engine. A module of its own so the main module neither builds nor
// requires the plugins (and their cgo SDK); `make test` runs its seeded comparison.
module github.com/falco-k8s/falco-k8s/engine/k8saudit/plugindiff

go 1.26.8

require (
	github.com/falco-k8s/falco-k8s v0.0.0
	github.com/falcosecurity/plugin-sdk-go v0.8.3
	github.com/falcosecurity/plugins/plugins/json v0.7.4
	github.com/falcosecurity/plugins/plugins/k8saudit v0.18.0
	github.com/valyala/fastjson v1.6.10
)

require (
	github.com/alecthomas/jsonschema v0.0.0-20220216202328-9eeeec9d044b // indirect
	github.com/fsnotify/fsnotify v1.10.1 // indirect
	github.com/iancoleman/orderedmap v0.3.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace github.com/falco-k8s/falco-k8s => ../../..

// As the k8saudit plugin's own go.mod, and so as Falco's libk8saudit.so is built (go version -m):
// one fastjson for the plugins and the engine here; the json plugin's v1.6.10 and the engine's
// v1.6.4 parse and serialise the same way (their diff is memory hygiene only).
replace github.com/valyala/fastjson => github.com/geraldcombs/fastjson v0.0.0-20250801170450-bf39244e60b8
