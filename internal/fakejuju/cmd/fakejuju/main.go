// Command fakejuju is the fake Juju hook tools (package fakejuju): symlink it as config-get,
// status-set, action-set, ... and set FAKE_JUJU_STATE.
package main

import (
	"os"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

func main() { os.Exit(fakejuju.Main(os.Args, os.Stdout, os.Stderr)) }
