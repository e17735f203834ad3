package hooks

// falco-pebble-ready: the workload container's Pebble is up (first start, or after any pod
// churn). This is where a unit left waiting by earlier hooks becomes active.
func init() { register(containerHook("pebble-ready"), reconcile) }

func containerHook(event string) string { return "falco-" + event }
