package hooks

// remove: the unit is being removed. The opened port belongs to the application's Service and
// stays for the remaining units; reconcile changes nothing in the steady state.
func init() { register("remove", reconcile) }
