// Command charmpack builds falco-k8s.charm (see package charmpack):
//
//	go run ./internal/charmpack/cmd -dispatch bin/dispatch -o falco-k8s.charm .
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"

	"github.com/falco-k8s/falco-k8s/internal/charmpack"
)

func main() {
	dispatch := flag.String("dispatch", "bin/dispatch", "static charm binary to ship as dispatch")
	out := flag.String("o", "falco-k8s.charm", "archive to write")
	arch := flag.String("arch", runtime.GOARCH, "architecture recorded in manifest.yaml")
	flag.Parse()
	dir := "."
	if flag.NArg() > 0 {
		dir = flag.Arg(0)
	}
	if err := charmpack.Pack(dir, *dispatch, *arch, *out); err != nil {
		fmt.Fprintln(os.Stderr, "charmpack:", err)
		os.Exit(1)
	}
}
