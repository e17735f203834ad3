package hooks

// config-changed runs after `juju config`, `juju trust`, install, upgrade and every unit
// restart. Reconcile validates every option first: an invalid one blocks the unit and changes
// nothing in the workload.
func init() { register("config-changed", reconcile) }
