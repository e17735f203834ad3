//go:build !race

package k8saudit

const raceEnabled = false
