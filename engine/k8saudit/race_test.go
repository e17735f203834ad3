//go:build race

package k8saudit

// The race detector makes sync.Pool drop items, so allocation counts are meaningless.
const raceEnabled = true
